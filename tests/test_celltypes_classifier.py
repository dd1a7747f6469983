"""Step 6 of the cell-type assignment: a classifier trained on the sample's confidently typed
cells types the cells whose evidence fell short (``seedsoil.interpret.refine``); and the
dendritic-cell vs monocyte/macrophage contrast."""

import anndata as ad
import numpy as np
import pandas as pd
import pytest

from seedsoil.interpret.celltypes import assign_cell_types
from seedsoil.interpret.refine import refine_calls, training_cells

SIGNATURES = ["IMM_B", "IMM_NK", "ID_fibroblast"]
MARKERS = {"IMM_B": ["MS4A1", "CD79A"], "IMM_NK": ["KLRF1", "NCR1"], "ID_fibroblast": ["COL1A1"]}


def _profiles(rng, n, high):
    """``n`` cells × the five marker genes: the genes of ``high`` around 3, the others mostly 0
    (detected in a fifth of the cells at about 0.1)."""
    genes = [g for sig in SIGNATURES for g in MARKERS[sig]]
    values = rng.gamma(2.0, 0.05, size=(n, len(genes))) * (rng.random((n, len(genes))) < 0.2)
    for g in high:
        values[:, genes.index(g)] = rng.normal(3.0, 0.3, size=n)
    return pd.DataFrame(values, columns=genes)


def _sample(weak_profile=("MS4A1", "CD79A"), weak_scores=(0.3, 0.3, 0.1), weak_p=(0.9, 0.9, 0.9)):
    """20 clear B cells, 20 clear NK cells and one last cell with ``weak_scores``/``weak_p``
    whose expression shows ``weak_profile``."""
    rng = np.random.default_rng(0)
    expression = pd.concat(
        [
            _profiles(rng, 20, ["MS4A1", "CD79A"]),
            _profiles(rng, 20, ["KLRF1", "NCR1"]),
            _profiles(rng, 1, list(weak_profile)),
        ],
        ignore_index=True,
    )
    cells = [f"c{i}" for i in range(len(expression))]
    score_rows = [[0.6, 0.1, 0.0]] * 20 + [[0.1, 0.6, 0.0]] * 20 + [list(weak_scores)]
    p_rows = [[0.01, 0.8, 0.9]] * 20 + [[0.8, 0.01, 0.9]] * 20 + [list(weak_p)]
    scores = pd.DataFrame(score_rows, index=cells, columns=SIGNATURES)
    pvalues = pd.DataFrame(p_rows, index=cells, columns=SIGNATURES)
    adata = ad.AnnData(
        expression.to_numpy(dtype=np.float32),
        obs=pd.DataFrame(index=cells),
        var=pd.DataFrame(index=expression.columns),
    )
    return scores, pvalues, adata


def _assign(scores, pvalues, adata, **options):
    return assign_cell_types(
        scores, pvalues, pvalues=pvalues, expression=adata, marker_genes=MARKERS, **options
    )


def test_a_cell_without_evidence_gets_the_type_of_the_cells_it_resembles():
    calls = _assign(*_sample())
    last = calls.iloc[-1]
    assert last["cell_type_assigned"] == "B"
    assert last["assignment_method"] == "classifier"
    assert 0.5 <= last["assignment_confidence"] <= 1.0
    assert calls["assignment_method"].iloc[:40].eq("signature").all()


def test_without_the_classifier_that_cell_stays_unassigned():
    calls = _assign(*_sample(), classifier=False)
    assert calls.iloc[-1]["cell_type_assigned"] == "unassigned"
    assert calls.iloc[-1]["assignment_method"] == ""


def test_the_classifier_never_overrules_a_call_the_scores_support():
    # NK by its scores (p 0.01) although its expression looks like a B cell
    calls = _assign(*_sample(weak_scores=(0.1, 0.6, 0.0), weak_p=(0.8, 0.01, 0.9)))
    assert calls.iloc[-1]["cell_type_assigned"] == "NK"
    assert calls.iloc[-1]["assignment_method"] == "signature"


def test_the_classifier_never_gives_a_type_whose_core_markers_the_cell_lacks():
    # fibroblast genes only, no B or NK core gene: B and NK are inadmissible, and no fibroblast
    # was typed to learn from, so the cell stays unassigned
    scores, pvalues, adata = _sample(weak_profile=("COL1A1",))
    adata.X[-1, :4] = 0.0
    core = {"IMM_B": [["MS4A1"], ["CD79A"]], "IMM_NK": [["KLRF1"], ["NCR1"]]}
    calls = _assign(scores, pvalues, adata, core_markers=core)
    assert calls.iloc[-1]["cell_type_assigned"] == "unassigned"
    assert calls.iloc[-1]["assignment_method"] == ""
    assert calls["cell_type_assigned"].iloc[:20].eq("B").all()


