"""Cell-type assignment by significant-argmax and agreement with labels."""

import numpy as np
import pandas as pd
import pytest

from seedsoil.interpret.celltypes import (
    assign_cell_types,
    confusion_table,
    has_labels,
    immune_labels,
    label_agreement,
)

SIGNATURES = ["IMM_B", "IMM_NK", "ID_fibroblast"]


def _tables(score_rows, fdr_rows):
    cells = [f"c{i}" for i in range(len(score_rows))]
    scores = pd.DataFrame(score_rows, index=cells, columns=SIGNATURES, dtype=float)
    fdr = pd.DataFrame(fdr_rows, index=cells, columns=SIGNATURES, dtype=float)
    return scores, fdr


def test_argmax_is_taken_among_significant_signatures_only():
    scores, fdr = _tables([[0.2, 0.6, 0.1]], [[0.01, 0.3, 0.9]])
    assert assign_cell_types(scores, fdr).loc["c0", "cell_type_assigned"] == "B"


def test_cell_significant_for_nothing_is_unassigned():
    scores, fdr = _tables([[0.5, 0.4, 0.3]], [[0.2, 0.3, 0.9]])
    row = assign_cell_types(scores, fdr).loc["c0"]
    assert row["cell_type_assigned"] == "unassigned"
    assert np.isnan(row["assignment_score"]) and row["assignment_confidence"] == 0.0


def test_confidence_is_the_relative_margin_over_the_runner_up():
    scores, fdr = _tables([[0.5, 0.4, 0.1], [0.5, 0.1, 0.0]], [[0.01, 0.01, 0.9], [0.01, 0.9, 0.9]])
    out = assign_cell_types(scores, fdr)
    assert out["assignment_score"].tolist() == [0.5, 0.5]
    assert out["assignment_confidence"].tolist() == pytest.approx([0.2, 0.8], abs=1e-12)


def test_signatures_missing_from_scores_are_ignored():
    scores, fdr = _tables([[0.5, 0.4, 0.1]], [[0.01, 0.01, 0.9]])
    out = assign_cell_types(scores.drop(columns="IMM_B"), fdr.drop(columns="IMM_B"))
    assert out.loc["c0", "cell_type_assigned"] == "NK"


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
