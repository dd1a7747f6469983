"""Reports: escaping, self-containment, optional panels, cohort statistics and pseudobulks."""

from __future__ import annotations

import re

import numpy as np
import pandas as pd
import pytest
from report_fixtures import XSS, sample_inputs

from seedsoil.errors import InputError
from seedsoil.report import (
    condition_tests,
    pseudobulk,
    pseudobulk_ssgsea,
    summarise_sample,
    write_cohort,
    write_sample_report,
)
from seedsoil.report.cohort import bh_fdr_finite

OPTIONAL = ("calls", "communication", "interpretation", "pvalues", "fdr")


@pytest.fixture(scope="module")
def inputs():
    return sample_inputs(n_cells=300)


@pytest.fixture(scope="module")
def full_html(inputs, tmp_path_factory):
    out = tmp_path_factory.mktemp("full") / "report.html"
    write_sample_report(out, **inputs)
    return out.read_text()


@pytest.fixture(scope="module")
def bare_html(inputs, tmp_path_factory):
    out = tmp_path_factory.mktemp("bare") / "report.html"
    write_sample_report(out, **{k: v for k, v in inputs.items() if k not in OPTIONAL})
    return out.read_text()


def test_sample_name_is_escaped(full_html):
    assert XSS not in full_html
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in full_html


def test_labels_and_config_are_escaped(full_html):
    assert "<b>cell</b>" not in full_html  # a cell-type label
    assert "<img src=x>" not in full_html  # a missing gene name
    assert "</pre><b>config</b>" not in full_html  # a config value


def test_page_runs_no_script(full_html):
    assert "<script" not in full_html.lower()


def test_no_external_resources(full_html):
    targets = re.findall(r"""(?:src|href)\s*=\s*["']([^"']*)["']""", full_html)
    assert targets, "expected some src/href attributes"
    assert not [t for t in targets if re.match(r"(?i)(https?:)?//", t)]
    assert "<link" not in full_html.lower()


def test_figures_are_embedded_png(full_html):
    images = re.findall(r'<img src="([^"]*)"', full_html)
    assert len(images) >= 8
    assert all(src.startswith("data:image/png;base64,") for src in images)


def test_optional_panels_absent_say_not_computed(bare_html):
    for what in ("CTC candidate calls", "immune composition", "heterotypic cluster flags"):
        assert f"Not computed: {what}" in bare_html
    assert "Not computed: sender → receiver communication" in bare_html


def test_optional_panels_present_when_given(full_html, inputs):
    n_ctc = int(inputs["calls"]["ctc_candidate"].sum())
    assert f"{n_ctc:,} of 300 cells" in full_html
    assert "Not computed" not in full_html
    assert "Senders (rows) → receivers (columns)" in full_html


def test_links_are_relative_file_names(full_html):
    for name in ("scores.parquet", "fdr.parquet", "calls.parquet", "communication.tsv"):
        assert f'href="{name}"' in full_html


def test_report_file_is_readable_by_others(inputs, tmp_path):
    out = tmp_path / "r.html"
    write_sample_report(out, **{k: v for k, v in inputs.items() if k not in OPTIONAL})
    assert out.stat().st_mode & 0o044  # group/other can read, unless the umask forbids it


def test_scores_of_another_sample_are_rejected(inputs, tmp_path):
    other = inputs["scores"].set_axis([f"x{i}" for i in range(len(inputs["scores"]))])
    with pytest.raises(InputError, match="shares no cell name"):
        write_sample_report(tmp_path / "r.html", **{**inputs, "scores": other})


def test_bh_fdr_known_values():
    q = bh_fdr_finite([0.01, 0.04, 0.03, 0.2, np.nan])
    np.testing.assert_allclose(q[:4], [0.04, 0.16 / 3, 0.16 / 3, 0.2], rtol=1e-12)
    assert np.isnan(q[4])


def test_bh_fdr_is_monotone_in_p():
    p = np.array([0.5, 0.001, 0.02, 0.3, 0.04])
    q = bh_fdr_finite(p)
    order = np.argsort(p)
    assert np.all(np.diff(q[order]) >= 0) and np.all(q >= p)


def _summary(values_a, values_b, extra=()):
    rows = [("a", v) for v in values_a] + [("b", v) for v in values_b] + list(extra)
    return pd.DataFrame(
        {
            "dataset": "d",
            "sample": [f"s{i}" for i in range(len(rows))],
            "condition": [c for c, _ in rows],
            "n_cells": 100,
            "mean:EMT_mesenchymal": [v for _, v in rows],
        }
    )


def test_condition_test_known_answer():
    # Exact two-sided Mann–Whitney U for complete separation of 3 vs 3: 2 / C(6,3) = 0.1.
    table = condition_tests(_summary([1.0, 2.0, 3.0], [4.0, 5.0, 6.0], extra=[("NA", 9.0)]))
    assert len(table) == 1  # "NA" joins no comparison; n_cells is not a statistic
    row = table.iloc[0]
    assert (row.group_a, row.group_b, row.n_a, row.n_b) == ("a", "b", 3, 3)
    assert row.pvalue == pytest.approx(0.1, abs=1e-12)
    assert row.effect == pytest.approx(-3.0)
    assert row.fdr == pytest.approx(0.1, abs=1e-12)


