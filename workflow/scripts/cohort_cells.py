from pathlib import Path

from seedsoil.annotate import cohort_cells
from seedsoil.cellfile import COMPRESSION
from seedsoil.util import atomic_path, rule_logging

with rule_logging(snakemake.log[0]):
    inputs = snakemake.input
    # results/{dataset}/{sample}/cells.h5ad -> dataset
    datasets = [Path(cells).parts[-3] for cells in inputs.cells]
    adata = cohort_cells(zip(datasets, inputs.cells, inputs.scores, inputs.calls, strict=True))
    with atomic_path(snakemake.output[0]) as path:
        adata.write_h5ad(path, **COMPRESSION)
