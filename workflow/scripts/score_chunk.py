from seedsoil.pipeline import score_sample_chunk
from seedsoil.scoring.chunked import load_sample_gene_stats
from seedsoil.util import atomic_path, rule_logging

with rule_logging(snakemake.log[0], snakemake.resources.attempt):
    scoring = snakemake.params.scoring
    # the sample's statistics as ingest gathered them (none when the method needs none)
    stats = (
        load_sample_gene_stats(snakemake.input.stats, snakemake.wildcards.sample)
        if snakemake.input.stats
        else None
    )
    scores, pvalues = score_sample_chunk(
        snakemake.input.cells,
        int(snakemake.wildcards.chunk),
        snakemake.params.n_chunks,
        stats,
        library=snakemake.params.library,
        gmt=snakemake.params.gmt,
        min_coverage=snakemake.params.min_coverage,
        method=scoring["method"],
        n_null=scoring["n_null"],
        random_state=scoring["random_state"],
        max_rank=scoring["max_rank"],
        n_threads=snakemake.threads,
    )
    for table, output in ((scores, "scores"), (pvalues, "pvalues")):
        table.attrs = {}
        with atomic_path(snakemake.output[output]) as path:
            table.to_parquet(path)