def test_condition_test_skips_single_sample_groups():
    row = condition_tests(_summary([1.0, 2.0], [4.0])).iloc[0]
    assert np.isnan(row.pvalue) and row.test.startswith("not tested")


def test_condition_test_needs_two_conditions():
    assert condition_tests(_summary([1.0, 2.0], [])).empty


def test_summarise_sample(inputs):
    row = summarise_sample(
        inputs["adata"], inputs["scores"], inputs["calls"], inputs["interpretation"]
    )
    assert (row["sample"], row["condition"], row["n_cells"]) == (XSS, "tumour", 300)
    assert row["mean:NET_formation"] == pytest.approx(inputs["scores"]["NET_formation"].mean())
    assert row["n_ctc_candidates"] == int(inputs["calls"]["ctc_candidate"].sum())
    assert row["frac:T cell"] == pytest.approx(0.4)


def test_pseudobulk_sums_counts_per_cell_type(inputs, tmp_path):
    adata = inputs["adata"]
    table = pseudobulk(adata)
    t_cells = (adata.obs["cell_type"] == "T cell").to_numpy()
    expected = np.asarray(adata.layers["counts"][t_cells].sum(axis=0)).ravel()
    np.testing.assert_allclose(table["T cell"].to_numpy(), expected, rtol=1e-6)
    table.to_parquet(tmp_path / "pb.parquet")
    assert pd.read_parquet(tmp_path / "pb.parquet").attrs["n_cells"]["T cell"] == t_cells.sum()


def test_ssgsea_matches_genes_ignoring_case_and_drops_small_sets(inputs):
    gene_sets = {"epi": ["krt8", "KRT18", "Epcam"], "tiny": ["KRT8", "NOTAGENE"]}
    result = pseudobulk_ssgsea(
        {("d", "s1"): pseudobulk(inputs["adata"])}, gene_sets, min_size=3, min_cells=40
    )
    assert set(result["signature"]) == {"epi"}
    assert (result["n_genes_matched"] == 3).all()
    assert (result["n_cells"] >= 40).all()
    assert "B <b>cell</b>" not in set(result["cell_type"])  # ~15 cells < min_cells
    assert np.isfinite(result["nes"]).all()


def test_write_cohort_writes_four_files(inputs, tmp_path):
    rows = []
    for i, condition in enumerate(["blood", "tumour", "blood", "tumour"]):
        row = summarise_sample(inputs["adata"], inputs["scores"] + i * 0.01)
        rows.append({**row, "sample": f"S{i}", "condition": condition})
    reports = {("demo <i>set</i>", "S0"): "../S0/report.html"}
    write_cohort(tmp_path, summary=pd.DataFrame(rows), sample_reports=reports)
    assert {p.name for p in tmp_path.iterdir()} >= {
        "index.html",
        "summary.tsv",
        "condition_tests.tsv",
        "ssgsea.tsv",
    }
    tests = pd.read_csv(tmp_path / "condition_tests.tsv", sep="\t")
    assert set(tests["group_a"]) == {"blood"} and len(tests) == inputs["scores"].shape[1]
    assert pd.read_csv(tmp_path / "ssgsea.tsv", sep="\t").empty
    html = (tmp_path / "index.html").read_text()
    assert 'href="../S0/report.html"' in html and "Not computed: pseudobulk ssGSEA" in html


def test_minimal_anndata_renders_without_embedding_or_metadata(inputs, tmp_path):
    adata = inputs["adata"].copy()
    del adata.obsm["X_embedding"]
    adata.uns = {}
    adata.obs["cell_type"] = "unlabelled"
    out = tmp_path / "r.html"
    write_sample_report(out, adata=adata, scores=inputs["scores"], coverage=inputs["coverage"])
    html = out.read_text()
    assert "Not computed: embedding plots" in html
    assert "unknown dataset" in html


def test_condition_tests_compare_means_and_fractions_only():
    summary = _summary([1.0, 2.0], [3.0, 4.0]).assign(
        **{"frac_ctc": [0.1, 0.2, 0.3, 0.4], "alpha": 0.05, "emt_states:hybrid": [1, 2, 3, 4]}
    )
    assert set(condition_tests(summary)["statistic"]) == {"mean:EMT_mesenchymal", "frac_ctc"}


def test_qc_table_lists_removed_cells_not_the_kept_ones(inputs, tmp_path):
    adata = inputs["adata"].copy()
    adata.uns["seedsoil"]["qc"] = {"min_genes": 15, "sample_reasons": {"kept": 300, "min_genes": 7}}
    out = tmp_path / "report.html"
    write_sample_report(out, **{**inputs, "adata": adata})
    html = out.read_text()
    table = html[html.index("Cells removed by quality control") :][:3000]
    assert "min_genes" in table and ">kept<" not in table


