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
from report_fixtures import XSS, sample_inputs

from seedsoil.report import pseudobulk, summarise_sample, write_cohort, write_sample_report

pytestmark = pytest.mark.browser

CHROMIUM = Path("/usr/bin/chromium")
ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
SCREENSHOTS = Path(__file__).parent / "output" / "screenshots"
SAMPLE_SECTIONS = [
    "overview",
    "qc",
    "coverage",
    "cell-types",
    "scores",
    "embedding",
    "ctc",
    "neutrophils",
    "immune",
    "clusters",
    "communication",
    "files",
    "methods",
]
COHORT_SECTIONS = ["samples", "heatmap", "conditions", "ssgsea", "files", "methods"]


@pytest.fixture(scope="module")
def browser():
    if not CHROMIUM.exists():
        pytest.skip(
            "headless Chromium not found at /usr/bin/chromium: run `make browser` or .ci/run "
            "(both call scripts/install-browser.sh, i.e. apt-get install -y chromium)"
        )
    sync_api = pytest.importorskip("playwright.sync_api")
    with sync_api.sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=str(CHROMIUM), args=ARGS)
        yield browser
        browser.close()


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


def open_page(browser, path: Path, screenshot: str):
    """Load ``path``; return the page and what it logged, requested and popped up."""
    page = browser.new_page(viewport={"width": 1280, "height": 900})
    seen = {"errors": [], "requests": [], "dialogs": []}
    page.on("console", lambda m: m.type == "error" and seen["errors"].append(m.text))
    page.on("pageerror", lambda e: seen["errors"].append(str(e)))
    page.on("request", lambda r: seen["requests"].append(r.url))
    page.on("dialog", lambda d: (seen["dialogs"].append(d.message), d.dismiss()))
    page.goto(path.resolve().as_uri(), wait_until="load")
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(SCREENSHOTS / screenshot), full_page=True)
    return page, seen


def assert_clean_load(page, seen, path: Path, sections: list[str]):
    assert seen["errors"] == []
    assert seen["dialogs"] == []
    assert seen["requests"] == [path.resolve().as_uri()]
    for section in sections:
        assert page.locator(f"#{section}").count() == 1, section
    images = page.eval_on_selector_all("img", "els => els.map(e => [e.complete, e.naturalWidth])")
    assert images and all(complete and width > 0 for complete, width in images)


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
