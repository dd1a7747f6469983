"""Test-side access to the package's UMI-like generator (one implementation: ``seedsoil.synthetic``),
and the separable populations of the label-transfer tests."""

import numpy as np

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
    "separable_populations",
    "gene_names",
    "iter_umi_chunks",
    "log_normalise",
    "umi_counts",
    "write_umi_h5ad",
]


def separable_populations(sizes, n_genes: int = 60, seed: int = 0) -> np.ndarray:
    """Log-normalised-like values (float32, dense): population ``i`` of ``sizes[i]`` cells
    expresses its own block of 20 genes around 2 over a sparse background, so populations
    separate in the transcriptome whatever their marker genes show."""
    rng = np.random.default_rng(seed)
    blocks = []
    for i, n in enumerate(sizes):
        values = rng.gamma(2.0, 0.1, size=(n, n_genes)) * (rng.random((n, n_genes)) < 0.1)
        values[:, 20 * i : 20 * (i + 1)] = rng.normal(2.0, 0.3, size=(n, 20))
        blocks.append(values)
    return np.vstack(blocks).astype(np.float32)
