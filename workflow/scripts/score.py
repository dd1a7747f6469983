from seedsoil.pipeline import gather_sample_scores, score_sample
from seedsoil.scoring.chunked import load_sample_gene_stats
from seedsoil.util import atomic_path, rule_logging, write_cell_table

with rule_logging(snakemake.log[0], snakemake.resources.attempt):
    scoring = snakemake.params.scoring
    signatures = dict(
        library=snakemake.params.library,
        gmt=snakemake.params.gmt,
        min_coverage=snakemake.params.min_coverage,
    )
    if snakemake.input.chunk_scores:  # scored by score_chunk jobs: gather them
        scores, pvalues, fdr, coverage = gather_sample_scores(
            snakemake.input.cells,
            list(snakemake.input.chunk_scores),
            list(snakemake.input.chunk_pvalues),
            **signatures,
            method=scoring["method"],
            max_rank=scoring["max_rank"],
        )
    else:  # the path, not an AnnData: the engine streams the file block by block
        # the sample's statistics as ingest gathered them: no statistics pass of its own
        stats = (
            load_sample_gene_stats(snakemake.input.stats, snakemake.wildcards.sample)
            if snakemake.input.stats
            else None
        )
        scores, pvalues, fdr, coverage = score_sample(
            snakemake.input.cells,
            **signatures,
            method=scoring["method"],
            n_null=scoring["n_null"],
            random_state=scoring["random_state"],
            max_rank=scoring["max_rank"],
            n_threads=snakemake.threads,
            stats=stats,
        )
    for table, output in ((scores, "scores"), (pvalues, "pvalues"), (fdr, "fdr")):
        # scores keep attrs["scoring"] (method, max_rank and the depth it came from):
        # pandas stores attrs in the parquet metadata, where the report reads them
        table.attrs = {"scoring": scores.attrs["scoring"]} if output == "scores" else {}
        with atomic_path(snakemake.output[output]) as path:
            write_cell_table(
                table, path, {k: scoring[k] for k in ("method", "n_null", "random_state")}
            )
    with atomic_path(snakemake.output.coverage) as path:
        coverage.to_csv(path, sep="\t", index=False)
