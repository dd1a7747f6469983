"""The statistics pass: per-gene sums over all cells, read chunk by chunk."""

from __future__ import annotations

from collections.abc import Iterable

import numba
import numpy as np
import scipy.sparse as sp

from ._kernels import accumulate_gene_stats, count_nonzero_per_gene
from .base import GeneStats


def sum_dtype(dtype: np.dtype) -> np.dtype:
    """The dtype scipy sums a matrix of ``dtype`` in (numpy's rule: small ints widen, floats keep)."""
    dtype = np.dtype(dtype)
    if dtype.kind == "b":
        return np.dtype(np.int64)
    if dtype.kind in "iu" and dtype.itemsize < np.dtype(np.int64).itemsize:
        return np.dtype(np.int64 if dtype.kind == "i" else np.uint64)
    return dtype


def gene_stats(chunks: Iterable[sp.csr_matrix], n_genes: int) -> GeneStats:
    """Accumulate :class:`GeneStats` over CSR row chunks given in row order.

    The first chunk fixes the native dtype of ``sum_native``.
    """
    n_cells = 0
    sum_native = None
    total = np.zeros(n_genes, dtype=np.float64)
    total_sq = np.zeros(n_genes, dtype=np.float64)
    nnz = np.zeros(n_genes, dtype=np.int64)
    for chunk in chunks:
        if sum_native is None:
            sum_native = np.zeros(n_genes, dtype=sum_dtype(chunk.dtype))
        data = chunk.data.astype(sum_native.dtype, copy=False)
        n_parts = numba.get_num_threads()
        accumulate_gene_stats(
            chunk.indptr, chunk.indices, data, sum_native, total, total_sq, nnz, n_parts
        )
        n_cells += chunk.shape[0]
    if sum_native is None:
        sum_native = np.zeros(n_genes, dtype=np.float32)
    return GeneStats(n_cells=n_cells, sum=total, sum_native=sum_native, sum_sq=total_sq, nnz=nnz)


def gene_detection(chunks: Iterable[sp.csr_matrix], n_genes: int) -> GeneStats:
    """:class:`GeneStats` with only ``n_cells`` and ``nnz`` (non-zero values per gene) computed.

    ``nnz`` equals :func:`gene_stats`'s; ``sum``, ``sum_native`` and ``sum_sq`` are NaN. For
    methods that read only which genes are detected (aucell's gene filter): one pass over
    the values split by rows, where :func:`gene_stats` has every thread scan every value
    to keep its float sums in row order.
    """
    n_cells = 0
    nnz = np.zeros(n_genes, dtype=np.int64)
    for chunk in chunks:
        count_nonzero_per_gene(
            chunk.indptr, chunk.indices, chunk.data, nnz, numba.get_num_threads()
        )
        n_cells += chunk.shape[0]
    not_computed = np.full(n_genes, np.nan)
    return GeneStats(
        n_cells=n_cells, sum=not_computed, sum_native=not_computed, sum_sq=not_computed, nnz=nnz
    )
