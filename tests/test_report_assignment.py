"""The sample report's assignment panel: confidence, carrying markers, agreement tables."""

from __future__ import annotations

import pandas as pd
import pytest
from report_fixtures import sample_inputs

from seedsoil.report import write_sample_report


def _html(tmp_path, calls_update) -> str:
    inputs = sample_inputs(n_cells=200)
    calls = inputs["calls"].copy()
    for column, values in calls_update(calls).items():
        calls[column] = values
    inputs["calls"] = calls
    out = tmp_path / "report.html"
    write_sample_report(out, **inputs)
    return out.read_text()


def test_report_shows_the_markers_that_carried_the_calls(tmp_path):
    html = _html(tmp_path, lambda calls: {"assignment_markers": "CD3E,CD8A"})
    assert "markers most often carrying the call" in html and "CD3E, CD8A" in html


def test_report_shows_agreement_with_dataset_labels(tmp_path):
    html = _html(tmp_path, lambda calls: {})
    assert "Cells by dataset label (rows) and signature-based type (columns)." in html


def test_report_shows_agreement_with_the_reference_only_when_one_was_used(tmp_path):
    caption = "Cells by reference annotation (rows)"
    without = _html(tmp_path, lambda calls: {"cell_type_reference": ""})
    with_reference = _html(
        tmp_path, lambda calls: {"cell_type_reference": pd.Series("T cell", index=calls.index)}
    )
    assert caption not in without and caption in with_reference


@pytest.mark.parametrize(
    "how, text",
    [
        ("classifier", "4 cells (2.0%) had too little evidence"),
        ("transcriptome neighbours", "4 cells (2.0%) showed too few marker genes"),
    ],
)
def test_report_says_how_many_cells_each_fill_in_step_typed(tmp_path, how, text):
    def update(calls):
        method = pd.Series("signature", index=calls.index)
        method.iloc[:4] = how
        return {"assignment_method": method}

    html = _html(tmp_path, update)
    assert text in html and f"called by: {how}" in html


def test_report_without_classifier_calls_does_not_mention_it(tmp_path):
    html = _html(tmp_path, lambda calls: {"assignment_method": "signature"})
    assert "too little evidence" not in html and "too few marker genes" not in html
