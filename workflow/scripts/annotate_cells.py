import anndata as ad
import pandas as pd

from seedsoil.pipeline import annotate_cells
from seedsoil.util import atomic_path, rule_logging

with rule_logging(snakemake.log[0]):
    inputs = snakemake.input
    annotated = annotate_cells(
        ad.read_h5ad(inputs.cells),
        *(pd.read_parquet(inputs[name]) for name in ("scores", "pvalues", "fdr", "calls")),
    )
    with atomic_path(snakemake.output[0]) as path:
        annotated.write_h5ad(path, compression="gzip")
