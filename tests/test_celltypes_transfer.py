"""Step 7 of the cell-type assignment: cells the marker evidence left unassigned get the subtype
a majority of their transcriptome neighbours carries (``seedsoil.interpret.transfer``)."""

import anndata as ad
import numpy as np
import pandas as pd
import pytest
from synthetic import separable_populations

from seedsoil.interpret.celltypes import assign_cell_types
from seedsoil.interpret.transfer import _majority, transfer_labels

SIGNATURES = ["IMM_B", "IMM_NK"]


def _adata(values):
    return ad.AnnData(
        values,
        obs=pd.DataFrame(index=[f"c{i}" for i in range(values.shape[0])]),
        var=pd.DataFrame(index=[f"G{j}" for j in range(values.shape[1])]),
    )


def test_a_candidate_gets_the_subtype_of_the_population_it_belongs_to():
    values = separable_populations([30, 30])
    codes = np.r_[np.zeros(29, int), -1, np.ones(30, int)]  # cell 29: a B-like cell, no call
    found, share = transfer_labels(codes, np.array([29]), _adata(values))
    assert found.tolist() == [0]
    assert share[0] == pytest.approx(1.0)  # all 15 neighbours are called 0


def test_a_population_no_call_covers_keeps_no_type():
    # 30 B, 30 NK and 30 cells of a third population, none of which has a call
    values = separable_populations([30, 30, 30])
    codes = np.r_[np.zeros(30, int), np.ones(30, int), np.full(30, -1)]
    found, share = transfer_labels(codes, np.arange(60, 90), _adata(values))
    assert (found == -1).all()
    assert np.isnan(share).all()


def test_exactly_half_of_the_neighbours_is_no_majority():
    found = np.array([[9, 0, 1, 2, 3]])  # the cell itself (row 9) first, then four neighbours
    labels = np.zeros(10, dtype=int)
    labels[[2, 3]] = 1
    labels[9] = -1
    codes, share = _majority(found, np.array([9]), labels, k=4)
    assert codes.tolist() == [-1]  # 2 of 4 for code 0 and 2 of 4 for code 1
    labels[2] = 0
    codes, share = _majority(found, np.array([9]), labels, k=4)
    assert codes.tolist() == [0] and share[0] == pytest.approx(0.75)


def test_the_cell_itself_is_never_its_own_neighbour():
    found = np.array([[0, 1, 2]])
    labels = np.array([5, -1, -1])
    codes, _ = _majority(found, np.array([0]), labels, k=2)
    assert codes.tolist() == [-1]


def test_a_file_and_the_same_matrix_in_memory_give_the_same_labels(tmp_path):
    values = separable_populations([40, 40])
    codes = np.r_[np.zeros(40, int), np.ones(40, int)]
    codes[[3, 50]] = -1
    path = tmp_path / "cells.h5ad"
    adata = _adata(values)
    adata.X = __import__("scipy.sparse", fromlist=["csr_matrix"]).csr_matrix(adata.X)
    adata.write_h5ad(path)
    in_memory = transfer_labels(codes, np.array([3, 50]), adata)
    from_file = transfer_labels(codes, np.array([3, 50]), str(path))
    assert in_memory[0].tolist() == from_file[0].tolist() == [0, 1]
    np.testing.assert_array_equal(in_memory[1], from_file[1])


def test_a_reference_subsample_still_finds_the_population():
    # 200 cells, reference capped at 60: neighbours are searched among 60 seeded cells
    values = separable_populations([100, 100])
    codes = np.r_[np.zeros(100, int), np.ones(100, int)]
    candidates = np.array([10, 150])
    codes[candidates] = -1
    found, _ = transfer_labels(codes, candidates, _adata(values), max_reference=60)
    assert found.tolist() == [0, 1]


def _sample(n=30):
    """``n`` B cells and ``n`` NK cells with clear scores (p 0.2), except the first B cell, whose
    scores beat no null (p 0.99, also averaged with its neighbours'); no marker genes are
    given, the matrix holds the transcriptome."""
    values = separable_populations([n, n])
    cells = [f"c{i}" for i in range(2 * n)]
    scores = pd.DataFrame([[0.6, 0.1]] * n + [[0.1, 0.6]] * n, index=cells, columns=SIGNATURES)
    pvalues = pd.DataFrame([[0.2, 0.8]] * n + [[0.8, 0.2]] * n, index=cells, columns=SIGNATURES)
    scores.iloc[0] = [0.2, 0.1]
    pvalues.iloc[0] = [0.99, 0.99]
    return scores, pvalues, _adata(values)


def test_the_assignment_types_a_cell_without_evidence_by_its_neighbours():
    scores, pvalues, adata = _sample()
    calls = assign_cell_types(scores, pvalues, pvalues=pvalues, transcriptome=adata)
    first = calls.iloc[0]
    assert first["cell_type_assigned"] == "B"
    assert first["assignment_method"] == "transcriptome neighbours"
    assert first["assignment_confidence"] == pytest.approx(1.0)
    assert calls["assignment_method"].iloc[1:].eq("signature").all()


def test_without_the_transcriptome_that_cell_stays_unassigned():
    scores, pvalues, _ = _sample()
    calls = assign_cell_types(scores, pvalues, pvalues=pvalues)
    assert calls.iloc[0]["cell_type_assigned"] == "unassigned"


def test_transcriptome_neighbours_never_overrule_a_call():
    # the first cell is called NK by its scores although its transcriptome is a B cell's
    scores, pvalues, adata = _sample()
    scores.iloc[0] = [0.1, 0.6]
    pvalues.iloc[0] = [0.8, 0.01]
    calls = assign_cell_types(scores, pvalues, pvalues=pvalues, transcriptome=adata)
    assert calls.iloc[0]["cell_type_assigned"] == "NK"
    assert calls.iloc[0]["assignment_method"] == "signature"


def test_many_candidates_are_read_in_a_second_pass_with_the_same_result():
    # reference capped at 60 of 200 cells: 100 candidates are read in a second pass, 50 in the
    # reference's pass; the reference subsample is the same, and so are the labels
    values = separable_populations([100, 100])
    codes = np.r_[np.zeros(100, int), np.ones(100, int)]
    candidates = np.r_[np.arange(0, 50), np.arange(100, 150)]
    codes[candidates] = -1
    two_passes = transfer_labels(codes, candidates, _adata(values), max_reference=60)
    halves = [
        transfer_labels(codes, half, _adata(values), max_reference=60)
        for half in (candidates[:50], candidates[50:])
    ]
    np.testing.assert_array_equal(two_passes[0], np.r_[halves[0][0], halves[1][0]])
    np.testing.assert_array_equal(two_passes[1], np.r_[halves[0][1], halves[1][1]])
    found = two_passes[0]
    assert (found >= 0).any() and not (found[:50] == 1).any() and not (found[50:] == 0).any()
