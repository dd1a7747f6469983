"""UCell method: parity with pyUCell 0.8.0 and the properties of the rank kernel.

Tolerance: parity is max |Δ| <= 1e-6 (the kernel reproduces pyUCell's float32
arithmetic, so it is in fact exact); determinism and chunking are bit-identical.
"""

from __future__ import annotations

import anndata as ad
import numba
import numpy as np
import pandas as pd
import pytest
import pyucell
import scipy.sparse as sp
from synthetic import cell_names, gene_names, log_normalise, umi_counts

import seedsoil
from seedsoil.scoring import ucell
from seedsoil.scoring.base import GeneSet

TOLERANCE = 1e-6
N_CELLS, N_GENES = 240, 1500


def resolve(name: str, genes: list[str], index: dict[str, int]) -> GeneSet:
    """A GeneSet from pyUCell-style names (``gene-`` is a down gene)."""
    up, down, missing_up, missing_down = [], [], [], []
    for gene in genes:
        is_down = gene.endswith("-")
        symbol = gene.rstrip("+-")
        if symbol not in index:
            (missing_down if is_down else missing_up).append(symbol)
        else:
            (down if is_down else up).append(index[symbol])
    up, down = np.unique(np.array(up, np.int64)), np.unique(np.array(down, np.int64))
    return GeneSet(
        name, up, down, np.ones(up.size), np.ones(down.size), tuple(missing_up), tuple(missing_down)
    )


@pytest.fixture(scope="module")
def matrix() -> sp.csr_matrix:
    return log_normalise(umi_counts(N_CELLS, N_GENES, 300, seed=11))


@pytest.fixture(scope="module")
def signatures() -> dict[str, list[str]]:
    genes = gene_names(N_GENES)
    rng = np.random.default_rng(3)
    picked = {
        f"set{i}": [genes[j] for j in rng.choice(N_GENES, 10 + 15 * i, replace=False)]
        for i in range(4)
    }
    picked["with_missing"] = picked["set1"][:12] + ["ABSENT1", "ABSENT2", "ABSENT3"]
    picked["up_down"] = (
        [g + "+" for g in picked["set2"][:15]]
        + [g + "-" for g in picked["set3"][:10]]
        + ["ABSENT4-"]
    )
    picked["down_only"] = [g + "-" for g in picked["set0"]]
    return picked


def reference(X: sp.csr_matrix, signatures: dict[str, list[str]], **options) -> np.ndarray:
    adata = ad.AnnData(
        X,
        obs=pd.DataFrame(index=cell_names(X.shape[0])),
        var=pd.DataFrame(index=gene_names(X.shape[1])),
    )
    pyucell.compute_ucell_scores(adata, signatures, n_jobs=1, **options)
    return adata.obs[[f"{name}_UCell" for name in signatures]].to_numpy(np.float64)


def seedsoil_ucell(X: sp.csr_matrix, signatures: dict[str, list[str]], **options) -> np.ndarray:
    index = {g: i for i, g in enumerate(gene_names(X.shape[1]))}
    gene_sets = [resolve(name, genes, index) for name, genes in signatures.items()]
    return ucell.score_chunk(X, ucell.prepare(gene_sets, X.shape[1], None, **options))


def test_matches_pyucell_with_defaults(matrix, signatures):
    ours = seedsoil_ucell(matrix, signatures)
    assert np.abs(ours - reference(matrix, signatures)).max() <= TOLERANCE
    assert (ours[:, 0] > 0).any()


def test_public_score_matches_pyucell_on_directed_signatures_with_missing_down_genes(
    matrix, signatures
):
    as_up_down = {
        name: {
            "up": [g.rstrip("+") for g in genes if not g.endswith("-")],
            "down": [g[:-1] for g in genes if g.endswith("-")],
        }
        for name, genes in signatures.items()
    }
    ours = seedsoil.score(matrix, as_up_down, method="ucell", var_names=gene_names(N_GENES))
    assert np.abs(ours.to_numpy() - reference(matrix, signatures)).max() <= TOLERANCE


def test_matches_pyucell_when_tie_groups_straddle_max_rank(matrix, signatures):
    # With max_rank = 60 and ~300 non-zeros per cell, the rank cut falls inside tied groups.
    max_rank = 60
    straddling = 0
    for row in range(matrix.shape[0]):
        values = matrix.data[matrix.indptr[row] : matrix.indptr[row + 1]]
        greater = (values[:, None] < values[None, :]).sum(1)
        equal = (values[:, None] == values[None, :]).sum(1)
        straddling += int(((greater < max_rank) & (greater + equal > max_rank)).any())
    assert straddling > N_CELLS // 2
    ours = seedsoil_ucell(matrix, signatures, max_rank=max_rank)
    assert np.abs(ours - reference(matrix, signatures, max_rank=max_rank)).max() <= TOLERANCE


@pytest.mark.parametrize(
    "options",
    [
        {"missing_genes": "skip"},
        {"w_neg": 0.5},
        {"ties_method": "min", "max_rank": 80},
        {"ties_method": "max"},
    ],
)
def test_matches_pyucell_options(matrix, signatures, options):
    ours = seedsoil_ucell(matrix, signatures, **options)
    assert np.abs(ours - reference(matrix, signatures, **options)).max() <= TOLERANCE


