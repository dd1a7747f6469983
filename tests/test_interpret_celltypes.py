"""Cell-type assignment (evidence, neighbourhood vote, core markers, posterior) and agreement
with labels."""

import anndata as ad
import numpy as np
import pandas as pd
import pytest

from seedsoil.interpret.celltypes import (
    assign_cell_types,
    confusion_table,
    evidence_scale,
    has_labels,
    immune_labels,
    label_agreement,
    neighbour_index,
)

SIGNATURES = ["IMM_B", "IMM_NK", "ID_fibroblast"]


def _tables(score_rows, p_rows):
    cells = [f"c{i}" for i in range(len(score_rows))]
    scores = pd.DataFrame(score_rows, index=cells, columns=SIGNATURES, dtype=float)
    pvalues = pd.DataFrame(p_rows, index=cells, columns=SIGNATURES, dtype=float)
    return scores, pvalues


def _assign(scores, pvalues, **options):
    return assign_cell_types(scores, pvalues, pvalues=pvalues, **options)


def _expression(cells, columns: dict[str, list[float]]) -> ad.AnnData:
    return ad.AnnData(
        np.array(list(columns.values()), dtype=np.float32).T,
        obs=pd.DataFrame(index=cells),
        var=pd.DataFrame(index=list(columns)),
    )


def test_a_lone_cell_gets_the_type_of_its_highest_score():
    scores, pvalues = _tables([[0.2, 0.6, 0.1]], [[0.01, 0.01, 0.9]])
    assert _assign(scores, pvalues).loc["c0", "cell_type_assigned"] == "NK"


def test_a_cell_whose_best_type_beats_no_random_signature_is_unassigned():
    scores, pvalues = _tables([[0.5, 0.4, 0.3]], [[0.8, 0.9, 0.9]])
    row = _assign(scores, pvalues).loc["c0"]
    assert row["cell_type_assigned"] == "unassigned"
    assert np.isnan(row["assignment_score"]) and row["assignment_confidence"] == 0.0


def test_neighbour_averaged_evidence_gives_a_sparse_cell_its_neighbourhood_type():
    # 16 clear NK cells and one sparse cell: its own scores lean B by 0.01, but its
    # neighbourhood is NK by 0.3, so (own + neighbourhood mean) / 2 is NK.
    rows = [[0.1, 0.5, 0.0]] * 16 + [[0.16, 0.15, 0.0]]
    scores, pvalues = _tables(rows, [[0.01, 0.01, 0.9]] * 17)
    called = _assign(scores, pvalues, neighbour_evidence=True)
    assert called.loc["c16", "cell_type_assigned"] == "NK"


def test_by_default_a_minority_cell_keeps_its_own_best_type_among_neighbours_of_another():
    # One B cell among 16 NK cells: its own B score leads by 0.3; the sample's majority does
    # not rank the types for it (averaging with the NK neighbours would tie it at NK).
    rows = [[0.1, 0.5, 0.0]] * 16 + [[0.5, 0.2, 0.0]]
    scores, pvalues = _tables(rows, [[0.01, 0.01, 0.9]] * 17)
    assert _assign(scores, pvalues).loc["c16", "cell_type_assigned"] == "B"
    assert (
        _assign(scores, pvalues, neighbour_evidence=True).loc["c16", "cell_type_assigned"] == "NK"
    )


def test_confidence_is_the_softmax_posterior_of_the_called_type():
    scores, pvalues = _tables([[0.2, 0.6, 0.1]], [[0.01, 0.01, 0.9]])
    evidence = np.array([0.2, 0.6, 0.1]) / evidence_scale(scores.to_numpy())
    expected = np.exp(evidence[1]) / np.exp(evidence).sum()
    assert _assign(scores, pvalues).loc["c0", "assignment_confidence"] == pytest.approx(expected)


def test_a_type_whose_core_markers_are_in_the_panel_needs_one_detected():
    scores, pvalues = _tables([[0.2, 0.6, 0.1]], [[0.01, 0.01, 0.9]])
    expression = _expression(["c0"], {"NCR1": [0.0], "CD79A": [2.0]})
    out = _assign(scores, pvalues, expression=expression, core_markers={"IMM_NK": [["NCR1"]]})
    assert out.loc["c0", "cell_type_assigned"] == "B"


