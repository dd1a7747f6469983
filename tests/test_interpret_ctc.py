"""CTC candidate calls, EMT state and the ctc_support verdict, on planted truth."""

import anndata as ad
import numpy as np
import pandas as pd
import pytest
import scipy.sparse as sp

from seedsoil.interpret.ctc import call_ctc, ctc_support, emt_state

SIGNATURES = [
    "CTC_epithelial_identity",
    "IMM_neutrophil",
    "IMM_CD4_T",
    "IMM_platelet",
    "EMT_bidirectional",
]


def _sample(n_cells=40, ptprc=None, epcam=1.0, krt8=0.0):
    """AnnData with genes PTPRC, EPCAM and KRT8 (PTPRC zero, EPCAM detected, KRT8 not, unless
    given as a value or one per cell) and neutral p/FDR tables."""
    cells = [f"c{i}" for i in range(n_cells)]
    x = np.zeros((n_cells, 3), dtype=np.float32)
    x[:, 1] = epcam
    x[:, 2] = krt8
    if ptprc is not None:
        x[:, 0] = ptprc
    adata = ad.AnnData(
        sp.csr_matrix(x),
        obs=pd.DataFrame(index=cells),
        var=pd.DataFrame(index=["PTPRC", "EPCAM", "KRT8"]),
    )
    neutral = pd.DataFrame(0.5, index=cells, columns=SIGNATURES)
    return adata, neutral.copy(), neutral.copy()


def test_planted_ctc_cells_are_exactly_the_candidates():
    adata, pvalues, fdr = _sample()
    pvalues.iloc[:5, 0] = fdr.iloc[:5, 0] = 0.001
    calls = call_ctc(adata, pvalues, fdr)
    assert calls.index[calls["ctc_candidate"]].tolist() == [f"c{i}" for i in range(5)]


def test_epithelial_cell_with_a_leukocyte_programme_is_a_cluster_not_a_single_ctc():
    adata, pvalues, fdr = _sample(krt8=1.0)
    pvalues.iloc[:5, 0] = fdr.iloc[:5, 0] = 0.001
    fdr.loc["c0", "IMM_CD4_T"] = 0.01
    calls = call_ctc(adata, pvalues, fdr)
    assert (
        calls.loc["c0", "ctc_candidate"] and calls.loc["c0", "ctc_class"] == "CTC-leukocyte cluster"
    )
    assert (calls["ctc_class"].iloc[1:5] == "CTC").all()


def test_leukocyte_with_a_single_epithelial_marker_group_is_not_called():
    adata, pvalues, fdr = _sample()  # EPCAM only: one core group, as ambient RNA would give
    pvalues.iloc[:5, 0] = fdr.iloc[:5, 0] = 0.001
    fdr.loc["c0", "IMM_CD4_T"] = 0.01
    calls = call_ctc(adata, pvalues, fdr)
    assert not calls.loc["c0", "ctc_candidate"] and calls["ctc_candidate"].sum() == 4


def test_significant_signature_without_any_core_marker_is_not_called():
    adata, pvalues, fdr = _sample(epcam=0.0)
    pvalues.iloc[:5, 0] = fdr.iloc[:5, 0] = 0.001
    calls = call_ctc(adata, pvalues, fdr)
    assert not calls["ctc_candidate"].any() and (calls["ctc_core_markers"] == "").all()


def test_a_single_marker_group_with_any_ptprc_is_not_called():
    # c1: EPCAM only and one PTPRC read, as a leukocyte with an ambient epithelial read shows;
    # c2: EPCAM and KRT8 with the same read stays a CTC (PTPRC below the leukocyte level)
    ptprc = np.zeros(40)
    ptprc[1] = ptprc[2] = 0.5
    krt8 = np.zeros(40)
    krt8[2] = 1.0
    adata, pvalues, fdr = _sample(ptprc=ptprc, krt8=krt8)
    pvalues.iloc[:5, 0] = 0.001
    calls = call_ctc(adata, pvalues, fdr)
    assert calls.loc[["c0", "c1", "c2"], "ctc_class"].tolist() == ["CTC", "", "CTC"]


