"""Per-cell rank kernels shared by the rank-based methods (UCell, AUCell).

Both methods need, in each cell, the rank of a few signature genes among the cell's
values, never the full ranking. UCell finds the signature genes' distinct values (the
levels) with a small hash table; with a few dozen levels (UMI cells) it counts, for each
level, the row's values above and equal to it in one vectorised comparison sweep over the
row; with more (a full-length cell has hundreds) it sorts the levels and places every value
among them in one pass. Either way its cost grows with the row's length, not with its number
of distinct values. AUCell groups the row's values by value in an open-addressing hash table
keyed on the value's bit pattern, filled in one pass over the row, and sorts only the distinct
values (a few dozen among ~1,800 non-zeros in a UMI cell); in a full-length cell, with thousands
of distinct values, it selects the ``n_up`` largest in linear time and sorts only those. Only the
entries that can rank within ``n_up`` are then sorted by gene position.

Kernels run in parallel over blocks of cells (``prange``); every cell is computed from
its own row alone with integer or exactly representable arithmetic, so results are
bit-identical whatever the thread count, block size or chunking.
"""

from __future__ import annotations

import numpy as np
import scipy.sparse as sp
from numba import njit, prange

CELLS_PER_BLOCK = 64
EQUAL = np.int64(1) << 32  # level counters: values equal to the level in the high half
ABOVE = EQUAL - 1  # ... values above exactly that many levels in the low half
_GOLDEN = np.uint64(0x9E3779B97F4A7C15)
_SHIFT = np.uint64(29)
#: With at most this many levels in a cell, UCell compares every value with every level
#: (vectorised, ~0.07 ns per value and level on float32); with more, placing each value among
#: the sorted levels (~3 ns per value plus the sort) is cheaper.
MAX_COMPARED_LEVELS = 40
#: AUCell sorts a cell's distinct values only up to its ``n_up`` largest once it has more
#: than this many times ``n_up`` of them (:func:`count_greater_top`); with fewer (UMI cells: a
#: few dozen) a full sort (:func:`count_greater`) is cheaper than the selection.
SELECT_FACTOR = 2


def canonical_csr(X) -> sp.csr_matrix:
    """``X`` as CSR without duplicate entries (summed, as densifying would), copying only when needed."""
    X = X if isinstance(X, sp.csr_matrix) else sp.csr_matrix(X)
    if not X.has_canonical_format:
        X = X.copy()
        X.sum_duplicates()
    return X


