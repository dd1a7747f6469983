"""Shared fixtures: small UMI-like matrices built in code (see tests/synthetic.py)."""

from __future__ import annotations

import pytest
import scipy.sparse as sp
from synthetic import cell_names, gene_names, log_normalise, umi_counts


@pytest.fixture(scope="session")
def umi_lognorm() -> sp.csr_matrix:
    """600 cells × 2,000 genes, ~250 non-zeros per cell, log-normalised float32 CSR."""
    return log_normalise(umi_counts(600, 2000, 250, seed=7))


@pytest.fixture(scope="session")
def umi_adata(umi_lognorm):
    """``umi_lognorm`` as an AnnData with raw counts in ``layers['counts']``."""
    import anndata as ad
    import pandas as pd

    counts = umi_counts(600, 2000, 250, seed=7)
    adata = ad.AnnData(
        X=umi_lognorm.copy(),
        obs=pd.DataFrame(index=cell_names(600)),
        var=pd.DataFrame(index=gene_names(2000)),
    )
    adata.layers["counts"] = counts
    return adata


@pytest.fixture(scope="session")
def browser():
    """Headless Chromium through Playwright; skips with the install command when absent."""
    from browser_helpers import ARGS, CHROMIUM

    if not CHROMIUM.exists():
        pytest.skip(
            "headless Chromium not found at /usr/bin/chromium: run `make browser` or .ci/run "
            "(both call scripts/install-browser.sh, i.e. apt-get install -y chromium)"
        )
    sync_api = pytest.importorskip("playwright.sync_api")
    with sync_api.sync_playwright() as playwright:
        launched = playwright.chromium.launch(executable_path=str(CHROMIUM), args=ARGS)
        yield launched
        launched.close()