def test_platelet_identity_is_not_a_leukocyte_feature():
    adata, pvalues, fdr = _sample()
    pvalues.iloc[:5, 0] = fdr.iloc[:5, 0] = 0.001
    fdr.loc["c0", "IMM_platelet"] = 0.01
    assert call_ctc(adata, pvalues, fdr).loc["c0", "ctc_class"] == "CTC"


def test_ptprc_below_the_samples_leukocyte_level_counts_as_ambient():
    # cells 10–39 are the sample's leukocytes with PTPRC 2; c1 carries an ambient trace (0.3),
    # c2 a whole leukocyte's worth (2.5)
    ptprc = np.zeros(40)
    ptprc[10:] = 2.0
    ptprc[1], ptprc[2] = 0.3, 2.5
    adata, pvalues, fdr = _sample(ptprc=ptprc, krt8=1.0)
    pvalues.iloc[:5, 0] = fdr.iloc[:5, 0] = 0.001
    fdr.iloc[10:, fdr.columns.get_loc("IMM_CD4_T")] = 0.001
    calls = call_ctc(adata, pvalues, fdr)
    assert calls.loc["c1", "ctc_class"] == "CTC"
    assert calls.loc["c2", "ctc_class"] == "CTC-leukocyte cluster"


def test_ptprc_is_ignored_without_enough_reference_leukocytes():
    ptprc = np.zeros(40)
    ptprc[1] = 3.0
    adata, pvalues, fdr = _sample(ptprc=ptprc, krt8=1.0)
    pvalues.iloc[:5, 0] = fdr.iloc[:5, 0] = 0.001
    assert call_ctc(adata, pvalues, fdr).loc["c1", "ctc_class"] == "CTC"


def test_confidence_is_one_minus_the_marker_family_fdr_for_calls_and_zero_off_calls():
    # 40 marker-positive cells: BH q of c0 = 0.0005 · 40 / 1 = 0.02, of c1 = 0.001 · 40 / 2 = 0.02
    adata, pvalues, fdr = _sample()
    pvalues.loc["c0", "CTC_epithelial_identity"] = 0.0005
    pvalues.loc["c1", "CTC_epithelial_identity"] = 0.001
    confidence = call_ctc(adata, pvalues, fdr)["ctc_confidence"]
    assert (confidence.iloc[2:] == 0).all()
    assert confidence["c0"] == pytest.approx(0.98, abs=1e-12)
    assert confidence["c1"] == pytest.approx(0.98, abs=1e-12)


def test_marker_negative_cells_do_not_dilute_the_fdr_of_a_rare_ctc():
    # one EPCAM+ KRT8+ cell among 2,000 marker-negative blood cells: with BH over every cell
    # its p-value 0.01 would need to be ≤ 0.05 / 2,000; over the marker-positive family it is
    # the only test
    marker = np.zeros(2000)
    marker[0] = 1.0
    adata, pvalues, fdr = _sample(n_cells=2000, epcam=marker, krt8=marker)
    pvalues.loc["c0", "CTC_epithelial_identity"] = 0.01
    calls = call_ctc(adata, pvalues, fdr)
    assert calls.index[calls["ctc_candidate"]].tolist() == ["c0"]
    assert calls.loc["c0", "ctc_fdr"] == pytest.approx(0.01, abs=1e-12)
    assert (calls["ctc_fdr"].iloc[1:] == 1.0).all()


def test_the_signatures_declared_core_replaces_the_built_in_markers():
    # a custom CTC signature whose only core marker is KRT8: EPCAM-only cells are not candidates
    krt8 = np.zeros(40)
    krt8[0] = 1.0
    adata, pvalues, fdr = _sample(krt8=krt8)
    pvalues.iloc[:5, 0] = 0.001
    calls = call_ctc(adata, pvalues, fdr, core=(("KRT8",),))
    assert calls.index[calls["ctc_candidate"]].tolist() == ["c0"]
    assert (
        calls.loc["c1", "ctc_core_markers"] == "" and calls.loc["c0", "ctc_core_markers"] == "KRT8"
    )