def value_bits(data: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """``data`` (4- or 8-byte values, anything else cast to float64) and an unsigned view of its bits.

    Equal bit patterns mean equal values for everything the kernels rank (zeros and NaN
    are filtered out before hashing), so the view is the hash key.
    """
    if data.dtype.itemsize not in (4, 8) or data.dtype.kind not in "fiu":
        data = data.astype(np.float64)
    unsigned = np.uint32 if data.dtype.itemsize == 4 else np.uint64
    return data, data.view(unsigned)


def table_size(indptr: np.ndarray) -> int:
    """A power of two at least twice the longest row, so the hash table stays half empty."""
    longest = int(np.diff(indptr).max(initial=0))
    return 1 << max(4, int(2 * longest).bit_length())


@njit(cache=True, inline="always")
def _slot(key, mask):
    h = np.uint64(key) * _GOLDEN
    h ^= h >> _SHIFT
    return np.int64(h & np.uint64(mask))


@njit(cache=True, inline="always")
def _find_or_add(table_key, table_group, group_slot, key, mask, n_groups):
    """Group index of ``key`` in the open-addressing table ``table_*[:mask + 1]``.

    A key not yet in the table is added as group ``n_groups`` (the caller sees the return
    value equal ``n_groups`` and counts it); ``group_slot`` records each group's slot so that
    the table can be emptied again by :func:`clear_groups`.
    """
    s = _slot(key, mask)
    while True:
        group = table_group[s]
        if group < 0:
            table_group[s] = n_groups
            table_key[s] = key
            group_slot[n_groups] = s
            return n_groups
        if table_key[s] == key:
            return group
        s = (s + 1) & mask


@njit(cache=True)
def group_values(
    data,
    bits,
    entry_k,
    m,
    table_key,
    table_group,
    group_value,
    group_count,
    group_slot,
    entry_group,
):
    """Assign the ``m`` entries ``data[entry_k[:m]]`` to groups of equal value; return the number of groups.

    Fills ``group_value``/``group_count`` per group and ``entry_group`` per entry.
    The table must be empty on entry; :func:`clear_groups` empties it again.
    """
    mask = table_group.size - 1
    n_groups = 0
    for e in range(m):
        k = entry_k[e]
        group = _find_or_add(table_key, table_group, group_slot, np.uint64(bits[k]), mask, n_groups)
        if group == n_groups:
            group_value[group] = data[k]
            group_count[group] = 1
            n_groups += 1
        else:
            group_count[group] += 1
        entry_group[e] = group
    return n_groups


@njit(cache=True)
def count_greater(group_value, group_count, n_groups, group_greater):
    """``group_greater[g]`` = number of entries whose value is strictly greater than group ``g``'s."""
    order = np.argsort(group_value[:n_groups])
    greater = 0
    for i in range(n_groups - 1, -1, -1):
        g = order[i]
        group_greater[g] = greater
        greater += group_count[g]


@njit(cache=True)
def count_greater_top(group_value, group_count, n_groups, group_greater, n_up, top):
    """:func:`count_greater` exact where the count is below ``n_up``, at least ``n_up`` elsewhere.

    For a cell with many more distinct values than ``n_up`` (a full-length cell: thousands):
    the ``n_up`` largest group values are selected first (``np.partition``, linear time) and
    only they are sorted. Every group below the ``n_up``-th largest value has at least ``n_up``
    entries above it, and every entry above a selected group is in a selected group. ``top``
    is scratch space for ``n_groups`` indices.
    """
    threshold = np.partition(group_value[:n_groups], n_groups - n_up)[n_groups - n_up]
    n_top = 0
    for g in range(n_groups):
        if not group_value[g] < threshold:  # NaN sorts last (largest), as in argsort
            top[n_top] = g
            n_top += 1
        else:
            group_greater[g] = n_up
    order = top[:n_top][np.argsort(group_value[top[:n_top]])]
    greater = 0
    for i in range(n_top - 1, -1, -1):
        g = order[i]
        group_greater[g] = greater
        greater += group_count[g]


@njit(cache=True)
def clear_groups(table_group, group_slot, n_groups):
    for g in range(n_groups):
        table_group[group_slot[g]] = -1


@njit(cache=True, inline="always")
def _count_below(levels, n_levels, value):
    """Number of ``levels[:n_levels]`` (ascending, ``levels[n_levels]`` = +inf) strictly below ``value``.

    A binary search whose steps depend only on ``n_levels``, each an arithmetic select, so
    the processor never mispredicts which half holds ``value``.
    """
    base = 0
    n = n_levels + 1
    while n > 1:
        half = n >> 1
        base += half * (levels[base + half - 1] < value)
        n -= half
    return base


@njit(cache=True)
def sort_distinct(levels, n, sentinel):
    """Sort ``levels[:n]``, keep each value once, put ``sentinel`` after them; return how many."""
    levels[:n].sort()
    n_levels = 1
    for i in range(1, n):
        if levels[i] != levels[n_levels - 1]:
            levels[n_levels] = levels[i]
            n_levels += 1
    levels[n_levels] = sentinel
    return n_levels


@njit(cache=True)
def key_level_counts(data, bits, lo, hi, levels, n_levels, first, counts, level_of):
    """Count the row ``data[lo:hi]``'s values against the ascending distinct positive ``levels``.

    Adds to ``counts[j]`` the number of values with exactly ``j`` levels below them plus
    ``EQUAL`` times the number equal to level ``j`` (one counter, one memory update per
    value); ``level_of[k - lo]`` is set to ``j`` for each value ``data[k]`` at or below the top level. Levels and values are compared as bit
    patterns (``bits``), which are ordered like the values for positive numbers; the span
    of the levels is cut into at most ``4 * n_levels`` equal buckets and ``first[b]`` is
    the first level at or above bucket ``b``, so a value costs a shift and a step or two
    whatever the number of levels. ``levels[n_levels]`` must exceed every key; ``first``
    holds at least ``4 * n_levels`` entries.
    """
    lowest = levels[0]
    highest = levels[n_levels - 1]
    shift = 0
    while ((highest - lowest) >> shift) >= 4 * n_levels:
        shift += 1
    j = 0
    for bucket in range(((highest - lowest) >> shift) + 1):
        edge = lowest + (bucket << shift)
        while levels[j] < edge:
            j += 1
        first[bucket] = j
    for k in range(lo, hi):
        if not data[k] > 0:
            continue
        key = np.int64(bits[k])
        if key < lowest:
            continue
        if key > highest:
            counts[n_levels] += 1
            continue
        j = first[(key - lowest) >> shift]
        while levels[j] < key:
            j += 1
        counts[j] += 1 + EQUAL * (levels[j] == key)
        level_of[k - lo] = j


@njit(cache=True)
def value_level_counts(data, lo, hi, levels, n_levels, counts, level_of):
    """:func:`key_level_counts` for float64 ``levels`` of any sign, each value placed by binary search."""
    lowest = levels[0]
    for k in range(lo, hi):
        v = data[k]
        if v < lowest or v == 0 or v != v:
            continue
        j = _count_below(levels, n_levels, v)
        counts[j] += 1 + EQUAL * (levels[j] == v)
        level_of[k - lo] = j


@njit(cache=True)
def greater_equal(row, level):
    """``(#{v in row: v > level}, #{v in row: v >= level})``; NaN compares false, so is neither.

    Written so that the compiler vectorises it: 32-bit counters and a select instead of a
    branch (16 float32 values per instruction where the processor has AVX-512).
    """
    greater = np.int32(0)
    at_least = np.int32(0)
    one = np.int32(1)
    zero = np.int32(0)
    for k in range(row.size):
        v = row[k]
        greater = np.int32(greater + (one if v > level else zero))
        at_least = np.int32(at_least + (one if v >= level else zero))
    return greater, at_least


@njit(parallel=True, cache=True)
def ucell_rank_sums(
    indptr,
    indices,
    data,
    bits,
    union_of_gene,
    col_ptr,
    gene_col_ptr,
    gene_cols,
    max_rank,
    tie_offset,
    n_table,
):
    """Per cell and column, the sum of the column's genes' capped ranks.

    A gene's rank is taken among the cell's non-zero, non-NaN values in decreasing order,
    ties resolved as ``greater + 1 + tie_offset * (count - 1)`` (0.5: average, 0: min,
    1: max). A rank above ``max_rank``, or a gene that is zero in the cell, counts as
    ``max_rank``. Column ``c`` has ``col_ptr[c+1] - col_ptr[c]`` genes; union gene ``u``
    belongs to the columns ``gene_cols[gene_col_ptr[u]:gene_col_ptr[u+1]]``. Each column
    starts at ``size * max_rank`` and each of the cell's ranked signature genes adds
    ``min(rank - max_rank, 0)``. Sums of half-integers below 2**52 are exact in float64,
    so summation order is irrelevant.

    Per cell: one branch-free pass over the row's gene indices (a bitset of the signature
    genes) collects the signature entries; their distinct values (the levels: a few dozen in
    a UMI cell, a few hundred in a full-length one) are found with a small hash table
    (:func:`_find_or_add`), each entry remembering its level; a level that is zero or NaN
    is not ranked (its entries add 0). With at most ``MAX_COMPARED_LEVELS`` ranked levels,
    all positive, each level's ``greater`` and ``count`` come from one vectorised sweep over the row
    (:func:`greater_equal`); otherwise the levels are sorted and one pass places every value
    among them (:func:`key_level_counts`, or :func:`value_level_counts` when a signature
    value is negative). The capped rank is computed once per level, and each signature
    entry adds its level's amount to its column (directly when the gene is in one column
    only). ``bits`` is the unsigned view of ``data`` (:func:`value_bits`); ``n_table // 2``
    bounds the longest row and ``n_table`` is a power of two.
    """
    n_cells = indptr.size - 1
    n_cols = col_ptr.size - 1
    out = np.empty((n_cells, n_cols))
    longest = n_table // 2
    # one bit a gene (4 KB for 32,000 genes): stays in the first-level cache
    in_union = np.zeros((union_of_gene.size + 63) // 64, np.uint64)
    for gene in range(union_of_gene.size):
        if union_of_gene[gene] >= 0:
            in_union[gene >> 6] |= np.uint64(1) << np.uint64(gene & 63)
    # a gene's column when it is in exactly one (most are), else -1
    only_col = np.full(union_of_gene.size, -1, np.int32)
    for gene in range(union_of_gene.size):
        u = union_of_gene[gene]
        if u >= 0 and gene_col_ptr[u + 1] - gene_col_ptr[u] == 1:
            only_col[gene] = gene_cols[gene_col_ptr[u]]
    n_blocks = (n_cells + CELLS_PER_BLOCK - 1) // CELLS_PER_BLOCK
    for b in prange(n_blocks):
        sig = np.empty(longest + 1, np.int64)  # row positions of the signature entries
        entry_level = np.empty(longest, np.int64)
        level_at = np.empty(longest, np.int64)  # row position of a value equal to the level
        ranked = np.empty(longest, np.int64)  # the levels that are neither zero nor NaN
        key_levels = np.empty(longest + 1, np.int64)
        radix_buffer = np.empty(longest, np.int64)
        value_levels = np.empty(longest + 1, np.float64)
        first = np.empty(4 * longest + 1, np.int64)
        counts = np.zeros(longest + 1, np.int64)
        delta = np.empty(2 * longest + 1, np.float64)
        level_of = np.empty(longest, np.int64)
        table_key = np.empty(n_table, np.uint64)
        table_level = np.full(n_table, -1, np.int64)
        slot_of = np.empty(longest, np.int64)
        for cell in range(b * CELLS_PER_BLOCK, min(n_cells, (b + 1) * CELLS_PER_BLOCK)):
            for c in range(n_cols):
                out[cell, c] = (col_ptr[c + 1] - col_ptr[c]) * np.float64(max_rank)
            lo, hi = indptr[cell], indptr[cell + 1]
            row = data[lo:hi]
            row_bits = bits[lo:hi]
            row_genes = indices[lo:hi]
            n_in = 0
            for i in range(row_genes.size):
                # Written always, kept only for a signature gene: no branch to mispredict;
                # an unsigned index spares the negative-index check.
                gene = np.uint32(row_genes[i])
                sig[n_in] = i
                n_in += np.int64(
                    (in_union[gene >> np.uint32(6)] >> np.uint64(gene & np.uint32(63)))
                    & np.uint64(1)
                )
            # A table at least twice the entries' number stays half empty and in cache.
            mask = 15
            while mask < 2 * n_in:
                mask = 2 * mask + 1
            n_levels = 0
            for e in range(n_in):
                i = sig[e]
                level = _find_or_add(
                    table_key, table_level, slot_of, np.uint64(row_bits[i]), mask, n_levels
                )
                if level == n_levels:
                    level_at[level] = i
                    n_levels += 1
                entry_level[e] = level
            clear_groups(table_level, slot_of, n_levels)
            # Zero and NaN are not ranked (the gene counts max_rank): checked once per level.
            n_ranked = 0
            all_positive = True
            for j in range(n_levels):
                v = row[level_at[j]]
                delta[j] = 0.0
                if v != 0 and v == v:
                    ranked[n_ranked] = j
                    n_ranked += 1
                    all_positive &= v > 0
            if n_ranked == 0:
                continue
            if all_positive and n_ranked <= MAX_COMPARED_LEVELS:
                for r in range(n_ranked):
                    j = ranked[r]
                    greater, at_least = greater_equal(row, row[level_at[j]])
                    rank = greater + 1 + tie_offset * (at_least - greater - 1)
                    delta[j] = min(rank - max_rank, 0.0)
            else:
                # Bit patterns order positive values; any other sign needs float comparisons.
                if all_positive:
                    for r in range(n_ranked):
                        key_levels[r] = np.int64(row_bits[level_at[ranked[r]]])
                    # The levels are distinct; a radix sort of a few hundred keys is several
                    # times faster than a comparison sort.
                    lowest = highest = key_levels[0]
                    for r in range(n_ranked):
                        lowest = min(lowest, key_levels[r])
                        highest = max(highest, key_levels[r])
                    if lowest < 0:  # uint64 values of 2**63 and more: as before this change
                        n_sorted = sort_distinct(key_levels, n_ranked, np.iinfo(np.int64).max)
                    else:
                        n_bytes = 1
                        while n_bytes < 8 and highest >> (8 * n_bytes) > 0:
                            n_bytes += 1
                        radix_sort(key_levels, radix_buffer, n_ranked, 0, n_bytes)
                        n_sorted = n_ranked
                        key_levels[n_sorted] = np.iinfo(np.int64).max
                    key_level_counts(
                        row, row_bits, 0, row.size, key_levels, n_sorted, first, counts, level_of
                    )
                else:
                    for r in range(n_ranked):
                        value_levels[r] = row[level_at[ranked[r]]]
                    n_sorted = sort_distinct(value_levels, n_ranked, np.inf)
                    value_level_counts(row, 0, row.size, value_levels, n_sorted, counts, level_of)
                # A value with i sorted levels below it is greater than levels 0 .. i-1.
                greater = 0
                for j in range(n_sorted - 1, -1, -1):
                    greater += counts[j + 1] & ABOVE
                    rank = greater + 1 + tie_offset * ((counts[j] >> 32) - 1)
                    delta[n_levels + j] = min(rank - max_rank, 0.0)
                    counts[j + 1] = 0
                counts[0] = 0
                for r in range(n_ranked):  # level j (first-seen order) is sorted level level_of[.]
                    j = ranked[r]
                    delta[j] = delta[n_levels + level_of[level_at[j]]]
            for e in range(n_in):
                change = delta[entry_level[e]]
                gene = row_genes[sig[e]]
                c = only_col[gene]
                if c >= 0:
                    out[cell, c] += change
                else:
                    u = union_of_gene[gene]
                    for g in range(gene_col_ptr[u], gene_col_ptr[u + 1]):
                        out[cell, gene_cols[g]] += change
    return out


@njit(cache=True)
def radix_sort(keys, buffer, m, low_byte, n_bytes):
    """Sort the non-negative ``keys[:m]`` by their bytes ``low_byte`` .. ``low_byte + n_bytes - 1``
    (least significant first), stably; the result is in ``keys``."""
    counts = np.empty(257, np.int64)
    src, dst = keys, buffer
    for byte in range(n_bytes):
        shift = 8 * (low_byte + byte)
        counts[:] = 0
        for i in range(m):
            counts[((src[i] >> shift) & 255) + 1] += 1
        for d in range(256):
            counts[d + 1] += counts[d]
        for i in range(m):
            d = (src[i] >> shift) & 255
            dst[counts[d]] = src[i]
            counts[d] += 1
        src, dst = dst, src
    if n_bytes % 2 == 1:
        keys[:m] = src[:m]


@njit(cache=True)
def _position_limit(keys, entry_group, m, group, quota, counts, shift):
    """A position such that at least ``quota`` of ``group``'s entries lie below it, rounded up to a bin.

    ``keys[i] >> 32`` is entry ``i``'s position; ``counts`` (zero on entry and on return)
    holds one counter per ``2**shift`` positions.
    """
    for i in range(m):
        counts[keys[i] >> (32 + shift)] += entry_group[i] == group
    below = 0
    limit = 0
    for b in range(counts.size):
        if below < quota:
            below += counts[b]
            limit = (b + 1) << shift
        counts[b] = 0
    return limit


@njit(parallel=True, cache=True)
def ordinal_auc(
    indptr,
    indices,
    data,
    bits,
    pos_of_gene,
    n_kept,
    union_of_gene,
    union_pos,
    col_ptr,
    gene_col_ptr,
    gene_cols,
    n_up,
    max_auc,
    n_table,
):
    """AUCell's recovery AUC per cell and column from ordinal ranks broken by gene position.

    Only the ``n_kept`` genes with ``pos_of_gene >= 0`` take part. In a cell, gene ``g``
    with value ``v`` has rank ``1 + #{value > v} + #{value == v and position < pos_of_gene[g]}``
    (zeros counted among the kept genes). For a column with ``p`` genes ranked at most
    ``n_up`` and rank sum ``S`` the AUC is ``(p * n_up - S) / max_auc[c]`` — the area of the
    step recovery curve up to ``n_up``. Union genes are numbered in position order:
    ``union_of_gene`` maps a gene to its union index ``i``, whose position is ``union_pos[i]``;
    column ``c`` has ``col_ptr[c+1] - col_ptr[c]`` genes and union gene ``u`` belongs to the
    columns ``gene_cols[gene_col_ptr[u]:gene_col_ptr[u+1]]``. A cell without any
    non-zero kept value gets NaN: its ranking would be the shuffle alone.

    Per cell the kept entries are grouped by value (hash table on the bit pattern) and the
    distinct values sorted — only the ``n_up`` largest when there are many
    (:func:`count_greater_top`) — giving each group the number of values above it. Entries of a
    group with ``n_up`` or more values above it cannot rank within ``n_up``; the others are
    radix-sorted by position and visited in that order, so "tied and earlier" is a running
    count per group. Each signature gene ranked within ``n_up`` credits its columns
    directly: the per-cell work outside the row is proportional to the ranked signature
    genes, not to the signatures' total size. Integer arithmetic throughout, so results
    are bit-identical whatever the thread count or chunking.
    """
    n_cells = indptr.size - 1
    n_cols = col_ptr.size - 1
    out = np.empty((n_cells, n_cols))
    longest = n_table // 2
    n_union = union_pos.size
    n_bytes = 1
    while (n_kept - 1) >> (8 * n_bytes) > 0:
        n_bytes += 1
    position_shift = 0  # positions in at most 256 histogram bins
    while (n_kept >> position_shift) > 256:
        position_shift += 1
    n_blocks = (n_cells + CELLS_PER_BLOCK - 1) // CELLS_PER_BLOCK
    for b in prange(n_blocks):
        table_key = np.zeros(n_table, np.uint64)
        table_group = np.full(n_table, -1, np.int64)
        entry_k = np.empty(longest, np.int64)
        entry_group = np.empty(longest, np.int64)
        group_value = np.empty(longest, np.float64)
        group_count = np.empty(longest, np.int64)
        group_slot = np.empty(longest, np.int64)
        group_greater = np.empty(longest, np.int64)
        group_top = np.empty(longest, np.int64)
        group_seen = np.zeros(longest, np.int64)
        entry_union = np.empty(longest, np.int64)
        keys = np.empty(longest, np.int64)
        buffer = np.empty(longest, np.int64)
        recovered = np.zeros(n_cols, np.int64)
        rank_sum = np.zeros(n_cols, np.int64)
        position_counts = np.zeros((n_kept >> position_shift) + 2, np.int64)
        for cell in range(b * CELLS_PER_BLOCK, min(n_cells, (b + 1) * CELLS_PER_BLOCK)):
            m = 0
            n_positive = 0
            for k in range(indptr[cell], indptr[cell + 1]):
                v = data[k]
                gene = indices[k]
                pos = pos_of_gene[gene]
                if v == 0 or pos < 0:
                    continue
                entry_k[m] = k
                entry_union[m] = union_of_gene[gene]
                keys[m] = (pos << 32) | m
                m += 1
                if v > 0:
                    n_positive += 1
            if m == 0:
                out[cell, :] = np.nan
                continue
            n_groups = group_values(
                data,
                bits,
                entry_k,
                m,
                table_key,
                table_group,
                group_value,
                group_count,
                group_slot,
                entry_group,
            )
            if n_groups > SELECT_FACTOR * n_up:
                count_greater_top(
                    group_value, group_count, n_groups, group_greater, n_up, group_top
                )
            else:
                count_greater(group_value, group_count, n_groups, group_greater)
            n_zero = n_kept - m
            for g in range(n_groups):
                if group_value[g] < 0:
                    group_greater[g] += n_zero
            # Only entries whose value has fewer than n_up values above it can rank within
            # n_up, and an entry's rank depends only on entries of its own value: drop the
            # others before sorting (in a UMI cell most of the row, the small counts). Zero
            # genes are ranked from the positions of all entries, so keep all when they can
            # rank within n_up.
            # Of the group that straddles n_up only its first n_up - greater entries in
            # position order can: a histogram of its positions finds a position below which
            # at least that many lie, and its entries beyond it are dropped too.
            n_sorted = m
            if n_positive + 1 > n_up:
                straddling = -1
                for g in range(n_groups):
                    if group_greater[g] < n_up < group_greater[g] + group_count[g]:
                        straddling = g
                position_limit = n_kept
                if straddling >= 0:
                    position_limit = _position_limit(
                        keys,
                        entry_group,
                        m,
                        straddling,
                        n_up - group_greater[straddling],
                        position_counts,
                        position_shift,
                    )
                n_sorted = 0
                for i in range(m):  # keys[i] holds entry i here
                    g = entry_group[i]
                    keys[n_sorted] = keys[i]
                    n_sorted += (group_greater[g] < n_up) & (
                        (g != straddling) | ((keys[i] >> 32) < position_limit)
                    )
            # Visiting entries in position order turns "tied and earlier" into a running count.
            radix_sort(keys, buffer, n_sorted, 4, n_bytes)  # by position: bits 32 and up
            for i in range(n_sorted):
                e = keys[i] & 0xFFFFFFFF
                g = entry_group[e]
                before = group_seen[g]
                group_seen[g] = before + 1
                u = entry_union[e]
                rank = 1 + group_greater[g] + before
                if u >= 0 and rank <= n_up:
                    for x in range(gene_col_ptr[u], gene_col_ptr[u + 1]):
                        recovered[gene_cols[x]] += 1
                        rank_sum[gene_cols[x]] += rank
            # Zero genes rank after the positive values, in position order.
            if n_positive + 1 <= n_up:
                j = 0
                for i in range(n_union):
                    p = union_pos[i]
                    while j < m and (keys[j] >> 32) < p:
                        j += 1
                    if j < m and (keys[j] >> 32) == p:
                        continue
                    rank = n_positive + 1 + p - j
                    if rank <= n_up:
                        for x in range(gene_col_ptr[i], gene_col_ptr[i + 1]):
                            recovered[gene_cols[x]] += 1
                            rank_sum[gene_cols[x]] += rank
            for c in range(n_cols):
                out[cell, c] = (recovered[c] * n_up - rank_sum[c]) / max_auc[c]
                recovered[c] = 0
                rank_sum[c] = 0
            group_seen[:n_groups] = 0
            clear_groups(table_group, group_slot, n_groups)
    return out
