"""Test-side access to the package's UMI-like generator (one implementation: ``seedsoil.synthetic``)."""

from seedsoil.synthetic import (
    cell_names,
    gene_names,
    iter_umi_chunks,
    log_normalise,
    umi_counts,
    write_umi_h5ad,
)

__all__ = [
    "cell_names",
    "gene_names",
    "iter_umi_chunks",
    "log_normalise",
    "umi_counts",
    "write_umi_h5ad",
]