def test_emt_state_follows_the_null_tails_of_the_bidirectional_score():
    cells = ["a", "b", "c"]
    pvalues = pd.DataFrame({"EMT_bidirectional": [0.01, 0.5, 0.99]}, index=cells)
    assert emt_state(pvalues, pvalues).tolist() == ["mesenchymal", "hybrid", "epithelial"]


def test_emt_state_falls_back_to_the_one_sided_programmes():
    cells = ["a", "b", "c", "d"]
    fdr = pd.DataFrame(
        {"EMT_epithelial": [0.9, 0.01, 0.01, 0.9], "EMT_mesenchymal": [0.01, 0.9, 0.01, 0.9]},
        index=cells,
    )
    assert emt_state(fdr, fdr).tolist() == ["mesenchymal", "epithelial", "hybrid", "hybrid"]


def test_emt_state_is_empty_for_non_candidates():
    adata, pvalues, fdr = _sample()
    pvalues.iloc[:2, 0] = fdr.iloc[:2, 0] = 0.001
    pvalues["EMT_bidirectional"] = 0.01
    states = call_ctc(adata, pvalues, fdr)["emt_state"]
    assert (
        states.iloc[:2].tolist() == ["mesenchymal", "mesenchymal"] and (states.iloc[2:] == "").all()
    )


def test_pure_immune_sample_is_not_supported():
    ptprc = np.full(40, 1.5)  # every cell a CD45+ leukocyte
    adata, pvalues, fdr = _sample(ptprc=ptprc)
    fdr["IMM_CD4_T"] = 0.001
    pvalues.iloc[:3, 0] = fdr.iloc[:3, 0] = 0.01  # chance epithelial hits among leukocytes
    calls = call_ctc(adata, pvalues, fdr)
    assert calls["ctc_candidate"].sum() == 0
    assert ctc_support(calls, scored=True).startswith("not supported")


def test_support_verdicts():
    adata, pvalues, fdr = _sample()
    pvalues.iloc[:5, 0] = fdr.iloc[:5, 0] = 0.001
    calls = call_ctc(adata, pvalues, fdr)
    assert ctc_support(calls, scored=True) == "supported"
    assert ctc_support(calls.iloc[3:], scored=True).startswith("not supported: only 2")
    assert ctc_support(calls, scored=False).startswith("not supported")


def test_unscored_ctc_signature_gives_no_calls():
    adata, pvalues, fdr = _sample()
    fdr = fdr.drop(columns="CTC_epithelial_identity")
    calls = call_ctc(adata, pvalues, fdr)
    assert not calls["ctc_candidate"].any() and calls["ctc_fdr"].isna().all()


def test_interpret_sample_returns_the_documented_tables_and_a_json_ready_summary():
    import json

    from seedsoil.interpret import CALL_COLUMNS, interpret_sample
    from seedsoil.interpret.communication import OUTPUT_COLUMNS

    rng = np.random.default_rng(3)
    n = 30
    adata, pvalues, fdr = _sample(n_cells=n)
    adata.obs["cell_type"] = "unlabelled"
    adata.obs["n_counts"] = rng.integers(1000, 2000, n)
    adata.obs["n_genes"] = rng.integers(500, 900, n)
    ctc = SIGNATURES.index("CTC_epithelial_identity")
    pvalues.iloc[:10, ctc] = fdr.iloc[:10, ctc] = 0.001
    fdr.iloc[10:, SIGNATURES.index("IMM_CD4_T")] = 0.001
    scores = pd.DataFrame(rng.random(fdr.shape), index=fdr.index, columns=fdr.columns)
    # The assignment weighs scores and p-values: the CD4 T cells score high for IMM_CD4_T with
    # p-values as small as their FDR, and the tumour cells beat no random immune signature.
    scores.iloc[10:, SIGNATURES.index("IMM_CD4_T")] += 1.0
    pvalues.iloc[10:, SIGNATURES.index("IMM_CD4_T")] = 0.001
    pvalues.iloc[:10, 1:4] = 0.9
    pairs = pd.DataFrame(
        {
            "ligand": ["EPCAM"],
            "receptor": ["PTPRC"],
            "theme": ["t"],
            "description": [""],
            "references": [""],
        }
    )
    calls, communication, summary = interpret_sample(
        adata, scores, pvalues, fdr, pairs=pairs, n_perm=20
    )
    assert list(calls.columns) == CALL_COLUMNS and calls.index.equals(adata.obs_names)
    assert list(communication.columns)[: len(OUTPUT_COLUMNS)] == OUTPUT_COLUMNS
    assert summary["n_ctc_candidates"] == 10 and summary["ctc_support"] == "supported"
    assert summary["cell_type_source"] == "assigned" and summary["immune_composition"] == {
        "CD4 T": 1.0
    }
    json.dumps(summary, allow_nan=False)


