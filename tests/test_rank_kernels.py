"""ucell_rank_sums against ranks computed row by row with scipy.stats.rankdata.

Each signature gene gets a column of its own, so the kernel's output is the gene's capped
rank: its rank among the cell's non-zero, non-NaN values in decreasing order (average,
min or max over ties), or ``max_rank`` when the rank exceeds it or the gene is zero.
Ranks are half-integers, so the kernel must match exactly (tolerance 0).
"""

import numpy as np
import pytest
import scipy.sparse as sp
from scipy.stats import rankdata

from seedsoil.scoring import _rank

N_CELLS, N_GENES, N_SIGNATURE = 40, 600, 120
TIES = {0.5: "average", 0.0: "min", 1.0: "max"}


def expected_ranks(X: sp.csr_matrix, genes: np.ndarray, max_rank: int, tie_offset: float):
    dense = X.toarray().astype(np.float64)
    out = np.full((X.shape[0], genes.size), float(max_rank))
    for cell, row in enumerate(dense):
        ranked = (row != 0) & ~np.isnan(row)
        ranks = np.zeros(row.size)
        ranks[ranked] = rankdata(-row[ranked], method=TIES[tie_offset])
        for c, gene in enumerate(genes):
            if ranked[gene] and ranks[gene] <= max_rank:
                out[cell, c] = ranks[gene]
    return out


def kernel_ranks(X: sp.csr_matrix, genes: np.ndarray, max_rank: int, tie_offset: float):
    X = _rank.canonical_csr(X)
    data, bits = _rank.value_bits(X.data)
    union_of_gene = np.full(X.shape[1], -1, np.int64)
    union_of_gene[genes] = np.arange(genes.size)
    one_each = np.arange(genes.size + 1, dtype=np.int64)
    return _rank.ucell_rank_sums(
        X.indptr.astype(np.int64),
        X.indices,
        data,
        bits,
        union_of_gene,
        one_each,
        one_each,
        np.arange(genes.size, dtype=np.int64),
        max_rank,
        tie_offset,
        _rank.table_size(X.indptr),
    )


def random_matrix(values, density: float, seed: int) -> sp.csr_matrix:
    rng = np.random.default_rng(seed)
    mask = rng.random((N_CELLS, N_GENES)) < density
    dense = np.zeros((N_CELLS, N_GENES), dtype=np.asarray(values(rng, 1)).dtype)
    dense[mask] = values(rng, int(mask.sum()))
    return sp.csr_matrix(dense)


MATRICES = {
    # Smart-seq2-like: nearly every value distinct
    "distinct_float32": lambda: random_matrix(
        lambda rng, n: rng.lognormal(1.0, 2.0, n).astype(np.float32), 0.6, 1
    ),
    # UMI-like: a few dozen distinct values, most of them small
    "tied_counts_float32": lambda: random_matrix(
        lambda rng, n: (1 + rng.geometric(0.4, n)).astype(np.float32), 0.3, 2
    ),
    "int32_counts": lambda: random_matrix(
        lambda rng, n: rng.integers(1, 6, n).astype(np.int32), 0.3, 3
    ),
    # scaled data: values of both signs, so bit patterns do not order them
    "signed_float64": lambda: random_matrix(
        lambda rng, n: np.round(rng.normal(0, 1, n), 2), 0.5, 4
    ),
}


@pytest.mark.parametrize("name", MATRICES)
@pytest.mark.parametrize("tie_offset", TIES)
@pytest.mark.parametrize("max_rank", [25, 1000])
def test_capped_ranks_equal_rankdata(name, tie_offset, max_rank):
    X = MATRICES[name]()
    genes = np.random.default_rng(5).choice(N_GENES, N_SIGNATURE, replace=False)
    ours = kernel_ranks(X, genes, max_rank, tie_offset)
    assert np.array_equal(ours, expected_ranks(X, genes, max_rank, tie_offset))


def test_nan_values_are_not_ranked():
    X = MATRICES["distinct_float32"]().tolil()
    X[:, ::7] = np.nan
    X = X.tocsr()
    genes = np.arange(0, N_GENES, 5)
    ours = kernel_ranks(X, genes, 1000, 0.5)
    assert np.array_equal(ours, expected_ranks(X, genes, 1000, 0.5))


