"""Rendering reports in headless Chromium, as a person would open them (Playwright + /usr/bin/chromium)."""

from __future__ import annotations

from pathlib import Path

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
    """No console error, no dialog, no request but the page itself; every section and image there."""
    assert seen["errors"] == []
    assert seen["dialogs"] == []
    assert seen["requests"] == [path.resolve().as_uri()]
    for section in sections:
        assert page.locator(f"#{section}").count() == 1, section
    images = page.eval_on_selector_all("img", "els => els.map(e => [e.complete, e.naturalWidth])")
    assert images and all(complete and width > 0 for complete, width in images)