def test_qc_figure_draws_thresholds_not_failed_cell_counts():
    from seedsoil.report import plots
    from seedsoil.report.sample import _flatten, _qc_thresholds

    rng = np.random.default_rng(0)
    obs = pd.DataFrame(
        {
            "n_counts": rng.integers(500, 5000, 200),
            "n_genes": rng.integers(200, 2000, 200),
            "mito_fraction": rng.uniform(0.0, 0.2, 200),
        }
    )
    # as ingest records it: 11 cells failed the mito threshold of 0.2
    qc = {"min_genes": 200, "max_mito_fraction": 0.2, "failed": {"max_mito_fraction": 11}}
    thresholds = _qc_thresholds(_flatten(qc))
    assert thresholds == {"n_genes": [200.0], "mito_fraction": [0.2]}
    fig = plots.qc_distributions(obs, thresholds)
    assert fig.axes[2].get_xlim()[1] < 1.0  # the mito axis spans fractions, not 11


def test_qc_figure_names_totals_of_normalised_input_as_such():
    from seedsoil.report import plots

    obs = pd.DataFrame({"n_counts": [1e4] * 3, "n_genes": [300] * 3, "mito_fraction": [0.1] * 3})
    assert "UMI" not in plots.qc_distributions(obs, {}, on_counts=False).axes[0].get_title()


def test_cohort_ssgsea_keeps_same_named_samples_of_two_datasets_apart():
    from seedsoil.report.cohort_page import _ssgsea

    ssgsea = pd.DataFrame(
        {
            "dataset": ["a", "a", "b", "b"],
            "sample": ["P1"] * 4,
            "cell_type": ["T"] * 4,
            "signature": ["IMM_B", "IMM_NK"] * 2,
            "nes": [0.1, 0.2, 0.3, 0.4],
        }
    )
    assert _ssgsea(ssgsea)["sentence"] == "4 scores for 2 pseudobulks."


def test_samples_spanning_conditions_join_no_condition_test():
    summary = pd.DataFrame(
        {
            "condition": ["Tumor", "Tumor", "Blood", "Blood", "mixed", "mixed"],
            "mean:S": [0.1, 0.2, 0.5, 0.6, 0.9, 0.9],
        }
    )
    tests = condition_tests(summary)
    assert set(tests["group_a"]) | set(tests["group_b"]) == {"Blood", "Tumor"}


def test_conditions_are_compared_within_each_dataset_with_one_fdr_family_each():
    one = _summary([1.0, 2.0, 3.0], [4.0, 5.0, 6.0])
    two = _summary([1.0, 2.0, 3.0], [1.5, 2.5, 3.5]).assign(dataset="e")
    # a third dataset holds only condition "b": pooled, its samples would join a-vs-b
    three = _summary([], [9.0, 9.0]).assign(dataset="f")
    tests = condition_tests(pd.concat([one, two, three], ignore_index=True))
    assert list(tests["family"]) == ["d", "e"]
    assert list(tests["n_b"]) == [3, 3]
    # each family has one test, so its FDR equals its p-value
    np.testing.assert_allclose(tests["fdr"], tests["pvalue"], rtol=0, atol=1e-12)
    pooled = condition_tests(pd.concat([one, two, three], ignore_index=True), within=None)
    assert list(pooled["family"]) == ["cohort"] and pooled["n_b"].iloc[0] == 8


def test_heatmap_with_few_rows_and_long_column_names_stays_readable():
    from seedsoil.report import plots

    columns = [f"SIGNATURE_WITH_A_LONG_NAME_{i}" for i in range(35)]
    matrix = pd.DataFrame(np.arange(70.0).reshape(2, 35), index=["a", "b"], columns=columns)
    fig = plots.heatmap(matrix)
    fig.canvas.draw()
    image_height_inches = fig.axes[0].get_position().height * fig.get_figheight()
    assert image_height_inches >= 1.0  # two rows of at least half an inch each


def test_an_empty_communication_table_says_it_was_computed_and_why_it_is_empty(inputs, tmp_path):
    out = tmp_path / "report.html"
    empty = inputs["communication"].iloc[:0]
    write_sample_report(out, **{**inputs, "communication": empty})
    html = out.read_text()
    assert "communication.tsv has no rows" in html and "not given to the report" not in html


def test_sheet_description_and_local_path_are_not_shown_as_publication_and_url():
    from seedsoil.pipeline import dataset_provenance

    row = {"source": "data/x.h5ad", "description": "my tumour cohort"}
    provenance = dataset_provenance(row, "does-not-exist")
    assert provenance["publication"] == "" and provenance["url"] == ""


def test_heatmap_caption_says_grey_also_means_not_scored(full_html):
    assert "Grey: not defined (a signature constant across cell types, or not scored" in full_html