def test_training_cells_leave_out_types_with_too_few_cells():
    labels = np.array([0] * 6 + [1] * 4 + [-1] * 3)
    chosen = training_cells(labels, n_types=2, min_cells=5)
    assert chosen.tolist() == list(range(6))


def test_training_cells_cap_each_type_reproducibly():
    labels = np.array([0] * 50 + [1] * 8)
    first = training_cells(labels, n_types=2, max_cells=10, seed=3)
    again = training_cells(labels, n_types=2, max_cells=10, seed=3)
    assert np.array_equal(first, again)
    assert (labels[first] == 0).sum() == 10 and (labels[first] == 1).sum() == 8


def _two_clusters():
    rng = np.random.default_rng(1)
    x = np.vstack([rng.normal([3, 0], 0.3, size=(10, 2)), rng.normal([0, 3], 0.3, size=(10, 2))])
    x = np.vstack([x, [[3.1, 0.1]]])  # the candidate: like type 0
    labels = np.array([0] * 10 + [1] * 10 + [-1])
    return x, labels


def test_refine_calls_predicts_an_allowed_type_with_its_probability():
    x, labels = _two_clusters()
    allowed = np.ones((21, 2), dtype=bool)
    codes, probability = refine_calls(lambda cells: x[cells], labels, np.array([20]), allowed)
    assert codes.tolist() == [0]
    assert 0.5 <= probability[0] <= 1.0


def test_refine_calls_never_gives_a_type_the_cell_is_not_allowed():
    x, labels = _two_clusters()
    allowed = np.ones((21, 2), dtype=bool)
    allowed[20, 0] = False  # e.g. the cell lacks type 0's core markers
    codes, probability = refine_calls(lambda cells: x[cells], labels, np.array([20]), allowed)
    assert codes.tolist() == [-1] and probability.tolist() == [0.0]


def test_refine_calls_needs_two_learnable_types():
    x, labels = _two_clusters()
    labels[10:20] = -1
    codes, _ = refine_calls(lambda cells: x[cells], labels, np.array([20]), np.ones((21, 2), bool))
    assert codes.tolist() == [-1]


DC_SIGNATURES = ["IMM_monocyte_classical", "IMM_dendritic"]


def _myeloid(expression: dict[str, float]):
    """One cell scored as a classical monocyte (p 0.01) with ``expression``."""
    scores = pd.DataFrame([[0.5, 0.3]], index=["c0"], columns=DC_SIGNATURES)
    pvalues = pd.DataFrame([[0.01, 0.02]], index=["c0"], columns=DC_SIGNATURES)
    adata = ad.AnnData(
        np.array([list(expression.values())], dtype=np.float32),
        obs=pd.DataFrame(index=["c0"]),
        var=pd.DataFrame(index=list(expression)),
    )
    return assign_cell_types(scores, pvalues, pvalues=pvalues, expression=adata)


def test_a_monocyte_call_with_dendritic_genes_and_no_monocyte_genes_is_a_dendritic_cell():
    called = _myeloid({"FCER1A": 2.0, "CLEC10A": 1.0, "CD14": 0.0, "FCN1": 0.0})
    assert called.loc["c0", "cell_type_assigned"] == "dendritic"
    assert called.loc["c0", "assignment_method"] == "contrast"


def test_a_monocyte_call_with_monocyte_genes_stays_a_monocyte():
    called = _myeloid({"FCER1A": 0.0, "CLEC10A": 0.0, "CD14": 2.0, "FCN1": 1.0})
    assert called.loc["c0", "cell_type_assigned"] == "classical monocyte"
    assert called.loc["c0", "assignment_method"] == "signature"


def test_a_contrast_call_is_as_confident_as_the_two_siblings_together():
    # scores favour the monocyte; the DC genes decide: confidence is P(monocyte) + P(dendritic)
    dc = _myeloid({"FCER1A": 2.0, "CLEC10A": 1.0, "CD14": 0.0, "FCN1": 0.0})
    monocyte = _myeloid({"FCER1A": 0.0, "CLEC10A": 0.0, "CD14": 2.0, "FCN1": 1.0})
    # one cell, two types: the posterior sums to 1 over the pair
    assert dc.loc["c0", "assignment_confidence"] == pytest.approx(1.0, abs=1e-12)
    assert monocyte.loc["c0", "assignment_confidence"] < 1.0
