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
