"""Numba kernels shared by the linear scoring methods (scanpy, mean, null).

All kernels read a CSR chunk as its three arrays and a gene × column weight matrix
``W`` as CSR (row = gene). Per-cell kernels run in parallel over cells; each cell's
row is computed in a fixed order (its stored non-zeros, then ``W``'s row), so results
are bit-identical whatever the thread count or chunking.
"""

from __future__ import annotations

import numba
import numpy as np


@numba.njit(parallel=True, cache=True)
def accumulate_gene_stats(indptr, indices, data, sum_native, total, total_sq, nnz, n_parts):
    """Add one chunk's rows to running per-gene accumulators, each gene seeing the rows in order.

    ``sum_native`` must accumulate in row order, as scipy's ``X.sum(axis=0)`` does, so the
    work is split by gene range (each part scans all non-zeros) rather than by rows; a
    gene's order, hence every result, is the same for any ``n_parts``.
    """
    n_genes = sum_native.size
    for part in numba.prange(n_parts):
        lo = part * n_genes // n_parts
        hi = (part + 1) * n_genes // n_parts
        for jj in range(indptr[0], indptr[indptr.size - 1]):
            gene = indices[jj]
            if lo <= gene < hi:
                value = data[jj]
                sum_native[gene] += value
                value64 = np.float64(value)
                total[gene] += value64
                total_sq[gene] += value64 * value64
                nnz[gene] += value != 0