def test_a_type_needs_half_of_its_present_core_groups_detected():
    scores, pvalues = _tables([[0.2, 0.6, 0.1]], [[0.01, 0.01, 0.9]])
    expression = _expression(["c0"], {"NCR1": [1.0], "KLRF1": [0.0], "NCAM1": [0.0]})
    core = {"IMM_NK": [["NCR1"], ["KLRF1"], ["NCAM1"]]}  # 1 of 3 groups detected: not enough
    out = _assign(scores, pvalues, expression=expression, core_markers=core)
    assert out.loc["c0", "cell_type_assigned"] == "B"


def test_core_markers_absent_from_the_panel_do_not_block_a_type():
    scores, pvalues = _tables([[0.2, 0.6, 0.1]], [[0.01, 0.01, 0.9]])
    expression = _expression(["c0"], {"CD79A": [2.0]})
    out = _assign(scores, pvalues, expression=expression, core_markers={"IMM_NK": [["NCR1"]]})
    assert out.loc["c0", "cell_type_assigned"] == "NK"


def test_markers_column_lists_detected_core_markers_highest_first():
    scores, pvalues = _tables([[0.2, 0.6, 0.1]], [[0.01, 0.01, 0.9]])
    expression = _expression(["c0"], {"NCR1": [1.0], "KLRF1": [3.0], "NCAM1": [0.0]})
    core = {"IMM_NK": [["NCR1", "NCAM1"], ["KLRF1"]]}
    out = _assign(scores, pvalues, expression=expression, core_markers=core)
    assert out.loc["c0", "assignment_markers"] == "KLRF1,NCR1"


def test_close_runner_up_is_unassigned_when_a_minimum_confidence_is_asked():
    scores, pvalues = _tables([[0.50, 0.50, 0.0]], [[0.01, 0.01, 0.9]])
    out = _assign(scores, pvalues, min_confidence=0.6)
    assert out.loc["c0", "cell_type_assigned"] == "unassigned"


def test_signatures_missing_from_scores_are_ignored():
    scores, pvalues = _tables([[0.5, 0.4, 0.1]], [[0.01, 0.01, 0.9]])
    out = _assign(scores.drop(columns="IMM_B"), pvalues.drop(columns="IMM_B"))
    assert out.loc["c0", "cell_type_assigned"] == "NK"


def test_neighbours_never_include_the_cell_itself():
    embedding = np.arange(20, dtype=float).reshape(10, 2)
    neighbours = neighbour_index(embedding, n_neighbors=3)
    assert neighbours.shape == (10, 3)
    assert not (neighbours == np.arange(10)[:, None]).any()


def test_perfect_assignment_has_ari_one_and_diagonal_confusion():
    labels = pd.Series(["x"] * 4 + ["y"] * 4, index=[f"c{i}" for i in range(8)])
    assigned = labels.map({"x": "B", "y": "NK"})
    agreement = label_agreement(labels, assigned)
    assert agreement["ari_all"] == pytest.approx(1.0) and agreement["majority_accuracy"] == 1.0
    table = confusion_table(labels, assigned)
    assert table.loc["x", "B"] == 4 and table.loc["x", "NK"] == 0


def test_unassigned_cells_lower_ari_all_but_not_ari_assigned():
    labels = pd.Series(["x"] * 4 + ["y"] * 4, index=[f"c{i}" for i in range(8)])
    assigned = pd.Series(
        ["B", "B", "B", "unassigned", "NK", "NK", "NK", "unassigned"], index=labels.index
    )
    agreement = label_agreement(labels, assigned)
    assert agreement["ari_assigned"] == pytest.approx(1.0)
    assert agreement["ari_all"] < 1.0 and agreement["frac_assigned"] == 0.75


def test_labels_are_detected_only_when_not_all_unlabelled():
    assert not has_labels(pd.Series(["unlabelled"] * 3))
    assert has_labels(pd.Series(["unlabelled", "T cell", "unlabelled"]))


