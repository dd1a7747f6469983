import anndata as ad

from seedsoil.pipeline import score_sample
from seedsoil.util import atomic_path, rule_logging

with rule_logging(snakemake.log[0]):
    scoring = snakemake.params.scoring
    scores, pvalues, fdr, coverage = score_sample(
        ad.read_h5ad(snakemake.input.cells),
        library=snakemake.params.library,
        gmt=snakemake.params.gmt,
        min_coverage=snakemake.params.min_coverage,
        method=scoring["method"],
        n_null=scoring["n_null"],
        random_state=scoring["random_state"],
        n_threads=snakemake.threads,
    )
    for table, output in ((scores, "scores"), (pvalues, "pvalues"), (fdr, "fdr")):
        table.attrs = {}
        with atomic_path(snakemake.output[output]) as path:
            table.to_parquet(path)
    with atomic_path(snakemake.output.coverage) as path:
        coverage.to_csv(path, sep="\t", index=False)