def test_matches_pyucell_with_negative_values(matrix, signatures):
    shifted = matrix.copy()
    shifted.data = shifted.data - np.float32(2.0)  # negatives are ranked too, zeros are not
    ours = seedsoil_ucell(shifted, signatures, max_rank=200)
    assert np.abs(ours - reference(shifted, signatures, max_rank=200)).max() <= TOLERANCE


def test_tied_group_at_max_rank_is_kept_or_dropped_whole():
    # max_rank = 4; gene 4 has value 3 in both cells. Cell 0: 5,3,3,3,3 -> the 3s take ranks
    # 2..5 and share 3.5 <= 4: kept. Cell 1: 5,4,3,3,3,3 -> ranks 3..6 share 4.5 > 4: dropped
    # whole, the gene counts as max_rank.
    X = sp.csr_matrix(np.array([[5, 3, 3, 3, 3, 0], [5, 4, 3, 3, 3, 3]], np.float32))
    gene_set = GeneSet("s", np.array([4]), np.array([], np.int64), np.ones(1), np.ones(0))
    scores = ucell.score_chunk(X, ucell.prepare([gene_set], 6, None, max_rank=4))[:, 0]
    # L = 1: U = 1 - (rank - 1) / (max_rank - 1)
    np.testing.assert_allclose(scores, [1 - 2.5 / 3, 0.0], atol=1e-7)


def test_missing_genes_count_at_max_rank(matrix):
    present = GeneSet("s", np.array([0, 5, 9]), np.array([], np.int64), np.ones(3), np.ones(0))
    with_missing = GeneSet("s", present.up, present.down, np.ones(3), np.ones(0), ("GONE",))
    a = ucell.score_chunk(matrix, ucell.prepare([present], N_GENES, None))
    b = ucell.score_chunk(matrix, ucell.prepare([with_missing], N_GENES, None))
    assert (b < a).any() and (b <= a).all()


def untidy_copy(X: sp.csr_matrix) -> sp.csr_matrix:
    """``X`` with each row's first entry split into two halves and an explicit zero appended."""
    data, indices, indptr = [], [], [0]
    for row in range(X.shape[0]):
        lo, hi = X.indptr[row], X.indptr[row + 1]
        half = X.data[lo] / np.float32(2)
        free = np.setdiff1d(np.arange(X.shape[1]), X.indices[lo:hi])[0]
        data.append(np.concatenate([[half, half], X.data[lo + 1 : hi], [0]]).astype(X.dtype))
        indices.append(np.concatenate([[X.indices[lo]] * 2, X.indices[lo + 1 : hi], [free]]))
        indptr.append(indptr[-1] + hi - lo + 2)
    untidy = sp.csr_matrix(
        (np.concatenate(data), np.concatenate(indices), np.array(indptr)), shape=X.shape
    )
    assert not untidy.has_canonical_format
    return untidy


def test_explicit_zeros_and_duplicates_are_read_as_densified(matrix, signatures):
    untidy = untidy_copy(matrix[:40])
    tidy = sp.csr_matrix(untidy.toarray())
    assert np.array_equal(seedsoil_ucell(untidy, signatures), seedsoil_ucell(tidy, signatures))


def test_bit_identical_across_thread_counts(matrix, signatures):
    before = numba.get_num_threads()
    try:
        numba.set_num_threads(1)
        one = seedsoil_ucell(matrix, signatures)
        numba.set_num_threads(min(2, numba.config.NUMBA_NUM_THREADS))
        two = seedsoil_ucell(matrix, signatures)
    finally:
        numba.set_num_threads(before)
    assert np.array_equal(one, two)


def test_bit_identical_across_chunkings(matrix, signatures):
    whole = seedsoil_ucell(matrix, signatures)
    chunked = np.vstack(
        [seedsoil_ucell(matrix[s : s + 37], signatures) for s in range(0, N_CELLS, 37)]
    )
    assert np.array_equal(whole, chunked)


def test_cell_score_unchanged_when_other_cells_removed(matrix, signatures):
    keep = np.arange(0, N_CELLS, 7)
    assert np.array_equal(
        seedsoil_ucell(matrix[keep], signatures), seedsoil_ucell(matrix, signatures)[keep]
    )


def test_engine_score_matches_pyucell_streamed_from_h5ad(tmp_path, signatures):
    from synthetic import write_umi_h5ad

    from seedsoil.scoring import score

    path = tmp_path / "umi.h5ad"
    write_umi_h5ad(path, 150, N_GENES, 300, seed=5, chunk_size=64)
    engine_signatures = {
        "set2": signatures["set2"],
        "with_missing": signatures["with_missing"],
        "up_down": {"up": signatures["set2"][:15], "down": signatures["set3"][:10]},
    }
    reference_signatures = {
        "set2": signatures["set2"],
        "with_missing": signatures["with_missing"],
        "up_down": signatures["set2"][:15] + [g + "-" for g in signatures["set3"][:10]],
    }
    scores = score(str(path), engine_signatures, method="ucell", chunk_size=40, max_rank=200)
    X = ad.read_h5ad(path).X
    expected = reference(X, reference_signatures, max_rank=200)
    assert list(scores.columns) == list(engine_signatures)
    assert np.abs(scores.to_numpy() - expected).max() <= TOLERANCE


def test_all_zero_cell_matches_pyucell(matrix, signatures):
    X = sp.vstack([matrix[:3], sp.csr_matrix((1, N_GENES), dtype=np.float32)]).tocsr()
    ours = seedsoil_ucell(X, signatures)
    assert np.abs(ours - reference(X, signatures)).max() <= TOLERANCE
    assert (ours[3] == 0).all()
