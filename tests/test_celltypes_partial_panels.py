"""Cell-type assignment on partial panels and mixed samples: own-marker evidence, T vs NK,
platelet vs endothelial and epithelial cells, the cluster vote, and the shipped cores."""

import anndata as ad
import numpy as np
import pandas as pd
import pytest

from seedsoil import signatures
from seedsoil.interpret.celltypes import assign_cell_types, majority_vote, over_cluster
from seedsoil.signatures import load_library


def _tables(columns, score_rows, p_rows):
    cells = [f"c{i}" for i in range(len(score_rows))]
    scores = pd.DataFrame(score_rows, index=cells, columns=columns, dtype=float)
    pvalues = pd.DataFrame(p_rows, index=cells, columns=columns, dtype=float)
    return scores, pvalues


def _expression(cells, columns: dict[str, list[float]]) -> ad.AnnData:
    return ad.AnnData(
        np.array(list(columns.values()), dtype=np.float32).T,
        obs=pd.DataFrame(index=cells),
        var=pd.DataFrame(index=list(columns)),
    )


def _assign(scores, pvalues, **options):
    return assign_cell_types(scores, pvalues, pvalues=pvalues, **options)["cell_type_assigned"]


# ------------------------------------------------------------------ own-marker evidence


def _plasma_neighbourhood():
    # 16 plasma cells with JCHAIN and one cell without it whose scores lean plasma: its
    # neighbours all carry JCHAIN, so the neighbourhood alone would admit plasma.
    columns = ["IMM_plasma", "IMM_B", "ID_fibroblast"]
    rows = [[0.6, 0.2, 0.0]] * 16 + [[0.5, 0.45, 0.0]]
    scores, pvalues = _tables(columns, rows, [[0.01, 0.01, 0.9]] * 17)
    cells = list(scores.index)
    expression = _expression(cells, {"JCHAIN": [3.0] * 16 + [0.0], "CD79A": [1.0] * 17})
    core = {"IMM_plasma": [["JCHAIN"]], "IMM_B": [["CD79A"]]}
    return scores, pvalues, expression, core


def test_a_type_needs_its_own_core_gene_in_the_cell_when_the_panel_has_one():
    scores, pvalues, expression, core = _plasma_neighbourhood()
    calls = _assign(scores, pvalues, expression=expression, core_markers=core)
    assert calls["c16"] == "B" and (calls.iloc[:16] == "plasma").all()


def test_without_the_own_marker_rule_neighbours_can_carry_the_call():
    scores, pvalues, expression, core = _plasma_neighbourhood()
    calls = _assign(scores, pvalues, expression=expression, core_markers=core, own_markers=False)
    assert calls["c16"] == "plasma"


# ------------------------------------------------------------------ sibling contrasts


def _cd8_nk_cell(genes):
    columns = ["IMM_CD8_cytotoxic", "IMM_NK", "ID_fibroblast"]
    scores, pvalues = _tables(columns, [[0.6, 0.5, 0.0]], [[0.01, 0.01, 0.9]])
    return _assign(scores, pvalues, expression=_expression(["c0"], genes))["c0"]


def test_a_cytotoxic_cell_without_cd3_but_with_nk_receptors_is_nk():
    assert _cd8_nk_cell({"CD3E": [0.0], "KLRF1": [2.0], "NCAM1": [1.0]}) == "NK"


def test_a_cytotoxic_cell_with_cd3_stays_a_t_cell():
    assert _cd8_nk_cell({"CD3E": [2.0], "KLRF1": [0.0], "NCAM1": [0.0]}) == "CD8 T"


def _endothelial_platelet_cell(genes):
    columns = ["ID_endothelial", "IMM_platelet", "ID_fibroblast"]
    scores, pvalues = _tables(columns, [[0.6, 0.5, 0.0]], [[0.01, 0.01, 0.9]])
    return _assign(scores, pvalues, expression=_expression(["c0"], genes))["c0"]


def test_an_endothelial_call_carried_by_platelet_shared_genes_is_a_platelet():
    # VWF is in megakaryocytes and platelets too: with ITGA2B/GP1BA and no endothelium-only
    # gene detected, the cell is a platelet.
    genes = {"VWF": [2.0], "ITGA2B": [1.0], "GP1BA": [1.0], "CDH5": [0.0], "FLT1": [0.0]}
    assert _endothelial_platelet_cell(genes) == "platelet"


def test_an_endothelial_cell_with_endothelium_only_genes_stays_endothelial():
    genes = {"VWF": [2.0], "ITGA2B": [0.0], "GP1BA": [0.0], "CDH5": [2.0], "FLT1": [1.0]}
    assert _endothelial_platelet_cell(genes) == "endothelial"


# ------------------------------------------------------------------ platelet vs epithelial


def _platelet_epithelial_cell(genes, p_epithelial, column="cell_type_assigned"):
    columns = ["IMM_platelet", "ID_epithelial_tumour", "ID_fibroblast"]
    scores, pvalues = _tables(columns, [[0.6, 0.4, 0.0]], [[0.2, p_epithelial, 0.9]])
    epithelial = [["EPCAM"], ["KRT8"], ["CDH1"], ["CLDN4"]]
    core = {"IMM_platelet": [["PPBP"], ["ITGA2B"]], "ID_epithelial_tumour": epithelial}
    expression = _expression(["c0"], {**genes, "CDH1": [0.0], "CLDN4": [0.0]})
    out = assign_cell_types(
        scores, pvalues, pvalues=pvalues, expression=expression, core_markers=core
    )
    return out.loc["c0", column]


