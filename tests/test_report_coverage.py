"""The report's coverage section: how each signature came to be scored, or why it was not."""

from __future__ import annotations

import pytest
from report_fixtures import sample_inputs

from seedsoil import signatures
from seedsoil.report import write_sample_report

# A targeted-panel-like gene list: CTC and epithelial identity only through their core markers,
# B cells through more than half of their genes, NK cells through one core marker only.
PANEL = ["EPCAM", "KRT8", "KRT19", "CDH1", "MS4A1", "CD19", "CD79A", "CD79B", "PAX5", "CD22"]
PANEL += ["BANK1", "CR2", "NCAM1"]


@pytest.fixture(scope="module")
def coverage_section(tmp_path_factory):
    inputs = sample_inputs(n_cells=120)
    inputs["coverage"] = signatures.coverage(signatures.load_signatures(), PANEL)
    out = tmp_path_factory.mktemp("coverage") / "report.html"
    write_sample_report(out, **inputs)
    html = out.read_text()
    return html[html.index('id="coverage"') :]


def row_of(section: str, signature: str) -> str:
    start = section.index(f">{signature}<")
    return section[start : section.index("</tr>", start)]


def test_core_scored_signature_shows_reduced_coverage_and_its_markers(coverage_section):
    row = row_of(coverage_section, "CTC_epithelial_identity")
    assert "4 / 11" in row
    assert (
        "scored by core (3 of 4 core groups: EPCAM, KRT8, KRT19, CDH1) at reduced coverage" in row
    )


def test_covered_signature_is_marked_scored_by_coverage(coverage_section):
    assert "scored by coverage" in row_of(coverage_section, "IMM_B")


def test_skipped_signature_says_the_core_rule_was_not_met(coverage_section):
    assert "core rule not met (1 of 2 core groups" in row_of(coverage_section, "IMM_NK")


def test_coverage_sentence_counts_core_scored_signatures(coverage_section):
    sentence = coverage_section[: coverage_section.index("</p>")]
    assert "2 of them are scored on reduced coverage because enough of their core markers" in (
        sentence
    )
