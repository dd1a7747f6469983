"""UMI-like synthetic count matrices for tests and benchmarks.

The generator mimics droplet scRNA-seq: gene abundances are log-normal (a few genes
dominate, most are rare), each cell has a log-normal size factor, a cell's detected
genes are drawn by abundance, and each detected gene gets a geometric number of UMIs
(at least 1; a negative binomial of size 1 shifted by one) with a mean that grows with abundance and cell size. Most non-zeros are
therefore 1 (many ties) and a cell holds only a few dozen distinct values.
"""

from __future__ import annotations

import os
from collections.abc import Iterator

import numpy as np
import pandas as pd
import scipy.sparse as sp

from .harmonise import log_normalise  # the convention of X; re-exported for tests and benchmarks


def gene_abundance(n_genes: int, seed: int) -> np.ndarray:
    """Relative abundance of each gene (mean 1), log-normal with sigma 1.5, in random gene order."""
    rng = np.random.default_rng([seed, 0])
    abundance = rng.lognormal(mean=0.0, sigma=1.5, size=n_genes)
    return abundance / abundance.mean()


def _draws_for_distinct(probability: np.ndarray, distinct: np.ndarray) -> np.ndarray:
    """Draws with replacement whose expected number of distinct genes equals ``distinct``."""
    grid = np.unique(np.geomspace(1, 50 * probability.size, 256).astype(np.int64))
    expected = np.array([-np.expm1(k * np.log1p(-probability)).sum() for k in grid])
    return np.rint(np.interp(distinct, expected, grid)).astype(np.int64)


def _cells(
    n_cells: int, abundance: np.ndarray, nnz_per_cell: int, rng: np.random.Generator
) -> sp.csr_matrix:
    n_genes = abundance.size
    probability = abundance / abundance.sum()
    size_factor = rng.lognormal(mean=0.0, sigma=0.3, size=n_cells)
    distinct = np.clip(nnz_per_cell * size_factor, 1, 0.95 * n_genes)
    n_draws = np.maximum(_draws_for_distinct(probability, distinct), 1)
    row = np.repeat(np.arange(n_cells, dtype=np.int64), n_draws)
    # Sorted uniforms per row from normalised cumulative exponential spacings (no sort needed);
    # sorted keys give genes already sorted within each row and a cache-friendly search.
    ends = np.cumsum(n_draws + 1)
    spacing = np.cumsum(rng.exponential(size=int(ends[-1])))
    row_end = spacing[ends - 1]
    row_start = np.concatenate(([0.0], row_end[:-1]))
    keep = np.ones(spacing.size, dtype=bool)
    keep[ends - 1] = False
    uniforms = (spacing[keep] - row_start[row]) / (row_end - row_start)[row]
    del spacing, keep
    cdf = np.cumsum(probability)
    flat_genes = np.minimum(np.searchsorted(cdf, uniforms, side="right"), n_genes - 1)
    del uniforms
    # Repeated draws of one gene in one cell merge into a single non-zero.
    first = np.ones(flat_genes.size, dtype=bool)
    first[1:] = (flat_genes[1:] != flat_genes[:-1]) | (row[1:] != row[:-1])
    starts = np.flatnonzero(first)
    genes, row = flat_genes[starts].astype(np.int32), row[starts]
    # Each detected gene has 1 + a geometric number (negative binomial, size 1) of extra UMIs.
    mean_extra = np.minimum(0.4 * abundance[genes] * size_factor[row], 50.0)
    counts = rng.geometric(1.0 / (1.0 + mean_extra)).astype(np.float64)
    indptr = np.zeros(n_cells + 1, dtype=np.int64)
    np.cumsum(np.bincount(row, minlength=n_cells), out=indptr[1:])
    return sp.csr_matrix((counts.astype(np.float32), genes, indptr), shape=(n_cells, n_genes))


def umi_counts(
    n_cells: int, n_genes: int, nnz_per_cell: int = 1800, seed: int = 0
) -> sp.csr_matrix:
    """A float32 CSR matrix of UMI-like counts with about ``nnz_per_cell`` non-zeros per cell.

    Deterministic in ``seed``. Cells vary in size (log-normal, sigma 0.3), so
    ``nnz_per_cell`` is the typical, not the exact, count.
    """
    abundance = gene_abundance(n_genes, seed)
    return _cells(n_cells, abundance, nnz_per_cell, np.random.default_rng([seed, 1]))


def iter_umi_chunks(
    n_cells: int, n_genes: int, nnz_per_cell: int = 1800, seed: int = 0, chunk_size: int = 20_000
) -> Iterator[sp.csr_matrix]:
    """The rows of a (possibly huge) UMI-like matrix, ``chunk_size`` cells at a time.

    All chunks share one gene-abundance profile; chunk ``i`` uses its own seeded stream,
    so the output depends on ``chunk_size`` but never on how the chunks are consumed.
    """
    abundance = gene_abundance(n_genes, seed)
    for i, start in enumerate(range(0, n_cells, chunk_size)):
        rng = np.random.default_rng([seed, 2, i])
        yield _cells(min(chunk_size, n_cells - start), abundance, nnz_per_cell, rng)


def gene_names(n_genes: int) -> list[str]:
    return [f"G{i:05d}" for i in range(n_genes)]


def cell_names(n_cells: int) -> list[str]:
    return [f"cell{i:07d}" for i in range(n_cells)]


def write_umi_h5ad(
    path: str | os.PathLike,
    n_cells: int,
    n_genes: int,
    nnz_per_cell: int = 1800,
    seed: int = 0,
    chunk_size: int = 20_000,
    *,
    log: bool = True,
    var_names: list[str] | None = None,
    obs: pd.DataFrame | None = None,
    uns: dict | None = None,
    compression: str | None = None,
) -> int:
    """Write a UMI-like matrix straight to an AnnData-readable ``.h5ad`` (CSR ``X``), chunk by chunk.

    Memory stays at one chunk whatever ``n_cells`` is. ``X`` is log-normalised when ``log``.
    ``var_names`` default to :func:`gene_names`, ``obs`` to an index of :func:`cell_names`;
    ``compression`` (e.g. ``"gzip"``) applies to ``X``. Returns the number of stored values.
    """
    import h5py
    from anndata.io import write_elem

    from .cellfile import CsrWriter

    with h5py.File(path, "w") as f:
        f.attrs.update({"encoding-type": "anndata", "encoding-version": "0.1.0"})
        storage = {"compression": compression} if compression else None
        # indices not shuffled: the input as public atlases ship it (gzip alone)
        writer = CsrWriter(f, "X", n_genes, np.float32, storage, shuffle_indices=False)
        for chunk in iter_umi_chunks(n_cells, n_genes, nnz_per_cell, seed, chunk_size):
            writer.append(log_normalise(chunk) if log else chunk)
        writer.close()
        write_elem(f, "obs", pd.DataFrame(index=cell_names(n_cells)) if obs is None else obs)
        write_elem(f, "var", pd.DataFrame(index=var_names or gene_names(n_genes)))
        for key in ("layers", "obsm", "varm", "obsp", "varp"):
            write_elem(f, key, {})
        write_elem(f, "uns", uns or {})
    return writer.nnz
