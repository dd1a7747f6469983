from seedsoil.pipeline import score_sample_chunk
from seedsoil.util import atomic_path, rule_logging

with rule_logging(snakemake.log[0], snakemake.resources.attempt):
    scoring = snakemake.params.scoring
    scores, pvalues = score_sample_chunk(
        snakemake.input.cells,
        int(snakemake.wildcards.chunk),
        snakemake.params.n_chunks,
        snakemake.input.stats or None,
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
