"""The report's coverage section: signatures scored on their core markers at reduced coverage."""

from __future__ import annotations

import pytest
from report_fixtures import sample_inputs

from seedsoil import signatures
from seedsoil.report import write_sample_report


@pytest.fixture(scope="module")
def coverage_html(tmp_path_factory):
    inputs = sample_inputs(n_cells=120)
    library = signatures.load_signatures()
    # A targeted-panel-like gene list: CTC identity only through its core markers.
    panel = ["EPCAM", "KRT8", "KRT19", "CDH1", "CD3E", "CD8A"]
    inputs["coverage"] = signatures.coverage(library, panel)
    out = tmp_path_factory.mktemp("coverage") / "report.html"
    write_sample_report(out, **inputs)
    return out.read_text()


def test_core_scored_signature_shows_reduced_coverage_and_its_markers(coverage_html):
    section = coverage_html[coverage_html.index('id="coverage"') :]
    row = section[section.index("CTC_epithelial_identity") :][:2000]
    assert "4 / 11" in row
    assert (
        "scored by core (3 of 4 core groups: EPCAM, KRT8, KRT19, CDH1) at reduced coverage" in row
    )


def test_coverage_sentence_counts_core_scored_signatures(coverage_html):
    section = coverage_html[coverage_html.index('id="coverage"') :][:3000]
    assert "scored on reduced coverage because enough of their core markers" in section