def test_a_label_is_immune_when_most_of_its_cells_are_assigned_an_immune_type():
    labels = pd.Series(["Tcell"] * 3 + ["tumour"] * 3)
    assigned = pd.Series(
        ["CD4 T", "CD4 T", "unassigned", "epithelial/tumour", "epithelial/tumour", "CD4 T"]
    )
    assert immune_labels(labels, assigned) == {"Tcell"}


def test_ari_is_the_adjusted_rand_index_of_the_label_strings():
    from sklearn.metrics import adjusted_rand_score

    rng = np.random.default_rng(0)
    labels = pd.Series(rng.choice(["x", "y", "z"], 200), index=[f"c{i}" for i in range(200)])
    assigned = pd.Series(rng.choice(["B", "NK", "unassigned"], 200), index=labels.index)
    agreement = label_agreement(labels, assigned)
    keep = assigned != "unassigned"
    assert agreement["ari_all"] == adjusted_rand_score(labels, assigned)  # exact: same counts
    assert agreement["ari_assigned"] == adjusted_rand_score(labels[keep], assigned[keep])


def _b_plasma_tables():
    cells = ["c0"]
    scores = pd.DataFrame([[0.3, 0.6]], index=cells, columns=["IMM_B", "IMM_plasma"])
    pvalues = pd.DataFrame([[0.01, 0.01]], index=cells, columns=["IMM_B", "IMM_plasma"])
    return scores, pvalues


def test_a_plasma_call_with_ms4a1_and_no_plasma_genes_on_the_panel_falls_back_to_b():
    scores, pvalues = _b_plasma_tables()
    expression = _expression(["c0"], {"MS4A1": [1.5], "CD79A": [2.0]})
    out = _assign(scores, pvalues, expression=expression)
    assert out.loc["c0", "cell_type_assigned"] == "B"


def test_a_plasma_call_stays_plasma_when_plasma_genes_outweigh_ms4a1():
    scores, pvalues = _b_plasma_tables()
    expression = _expression(["c0"], {"MS4A1": [0.0], "JCHAIN": [4.0]})
    out = _assign(scores, pvalues, expression=expression)
    assert out.loc["c0", "cell_type_assigned"] == "plasma"


def test_neighbours_are_found_in_cell_type_space_not_by_state_programmes():
    # 16 NK cells, 16 B cells sharing ten state programmes with the last cell, which leans NK.
    # Its neighbours must be the NK cells (identity space); were the state programmes part of
    # the embedding, the B cells would be its neighbours and outvote its own NK evidence.
    rows = [[0.1, 0.5, 0.0]] * 16 + [[0.5, 0.1, 0.0]] * 16 + [[0.16, 0.25, 0.0]]
    scores, pvalues = _tables(rows, [[0.01, 0.01, 0.9]] * 33)
    for k in range(10):
        scores[f"STATE_{k}"] = [0.0] * 16 + [10.0] * 17
    assert _assign(scores, pvalues).loc["c32", "cell_type_assigned"] == "NK"


def _t_cell_tables(p_cd8, p_cd4):
    columns = ["IMM_CD8_cytotoxic", "IMM_CD4_T", "ID_fibroblast"]
    scores = pd.DataFrame([[0.6, 0.4, 0.1]], index=["c0"], columns=columns)
    pvalues = pd.DataFrame([[p_cd8, p_cd4, 0.9]], index=["c0"], columns=columns)
    return scores, pvalues


def test_an_unsupported_subtype_with_a_supported_sibling_gets_the_lineage():
    scores, pvalues = _t_cell_tables(p_cd8=0.9, p_cd4=0.01)
    row = _assign(scores, pvalues).loc["c0"]
    assert row["cell_type_assigned"] == "T/NK cell"
    assert row["assignment_confidence"] > 0.5  # CD8 + CD4 posterior, fibroblast far below


def test_a_supported_subtype_is_called_as_such_not_as_its_lineage():
    scores, pvalues = _t_cell_tables(p_cd8=0.01, p_cd4=0.01)
    assert _assign(scores, pvalues).loc["c0", "cell_type_assigned"] == "CD8 T"