def edge_matrix() -> sp.csr_matrix:
    """Rows that exercise the kernel's special paths, one kind per row (float32, 60 genes)."""
    rng = np.random.default_rng(7)
    n_genes = 60
    rows = [
        np.zeros(n_genes),  # all zero: every gene at max_rank
        np.where(np.arange(n_genes) % 3 == 0, 2.5, 0.0),  # one distinct value, a third stored
        np.full(n_genes, 1.0),  # one distinct value everywhere: one tie group
        np.where(rng.random(n_genes) < 0.5, rng.integers(1, 4, n_genes), 0),  # 3 values, ties
        rng.lognormal(0, 1, n_genes),  # all distinct, dense
        np.where(np.arange(n_genes) < 30, 0.0, rng.integers(1, 3, n_genes)),  # signature half zero
        np.concatenate(([1e30], rng.integers(1, 5, n_genes - 1))),  # one huge value, clustered rest
        np.concatenate((np.full(n_genes - 1, 1e-30), [7.0])),  # tiny values, one large
    ]
    return sp.csr_matrix(np.array(rows, dtype=np.float32))


@pytest.mark.parametrize("tie_offset", TIES)
@pytest.mark.parametrize("max_rank", [1, 2, 5, 29, 60, 1000])
def test_edge_rows_equal_rankdata(tie_offset, max_rank):
    """All-zero rows, one distinct value, ties straddling max_rank, max_rank below and above
    the row's number of non-zeros, huge and tiny values next to small counts."""
    X = edge_matrix()
    for genes in (np.arange(0, 60, 2), np.arange(60), np.array([0, 1, 29, 30, 59])):
        ours = kernel_ranks(X, genes, max_rank, tie_offset)
        assert np.array_equal(ours, expected_ranks(X, genes, max_rank, tie_offset))


def test_signature_gene_never_stored_counts_max_rank():
    X = sp.csr_matrix(np.array([[0, 3, 1, 0], [2, 0, 2, 0]], dtype=np.float32))
    ours = kernel_ranks(X, np.array([0, 3]), 10, 0.5)
    assert np.array_equal(ours, [[10.0, 10.0], [1.5, 10.0]])


@pytest.mark.parametrize("dtype", [np.float32, np.float64, np.int32, np.int64])
def test_many_tied_levels_every_dtype(dtype):
    """A UMI-like matrix: a few hundred signature entries per row over a few dozen values."""
    rng = np.random.default_rng(11)
    dense = np.where(rng.random((30, 900)) < 0.6, rng.geometric(0.3, (30, 900)), 0).astype(dtype)
    X = sp.csr_matrix(dense)
    genes = rng.choice(900, 400, replace=False)
    for max_rank in (50, 300, 2000):
        assert np.array_equal(
            kernel_ranks(X, genes, max_rank, 0.5), expected_ranks(X, genes, max_rank, 0.5)
        )


def path_matrix() -> sp.csr_matrix:
    """Rows around the kernel's switch between comparing every value with every level (at most
    ``MAX_COMPARED_LEVELS`` distinct signature values, all positive) and sorting the levels.

    With every gene in the signature, row 0 has exactly ``MAX_COMPARED_LEVELS`` distinct
    values (half of them with the even genes), row 1 one more, row 2 one more, negative; rows
    3-5 hold NaN, +inf or -0.0 (odd genes) and negative values next to a few positive levels;
    row 6 values one ulp above a signature value; row 7 the largest float32 and subnormals.
    """
    limit = _rank.MAX_COMPARED_LEVELS
    n_genes = 4 * limit
    rng = np.random.default_rng(13)
    few = (1 + np.arange(n_genes) % limit).astype(np.float32)  # limit levels, each twice
    rows = [few, few.copy(), few.copy()]
    rows[1][0] = limit + 1
    rows[2][0] = -1.0
    for special in (np.nan, np.inf, -0.0):
        row = rng.integers(1, 4, n_genes).astype(np.float32)
        row[1::4] = special  # odd columns: outside the signature
        row[3::8] = -2.5
        rows.append(row)
    above = np.full(n_genes, 2.0, np.float32)
    above[1::2] = np.nextafter(np.float32(2.0), np.float32(3.0))
    rows.append(above)
    extreme = rng.integers(1, 3, n_genes).astype(np.float32)
    extreme[::5] = np.finfo(np.float32).max
    extreme[1::5] = np.float32(1e-45)  # smallest subnormal
    rows.append(extreme)
    return sp.csr_matrix(np.array(rows))


