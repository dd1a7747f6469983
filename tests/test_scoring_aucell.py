"""AUCell method: parity with decoupler 2.2.0 ``mt.aucell`` and the properties of the kernel.

Tolerance: parity is max |Δ| <= 1e-6 (integer rank sums and one division, so in fact
exact); determinism and chunking are bit-identical.
"""

from __future__ import annotations

import anndata as ad
import decoupler as dc
import numba
import numpy as np
import pandas as pd
import pytest
import scipy.sparse as sp
from synthetic import cell_names, gene_names, log_normalise, umi_counts

from seedsoil.errors import InputError
from seedsoil.scoring import aucell
from seedsoil.scoring.base import GeneSet
from seedsoil.scoring.stats import gene_stats
from seedsoil.util import numba_threads

TOLERANCE = 1e-6
N_CELLS, N_GENES = 240, 3000


@pytest.fixture(scope="module")
def matrix() -> sp.csr_matrix:
    X = log_normalise(umi_counts(N_CELLS, N_GENES, 300, seed=13))
    assert (X.getnnz(axis=0) == 0).sum() > 50  # all-zero genes that decoupler drops
    return X


@pytest.fixture(scope="module")
def signatures() -> dict[str, list[str]]:
    genes = gene_names(N_GENES)
    rng = np.random.default_rng(4)
    picked = {
        f"set{i}": [genes[j] for j in rng.choice(N_GENES, 8 + 20 * i, replace=False)]
        for i in range(4)
    }
    picked["with_missing"] = picked["set1"][:10] + ["ABSENT1", "ABSENT2"]
    picked["below_tmin"] = picked["set2"][:4]
    return picked


def gene_sets(signatures: dict[str, list[str]], n_genes: int) -> list[GeneSet]:
    index = {g: i for i, g in enumerate(gene_names(n_genes))}
    sets = []
    for name, genes in signatures.items():
        up = np.unique(np.array([index[g] for g in genes if g in index], np.int64))
        missing = tuple(g for g in genes if g not in index)
        sets.append(
            GeneSet(name, up, np.array([], np.int64), np.ones(up.size), np.ones(0), missing)
        )
    return sets


def reference(X: sp.csr_matrix, signatures: dict[str, list[str]], **options) -> pd.DataFrame:
    """decoupler's scores, NaN where it leaves a set (below tmin) or a cell (all zero) out."""
    adata = ad.AnnData(
        X,
        obs=pd.DataFrame(index=cell_names(X.shape[0])),
        var=pd.DataFrame(index=gene_names(X.shape[1])),
    )
    net = pd.DataFrame(
        [(name, g) for name, genes in signatures.items() for g in genes],
        columns=["source", "target"],
    )
    scored = dc.mt.aucell(adata, net, **options)
    scores = (scored if scored is not None else adata).obsm["score_aucell"]
    return scores.reindex(index=adata.obs_names, columns=list(signatures))


def seedsoil_aucell(X, signatures, stats_of=None, **options) -> np.ndarray:
    stats = gene_stats([X if stats_of is None else stats_of], X.shape[1])
    prepared = aucell.prepare(gene_sets(signatures, X.shape[1]), X.shape[1], stats, **options)
    return aucell.score_chunk(X, prepared)


def assert_parity(ours: np.ndarray, theirs: pd.DataFrame):
    theirs = theirs.to_numpy()
    assert np.array_equal(np.isnan(ours), np.isnan(theirs))
    assert np.nanmax(np.abs(ours - theirs)) <= TOLERANCE


def test_matches_decoupler_with_defaults(matrix, signatures):
    ours = seedsoil_aucell(matrix, signatures)
    assert_parity(ours, reference(matrix, signatures))
    assert np.isnan(ours[:, list(signatures).index("below_tmin")]).all()


def test_matches_decoupler_when_zero_genes_reach_n_up(matrix, signatures):
    # n_up above a cell's non-zero count puts tied zeros, ordered by the shuffle, in the AUC.
    n_up = 500
    assert (matrix.getnnz(axis=1) < n_up).mean() > 0.5
    assert_parity(
        seedsoil_aucell(matrix, signatures, n_up=n_up), reference(matrix, signatures, n_up=n_up)
    )


def test_matches_decoupler_with_small_n_up_and_tmin(matrix, signatures):
    options = {"n_up": 37.5, "tmin": 3}
    assert_parity(
        seedsoil_aucell(matrix, signatures, **options), reference(matrix, signatures, **options)
    )