def test_interpret_sample_rejects_scores_for_other_cells():
    from seedsoil.errors import InputError
    from seedsoil.interpret import interpret_sample

    adata, pvalues, fdr = _sample()
    with pytest.raises(InputError, match="missing"):
        interpret_sample(adata, fdr.iloc[1:], pvalues.iloc[1:], fdr.iloc[1:], pairs=None)


def test_engine_scores_of_planted_epithelial_cells_give_exactly_those_candidates():
    """Integration: synthetic UMI counts → seedsoil.scoring (UCell, matched null) → calls."""
    from seedsoil.interpret.ctc import call_ctc
    from seedsoil.scoring import score, significance
    from seedsoil.synthetic import log_normalise, umi_counts

    n_cells, n_genes, n_tumour = 200, 400, 20
    counts = umi_counts(n_cells, n_genes, nnz_per_cell=150, seed=5).tolil()
    genes = [f"G{i}" for i in range(n_genes)]
    epithelial = ["EPCAM", "KRT8", "KRT18", "KRT19", "KRT7"]
    t_cell = ["CD3E", "CD3D", "IL7R"]
    for k, name in enumerate([*epithelial, *t_cell, "PTPRC"]):
        genes[k] = name
        counts[:, k] = 0
    counts[:n_tumour, : len(epithelial)] = 8  # planted carcinoma cells
    counts[n_tumour:, len(epithelial) : len(epithelial) + 3] = 6  # T cells
    counts[n_tumour:, len(epithelial) + 3] = 4  # CD45 on every leukocyte
    x = log_normalise(counts.tocsr())
    adata = ad.AnnData(
        x, obs=pd.DataFrame(index=[f"c{i}" for i in range(n_cells)]), var=pd.DataFrame(index=genes)
    )
    signatures = {
        "CTC_epithelial_identity": {"up": epithelial, "down": ["PTPRC"]},
        "IMM_CD4_T": t_cell,
    }
    scores = score(adata, signatures, method="ucell")
    pvalues, fdr = significance(adata, signatures, n_null=200, random_state=0)
    calls = call_ctc(adata, pvalues, fdr.reindex(columns=scores.columns))
    assert calls["ctc_candidate"].to_numpy().nonzero()[0].tolist() == list(range(n_tumour))


def test_cluster_with_ptprc_only_gets_an_unknown_leukocyte_partner():
    from seedsoil.interpret.clusters import flag_heterotypic

    cells = ["a", "b", "c"]
    fdr = pd.DataFrame(
        {"CTC_epithelial_identity": 0.5, "IMM_neutrophil": [0.5, 0.01, 0.5]}, index=cells
    )
    ctc_class = pd.Series(["CTC-leukocyte cluster", "CTC-leukocyte cluster", "CTC"], index=cells)
    labels = flag_heterotypic(pd.DataFrame(index=cells), fdr, ctc_class=ctc_class)
    assert labels["heterotypic_cluster"].tolist() == ["CTC-leukocyte", "CTC-neutrophil", ""]