@pytest.mark.parametrize("tie_offset", TIES)
@pytest.mark.parametrize("max_rank", [3, 50, 1000])
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_both_level_paths_equal_rankdata(tie_offset, max_rank, dtype):
    X = path_matrix().astype(dtype)
    n_genes = X.shape[1]
    for genes in (np.arange(0, n_genes, 2), np.arange(n_genes)):
        ours = kernel_ranks(X, genes, max_rank, tie_offset)
        assert np.array_equal(ours, expected_ranks(X, genes, max_rank, tie_offset))


@pytest.mark.parametrize("dtype", [np.float32, np.float64, np.int32, np.int64, np.uint32])
def test_many_levels_every_dtype(dtype):
    """More distinct signature values than MAX_COMPARED_LEVELS: the levels are radix-sorted on
    their bit patterns (4 or 8 bytes), including huge integers and float64 exponents."""
    rng = np.random.default_rng(17)
    if np.dtype(dtype).kind == "f":
        values = rng.lognormal(0.0, 8.0, (20, 300)).astype(dtype)
    else:
        values = rng.integers(1, np.iinfo(dtype).max, (20, 300), dtype=dtype)
    dense = np.where(rng.random((20, 300)) < 0.7, values, 0).astype(dtype)
    dense[:, :10] = dense[:, 10:20]  # a few ties
    X = sp.csr_matrix(dense)
    genes = rng.choice(300, 150, replace=False)
    for max_rank in (20, 1000):
        assert np.array_equal(
            kernel_ranks(X, genes, max_rank, 0.5), expected_ranks(X, genes, max_rank, 0.5)
        )


def test_greater_equal_counts_exactly_and_skips_nan():
    row = np.array([1.0, 2.0, 2.0, np.nan, -0.0, np.inf, 3.0] * 5, np.float32)
    for level in (1.0, 2.0, 3.0, np.inf):
        greater, at_least = _rank.greater_equal(row, np.float32(level))
        assert (greater, at_least) == ((row > level).sum(), (row >= level).sum())


def test_scores_equal_the_straightforward_sum_with_shared_genes():
    """Genes in several columns (overlapping signatures) add their rank to each of them."""
    X = MATRICES["tied_counts_float32"]()
    columns = [np.arange(0, 100), np.arange(50, 150), np.arange(0, 600, 7)]
    union = np.unique(np.concatenate(columns))
    union_of_gene = np.full(X.shape[1], -1, np.int64)
    union_of_gene[union] = np.arange(union.size)
    col_union = np.concatenate([union_of_gene[c] for c in columns])
    sizes = np.array([c.size for c in columns])
    col_ptr = np.concatenate(([0], np.cumsum(sizes))).astype(np.int64)
    col_of_entry = np.repeat(np.arange(len(columns)), sizes)
    order = np.argsort(col_union, kind="stable")
    gene_col_ptr = np.concatenate(([0], np.cumsum(np.bincount(col_union, minlength=union.size))))
    Xc = _rank.canonical_csr(X)
    data, bits = _rank.value_bits(Xc.data)
    ours = _rank.ucell_rank_sums(
        Xc.indptr.astype(np.int64),
        Xc.indices,
        data,
        bits,
        union_of_gene,
        col_ptr,
        gene_col_ptr.astype(np.int64),
        col_of_entry[order].astype(np.int64),
        40,
        0.5,
        _rank.table_size(Xc.indptr),
    )
    ranks = expected_ranks(X, union, 40, 0.5)
    expected = np.column_stack([ranks[:, union_of_gene[c]].sum(axis=1) for c in columns])
    assert np.array_equal(ours, expected)


# --------------------------------------------------------------------------- AUCell
def straightforward_auc(X: sp.csr_matrix, members: list[np.ndarray], prepared) -> np.ndarray:
    """The AUC from the full ordinal ranking of every kept gene: decreasing value, ties by position."""
    dense = X.toarray().astype(np.float64)
    pos = prepared.pos_of_gene
    kept = np.flatnonzero(pos >= 0)
    out = np.full((X.shape[0], len(members)), np.nan)
    for cell, row in enumerate(dense):
        if not np.any(row[kept] != 0):
            continue
        order = kept[np.lexsort((pos[kept], -row[kept]))]
        rank = np.zeros(X.shape[1], np.int64)
        rank[order] = np.arange(1, kept.size + 1)
        for c, genes in enumerate(members):
            r = rank[genes]
            r = r[r <= prepared.n_up]
            out[cell, c] = (r.size * prepared.n_up - r.sum()) / prepared.max_auc[c]
    return out