@numba.njit(parallel=True, cache=True)
def count_nonzero_per_gene(indptr, indices, data, nnz, n_parts):
    """Add to ``nnz[gene]`` the number of the rows' values of ``gene`` that are not 0 (NaN counts).

    Split by row ranges, each part counting into its own array: integer counts, so the
    result is the same for any ``n_parts``, and every value is read once in all.
    """
    n_rows = indptr.size - 1
    partial = np.zeros((n_parts, nnz.size), dtype=np.int64)
    for part in numba.prange(n_parts):
        lo = indptr[part * n_rows // n_parts]
        hi = indptr[(part + 1) * n_rows // n_parts]
        for jj in range(lo, hi):
            partial[part, indices[jj]] += data[jj] != 0
    for part in range(n_parts):
        nnz += partial[part]


@numba.njit(parallel=True, cache=True)
def weighted_sums(indptr, indices, data, w_indptr, w_indices, w_data, out):
    """``out[i, k] += sum_j X[i, j] * W[j, k]`` accumulated in ``out``'s dtype, scipy's order.

    The order (stored non-zeros of the row, then ``W``'s row) is that of scipy's
    ``csr_matmat``; with float32 ``data`` and ``W`` the sums are float32, as scipy gives.
    """
    n_rows = indptr.size - 1
    in_w = np.zeros(w_indptr.size - 1, dtype=np.int64)
    for gene in range(in_w.size):
        in_w[gene] = w_indptr[gene + 1] > w_indptr[gene]
    max_row = 0
    for row in range(n_rows):
        max_row = max(max_row, indptr[row + 1] - indptr[row])
    block = 64
    for b in numba.prange((n_rows + block - 1) // block):
        hits = np.empty(max_row, dtype=np.int64)
        for row in range(b * block, min(n_rows, (b + 1) * block)):
            # branch-free compaction to the non-zeros whose gene has weights (see subset_sums)
            n_hits = 0
            for jj in range(indptr[row], indptr[row + 1]):
                hits[n_hits] = jj
                n_hits += in_w[indices[jj]]
            for h in range(n_hits):
                jj = hits[h]
                gene = indices[jj]
                value = data[jj]
                for kk in range(w_indptr[gene], w_indptr[gene + 1]):
                    out[row, w_indices[kk]] += value * w_data[kk]


@numba.njit(parallel=True, cache=True)
def null_tail_counts(
    indptr, indices, data, w_indptr, w_indices, w_data, m_indptr, m_indices, n_sets, n_null
):
    """Per cell and set: the observed score, #{null scores > it}, #{null scores == it}, and
    whether any of the set's member genes (``M``, gene × set CSR) is non-zero in the cell.

    ``W``'s columns are the ``n_sets`` observed sets followed by ``n_null`` nulls per set
    (set ``s``, null ``j`` at column ``n_sets + s * n_null + j``).
    Null scores live only in a per-cell accumulator, never as a cells × nulls matrix.
    """
    n_rows = indptr.size - 1
    n_cols = n_sets * (n_null + 1)
    observed = np.empty((n_rows, n_sets), dtype=np.float64)
    greater = np.empty((n_rows, n_sets), dtype=np.int64)
    equal = np.empty((n_rows, n_sets), dtype=np.int64)
    detected = np.zeros((n_rows, n_sets), dtype=np.bool_)
    block = 64  # one accumulator per block of cells, reused row after row
    for b in numba.prange((n_rows + block - 1) // block):
        acc = np.empty(n_cols, dtype=np.float64)
        for row in range(b * block, min(n_rows, (b + 1) * block)):
            acc[:] = 0.0
            for jj in range(indptr[row], indptr[row + 1]):
                gene = indices[jj]
                value = np.float64(data[jj])
                for kk in range(w_indptr[gene], w_indptr[gene + 1]):
                    acc[w_indices[kk]] += value * w_data[kk]
                if value != 0:
                    for kk in range(m_indptr[gene], m_indptr[gene + 1]):
                        detected[row, m_indices[kk]] = True
            for s in range(n_sets):
                score = acc[s]
                base = n_sets + s * n_null
                above = 0
                same = 0
                for j in range(n_null):
                    if acc[base + j] > score:
                        above += 1
                    elif acc[base + j] == score:
                        same += 1
                observed[row, s] = score
                greater[row, s] = above
                equal[row, s] = same
    return observed, greater, equal, detected


@numba.njit(cache=True)
def _pairwise_sum(values, start, n, zero):
    """numpy's pairwise summation of ``values[start:start + n]`` (blocks of 128, 8 accumulators)."""
    if n < 8:
        total = zero
        for i in range(start, start + n):
            total += values[i]
        return total
    if n <= 128:
        r0, r1, r2, r3 = values[start], values[start + 1], values[start + 2], values[start + 3]
        r4, r5, r6, r7 = values[start + 4], values[start + 5], values[start + 6], values[start + 7]
        i = 8
        while i < n - n % 8:
            k = start + i
            r0 += values[k]
            r1 += values[k + 1]
            r2 += values[k + 2]
            r3 += values[k + 3]
            r4 += values[k + 4]
            r5 += values[k + 5]
            r6 += values[k + 6]
            r7 += values[k + 7]
            i += 8
        total = ((r0 + r1) + (r2 + r3)) + ((r4 + r5) + (r6 + r7))
        while i < n:
            total += values[start + i]
            i += 1
        return total
    half = n // 2
    half -= half % 8
    return _pairwise_sum(values, start, half, zero) + _pairwise_sum(
        values, start + half, n - half, zero
    )


@numba.njit(parallel=True, cache=True)
def subset_sums(indptr, indices, data, w_indptr, w_indices, column_start, zero, out):
    """``out[i, k]`` = sum of cell ``i``'s stored values over the genes of column ``k`` of the
    indicator ``W``, summed exactly as scanpy does it: ``X[:, genes].sum(axis=1)`` keeps the
    row's stored order and numpy's ``add.reduceat`` returns ``v[0] + pairwise_sum(v[1:])``,
    in the data's dtype (``zero`` is a zero of that dtype). Column ``k`` has
    ``column_start[k + 1] - column_start[k]`` genes, which bounds its slice of the scratch row."""
    n_rows = indptr.size - 1
    n_cols = out.shape[1]
    in_w = np.zeros(w_indptr.size - 1, dtype=np.int64)
    for gene in range(in_w.size):
        in_w[gene] = w_indptr[gene + 1] > w_indptr[gene]
    max_row = 0
    for row in range(n_rows):
        max_row = max(max_row, indptr[row + 1] - indptr[row])
    block = 64  # scratch buffers are allocated once per block of cells
    for b in numba.prange((n_rows + block - 1) // block):
        grouped = np.empty(column_start[n_cols], dtype=data.dtype)
        fill = np.empty(n_cols, dtype=np.int64)
        hits = np.empty(max_row, dtype=np.int64)
        for row in range(b * block, min(n_rows, (b + 1) * block)):
            # Branch-free compaction to the non-zeros whose gene is in some column: most are
            # not, and a data-dependent loop exit per non-zero costs a branch mispredict.
            n_hits = 0
            for jj in range(indptr[row], indptr[row + 1]):
                hits[n_hits] = jj
                n_hits += in_w[indices[jj]]
            fill[:] = column_start[:n_cols]
            for h in range(n_hits):
                jj = hits[h]
                gene = indices[jj]
                for kk in range(w_indptr[gene], w_indptr[gene + 1]):
                    col = w_indices[kk]
                    grouped[fill[col]] = data[jj]
                    fill[col] += 1
            for col in range(n_cols):
                first = column_start[col]
                n = fill[col] - first
                if n > 0:
                    out[row, col] = grouped[first] + _pairwise_sum(grouped, first + 1, n - 1, zero)