def test_a_platelet_call_with_the_epithelial_core_in_the_cell_is_epithelial():
    genes = {"PPBP": [2.0], "ITGA2B": [1.0], "EPCAM": [1.0], "KRT8": [2.0]}
    assert _platelet_epithelial_cell(genes, p_epithelial=0.3) == "epithelial/tumour"


def test_a_platelet_call_with_a_dominant_significant_epithelial_score_is_epithelial():
    # One epithelial group of four detected (core rule not met), but the epithelial score
    # beats the random signatures (p 0.01 ≤ 0.05) more clearly than the platelet score (0.2).
    genes = {"PPBP": [2.0], "ITGA2B": [1.0], "EPCAM": [1.0], "KRT8": [0.0]}
    assert _platelet_epithelial_cell(genes, p_epithelial=0.01) == "epithelial/tumour"


def test_an_identity_replacing_a_platelet_call_keeps_a_positive_confidence():
    genes = {"PPBP": [2.0], "ITGA2B": [1.0], "EPCAM": [1.0], "KRT8": [0.0]}
    assert _platelet_epithelial_cell(genes, p_epithelial=0.01, column="assignment_confidence") > 0


def test_a_platelet_with_one_ambient_keratin_read_stays_a_platelet():
    genes = {"PPBP": [2.0], "ITGA2B": [1.0], "EPCAM": [0.0], "KRT8": [1.0]}
    assert _platelet_epithelial_cell(genes, p_epithelial=0.4) == "platelet"


# ------------------------------------------------------------------ cluster vote


def test_over_clustering_separates_disconnected_groups_and_is_seeded():
    # Two groups of 20 cells, each cell's neighbours inside its own group.
    rng = np.random.default_rng(1)
    neighbours = np.vstack(
        [
            rng.choice(np.delete(np.arange(20) + 20 * g, i), 5, replace=False)
            for g in (0, 1)
            for i in range(20)
        ]
    )
    clusters = over_cluster(neighbours, resolution=0.5, seed=0)
    assert set(clusters[:20]).isdisjoint(clusters[20:])
    assert np.array_equal(clusters, over_cluster(neighbours, resolution=0.5, seed=0))


def test_the_vote_moves_minority_cells_only_to_an_admissible_majority_type():
    types = np.array(["B", "NK"], dtype=object)
    lineage = np.array(["B lineage", "T/NK cell"], dtype=object)
    called = np.array(["B", "B", "B", "NK", "NK"], dtype=object)
    best = np.array([0, 0, 0, 1, 1])
    posterior = np.array([[0.9, 0.1]] * 3 + [[0.4, 0.6], [0.0, 1.0]])  # c4: B inadmissible
    called, best, confidence, assigned = majority_vote(
        np.zeros(5, dtype=int),
        called,
        best,
        posterior[np.arange(5), best],
        posterior,
        types,
        lineage,
    )
    assert list(called) == ["B", "B", "B", "B", "NK"]
    assert confidence[3] == pytest.approx(0.4) and assigned.all()


def test_a_cluster_without_a_majority_keeps_every_call():
    types = np.array(["B", "NK"], dtype=object)
    lineage = np.array(["B lineage", "T/NK cell"], dtype=object)
    called = np.array(["B", "B", "NK", "NK"], dtype=object)
    posterior = np.full((4, 2), 0.5)
    out = majority_vote(
        np.zeros(4, dtype=int),
        called,
        np.array([0, 0, 1, 1]),
        np.full(4, 0.5),
        posterior,
        types,
        lineage,
    )[0]
    assert list(out) == ["B", "B", "NK", "NK"]


# ------------------------------------------------------------------ shipped cores


@pytest.fixture(scope="module")
def shipped():
    from seedsoil.interpret.celltypes import shipped_markers

    return shipped_markers()[0]


def _group_of(core, gene):
    return next(k for k, group in enumerate(core) if gene in group)


def test_every_dendritic_subset_marker_shares_one_core_group(shipped):
    # A cDC1, a cDC2, a migratory DC and a pDC each carry their own subset's markers only:
    # were subsets separate groups, no DC could meet half of them.
    core = shipped["IMM_dendritic"]
    subset_markers = ["CLEC9A", "XCR1", "CD1C", "FCER1A", "LAMP3", "LILRA4", "CLEC4C"]
    assert len({_group_of(core, g) for g in subset_markers}) == 1


def test_nk_core_holds_only_nk_genes_not_the_cytotoxic_programme_t_cells_share(shipped):
    genes = {g for group in shipped["IMM_NK"] for g in group}
    assert {"NCAM1", "FCGR3A", "KLRF1", "NCR1", "SH2D1B"} <= genes
    assert not genes & {"GNLY", "NKG7", "PRF1", "GZMB", "KLRD1"}


def test_mast_and_treg_keep_alternates_for_panels_without_tryptases_or_foxp3():
    library = load_library(sorted(signatures.LIBRARY_DIR.glob("*.yaml")))
    assert {"HPGDS", "GATA2", "SIGLEC6", "RGS13", "SLC18A2"} <= set(library["IMM_mast"].alternates)
    treg = library["IMM_Treg"]
    assert "FOXP3" in treg.core[0] and len(treg.core) >= 3 and treg.alternates
