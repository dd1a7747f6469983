import anndata as ad

from seedsoil.pipeline import sample_cells
from seedsoil.util import atomic_path, rule_logging

with rule_logging(snakemake.log[0]):
    cells = sample_cells(ad.read_h5ad(snakemake.input[0]), snakemake.wildcards.sample)
    with atomic_path(snakemake.output[0]) as path:
        cells.write_h5ad(path, compression="gzip")
