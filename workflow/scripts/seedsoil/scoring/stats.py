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


class GeneStatsBySample:
    """Running :class:`GeneStats` of each sample's kept rows of a matrix given block by block.

    ``add(block, groups)`` takes a CSR block of consecutive rows and, per row, the code of the
    sample it counts towards (``-1``: counted nowhere, e.g. a cell failing QC); rows must come
    in file order over the successive calls. Each sample's accumulators are updated exactly as
    :func:`gene_stats` updates its own over that sample's rows alone (same kernel, same order
    per gene), so :meth:`result` equals :func:`gene_stats` of the sample's rows bit for bit.
    ``dtype`` is the matrix's stored dtype (the sums' native dtype follows from it). Memory:
    28 bytes per gene for each sample met so far (float32 values).
    """

    def __init__(self, n_genes: int, dtype: np.dtype):
        self.n_genes = n_genes
        self.dtype = np.dtype(dtype)
        self._stats: dict[int, list] = {}  # code -> [n_cells, sum_native, sum, sum_sq, nnz]

    def add(self, block: sp.csr_matrix, groups: np.ndarray) -> None:
        """Add ``block``'s rows to the samples ``groups`` (one code per row; -1 skips the row)."""
        groups = np.asarray(groups)
        if groups.shape != (block.shape[0],):
            raise ValueError(f"{groups.size} sample codes for a block of {block.shape[0]} rows")
        for code in np.unique(groups):
            if code < 0:
                continue
            rows = groups == code
            part = block if rows.all() else block[np.flatnonzero(rows)]
            state = self._stats.get(int(code))
            if state is None:
                state = self._stats[int(code)] = [
                    0,
                    np.zeros(self.n_genes, dtype=sum_dtype(self.dtype)),
                    np.zeros(self.n_genes, dtype=np.float64),
                    np.zeros(self.n_genes, dtype=np.float64),
                    np.zeros(self.n_genes, dtype=np.int64),
                ]
            # the stored dtype: what a reader of the written file sums
            data = part.data.astype(self.dtype, copy=False).astype(state[1].dtype, copy=False)
            accumulate_gene_stats(
                part.indptr, part.indices, data, state[1], state[2], state[3], state[4],
                numba.get_num_threads(),
            )  # fmt: skip
            state[0] += part.shape[0]

    def result(self, code: int) -> GeneStats:
        """The statistics of sample ``code`` (all zeros when none of its rows was added)."""
        state = self._stats.get(int(code))
        if state is None:
            zeros = np.zeros(self.n_genes, dtype=np.float64)
            return GeneStats(
                n_cells=0, sum=zeros, sum_native=np.zeros(self.n_genes, sum_dtype(self.dtype)),
                sum_sq=zeros.copy(), nnz=np.zeros(self.n_genes, dtype=np.int64),
            )  # fmt: skip
        n_cells, sum_native, total, total_sq, nnz = state
        return GeneStats(
            n_cells=n_cells, sum=total, sum_native=sum_native, sum_sq=total_sq, nnz=nnz
        )