def auc_edge_matrix(seed: int, dtype) -> sp.csr_matrix:
    """UMI-like rows with many ties, plus rows that are empty, constant, sparse or signed."""
    rng = np.random.default_rng(seed)
    n_cells, n_genes = 24, 400
    dense = np.where(
        rng.random((n_cells, n_genes)) < 0.5, rng.geometric(0.35, (n_cells, n_genes)), 0
    )
    dense = dense.astype(np.float64)
    dense[:, 350:] = 0  # genes zero in every cell: dropped from the ranking
    dense[0] = 0  # all-zero cell: NaN
    dense[1, :350] = 3  # one distinct value in every kept gene
    dense[2] = np.where(np.arange(n_genes) % 50 == 0, 1, 0)  # few non-zeros: zero genes rank too
    dense[3, :350] = rng.lognormal(0, 1, 350)  # all distinct
    if np.dtype(dtype).kind == "f":
        dense[4, :20] = -rng.integers(1, 3, 20)  # negative values rank after the zeros
    return sp.csr_matrix(dense.astype(dtype))


def assert_auc_equals_full_ranking(X: sp.csr_matrix, gene_lists: list, n_up: int) -> None:
    """aucell.score_chunk on ``X`` equals :func:`straightforward_auc` exactly (tmin 1)."""
    from seedsoil.scoring import aucell
    from seedsoil.scoring.base import GeneSet
    from seedsoil.scoring.stats import gene_stats

    sets = [
        GeneSet(f"s{i}", np.sort(g), np.array([], np.int64), np.ones(g.size), np.ones(0), ())
        for i, g in enumerate(gene_lists)
    ]
    prepared = aucell.prepare(sets, X.shape[1], gene_stats([X], X.shape[1]), n_up=n_up, tmin=1)
    members = [g[prepared.pos_of_gene[g] >= 0] for g in gene_lists]
    ours = aucell.score_chunk(X, prepared)
    assert np.array_equal(ours, straightforward_auc(X, members, prepared), equal_nan=True)


def full_length_matrix(seed: int, dtype) -> sp.csr_matrix:
    """Smart-seq2-like rows: most kept genes non-zero with distinct values, and in some rows
    a block of ties placed across the row's n_up-th largest value."""
    rng = np.random.default_rng(seed)
    n_cells, n_genes = 16, 600
    dense = np.where(
        rng.random((n_cells, n_genes)) < 0.85, rng.lognormal(1, 1, (n_cells, n_genes)), 0
    )
    for cell in range(0, n_cells, 2):
        order = np.argsort(-dense[cell])
        dense[cell, order[20:70]] = dense[cell, order[45]]  # ties straddling ranks 21-70
    dense[1, :30] = -1.0  # signed values below the selected ones
    return sp.csr_matrix(dense.astype(dtype))


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("n_up", [2, 21, 45, 70, 120])
def test_ordinal_auc_of_long_rows_equals_the_full_ranking(dtype, n_up):
    """Rows with more than twice n_up distinct values sort only their n_up largest
    (count_greater_top); tie groups across the n_up-th value still rank by position."""
    rng = np.random.default_rng(11)
    gene_lists = [rng.choice(600, size, replace=False) for size in (5, 30, 200)]
    assert_auc_equals_full_ranking(full_length_matrix(5, dtype), gene_lists, n_up)


@pytest.mark.parametrize("dtype", [np.float32, np.float64, np.int64])
@pytest.mark.parametrize("n_up", [2, 7, 40, 150, 349, 350])
def test_ordinal_auc_equals_the_full_ranking(dtype, n_up):
    """Straddling tie groups at every n_up, all-zero and constant rows, rows with fewer
    non-zeros than n_up, negative values, and signature genes absent from a cell."""
    rng = np.random.default_rng(9)
    gene_lists = [rng.choice(400, size, replace=False) for size in (5, 12, 40, 120, 300)]
    gene_lists.append(np.arange(0, 400, 3))  # overlaps the others
    assert_auc_equals_full_ranking(auc_edge_matrix(3, dtype), gene_lists, n_up)