def test_matches_decoupler_with_negative_values(matrix, signatures):
    shifted = matrix.copy()
    shifted.data = shifted.data - np.float32(2.0)  # negatives rank below the zeros
    options = {"n_up": 1000}
    assert_parity(
        seedsoil_aucell(shifted, signatures, **options), reference(shifted, signatures, **options)
    )


def test_all_zero_cell_scores_nan(matrix, signatures):
    X = sp.vstack([matrix[:3], sp.csr_matrix((1, N_GENES), dtype=np.float32)]).tocsr()
    scores = seedsoil_aucell(X, signatures, stats_of=matrix)
    assert np.isnan(scores[3]).all()
    assert np.isfinite(scores[:3, 0]).all()


def test_n_up_out_of_range_is_refused(matrix, signatures):
    with pytest.raises(InputError, match="n_up"):
        seedsoil_aucell(matrix, signatures, n_up=1)


def test_bit_identical_across_thread_counts(matrix, signatures):
    before = numba.get_num_threads()
    try:
        numba.set_num_threads(1)
        one = seedsoil_aucell(matrix, signatures, n_up=500)
        numba.set_num_threads(min(2, numba.config.NUMBA_NUM_THREADS))
        two = seedsoil_aucell(matrix, signatures, n_up=500)
    finally:
        numba.set_num_threads(before)
    assert np.array_equal(one, two, equal_nan=True)


def test_bit_identical_across_chunkings_with_dataset_stats(matrix, signatures):
    whole = seedsoil_aucell(matrix, signatures)
    chunked = np.vstack(
        [
            seedsoil_aucell(matrix[s : s + 37], signatures, stats_of=matrix)
            for s in range(0, N_CELLS, 37)
        ]
    )
    assert np.array_equal(whole, chunked, equal_nan=True)


def test_cell_score_unchanged_when_removed_cells_keep_the_gene_filter(matrix, signatures):
    # What holds for AUCell: removing cells leaves the others' scores unchanged as long as
    # the set of all-zero genes (which fixes the shuffle) is the same.
    nonempty = matrix.getnnz(axis=0) > 0
    keep = np.arange(N_CELLS) % 3 != 0
    for gene in np.flatnonzero(nonempty & (matrix[keep].getnnz(axis=0) == 0)):
        keep[matrix[:, gene].nonzero()[0][0]] = True
    assert not keep.all()
    assert np.array_equal(matrix[keep].getnnz(axis=0) > 0, nonempty)
    subset = seedsoil_aucell(matrix[keep], signatures)
    assert np.array_equal(subset, seedsoil_aucell(matrix, signatures)[keep], equal_nan=True)


def test_removing_the_only_cell_of_a_gene_changes_the_shuffle(matrix, signatures):
    single = np.flatnonzero(matrix.getnnz(axis=0) == 1)
    cell = matrix[:, single[0]].nonzero()[0][0]
    keep = np.arange(N_CELLS) != cell
    subset = seedsoil_aucell(matrix[keep], signatures)
    assert not np.array_equal(subset, seedsoil_aucell(matrix, signatures)[keep], equal_nan=True)


def test_engine_score_in_chunks_matches_decoupler(matrix, signatures):
    from seedsoil.scoring import score

    adata = ad.AnnData(
        matrix,
        obs=pd.DataFrame(index=cell_names(N_CELLS)),
        var=pd.DataFrame(index=gene_names(N_GENES)),
    )
    # Chunks of 50 cells: the gene filter and shuffle still come from the statistics pass over all cells.
    scores = score(adata, signatures, method="aucell", chunk_size=50)
    assert list(scores.columns) == list(signatures)
    assert_parity(scores.to_numpy(), reference(matrix, signatures))


def test_detection_pass_counts_as_the_full_statistics_pass(matrix):
    """aucell's cheaper statistics pass (nnz only) equals gene_stats' nnz for any thread
    count and chunking, explicit zeros not counted."""
    from seedsoil.scoring.stats import gene_detection

    untidy = matrix.copy().tolil()
    untidy[3, :40] = 0
    untidy = untidy.tocsr()
    untidy.data[::17] = 0  # explicit zeros kept in the structure
    expected = gene_stats([untidy], untidy.shape[1])
    chunks = [untidy[i : i + 70] for i in range(0, untidy.shape[0], 70)]
    for threads in (1, 2):
        with numba_threads(threads):
            got = gene_detection(chunks, untidy.shape[1])
        assert np.array_equal(got.nnz, expected.nnz)
        assert got.n_cells == expected.n_cells
        assert np.isnan(got.sum).all()
