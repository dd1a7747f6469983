"""The reports as a person sees them: rendered in headless Chromium through Playwright.

Checks that each page loads with no console error and no network request, that its sections
and images are there (images decoded: naturalWidth > 0), and that a sample named
``<script>alert(1)</script>`` shows as text. Full-page screenshots are saved under
``tests/output/screenshots/`` for a reviewer.
"""

from __future__ import annotations

from pathlib import Path
from urllib.parse import unquote, urlparse

import pandas as pd
import pytest
from browser_helpers import COHORT_SECTIONS, SAMPLE_SECTIONS, assert_clean_load, open_page
from report_fixtures import XSS, sample_inputs

from seedsoil.report import pseudobulk, summarise_sample, write_cohort, write_sample_report

pytestmark = pytest.mark.browser


@pytest.fixture(scope="module")
def reports(tmp_path_factory):
    """A results folder with three sample reports (two conditions) and the cohort index."""
    root = tmp_path_factory.mktemp("results")
    rows, links, pseudobulks = [], {}, {}
    for i, (name, condition) in enumerate([(XSS, "tumour"), ("P2", "blood"), ("P3", "blood")]):
        inputs = sample_inputs(n_cells=2500 if i == 0 else 400, seed=i, sample=name)
        inputs["adata"].obs["condition"] = condition
        folder = root / "demo" / f"sample{i}"
        write_sample_report(folder / "report.html", **inputs)
        row = summarise_sample(
            inputs["adata"], inputs["scores"], inputs["calls"], inputs["interpretation"]
        )
        rows.append(row)
        links[(row["dataset"], row["sample"])] = f"../demo/sample{i}/report.html"
        pseudobulks[(row["dataset"], row["sample"])] = pseudobulk(inputs["adata"])
    library = {
        "CTC_epithelial_identity": ["KRT8", "KRT18", "EPCAM"],
        "NET_formation": ["ELANE", "MPO", "PTPRC"],
    }
    write_cohort(
        root / "cohort",
        summary=pd.DataFrame(rows),
        sample_reports=links,
        pseudobulk=pseudobulks,
        library=library,
    )
    return {
        "sample": root / "demo" / "sample0" / "report.html",
        "cohort": root / "cohort" / "index.html",
    }


def test_sample_report_in_browser(browser, reports):
    page, seen = open_page(browser, reports["sample"], "sample_report.png")
    assert_clean_load(page, seen, reports["sample"], SAMPLE_SECTIONS)
    assert XSS in page.locator("h1").inner_text()
    assert page.locator("script").count() == 0
    assert page.locator("img").count() >= 10
    page.close()


def test_cohort_index_in_browser(browser, reports):
    page, seen = open_page(browser, reports["cohort"], "cohort_index.png")
    assert_clean_load(page, seen, reports["cohort"], COHORT_SECTIONS)
    assert page.locator("#sample-table a", has_text=XSS).count() == 1
    hrefs = page.eval_on_selector_all("#sample-table a", "els => els.map(e => e.href)")
    assert len(hrefs) == 3
    assert all(Path(unquote(urlparse(href).path)).exists() for href in hrefs)
    page.close()
