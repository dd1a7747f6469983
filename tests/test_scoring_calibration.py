"""Depth calibration of the per-cell p-values on real data (the shipped Hydro-Seq sample).

Random gene sets carry no programme, so their p-values must not depend on how many genes a
cell detects, and Benjamini–Hochberg must find (almost) nothing. Before the randomised tie
breaking the shallow cells tied with many all-zero nulls and the p-values followed depth.
"""

from __future__ import annotations

from pathlib import Path

import anndata as ad
import numpy as np
import pytest
import scipy.sparse as sp
from scipy.stats import spearmanr

from seedsoil.harmonise import harmonise
from seedsoil.scoring import significance
from seedsoil.scoring.depth import genes_detected

HYDROSEQ = Path(__file__).parents[1] / "resources" / "data" / "hydroseq_ctc_enriched_1100.h5ad"
N_SETS, SET_SIZE, N_NULL = 20, 20, 199


@pytest.fixture(scope="module")
def hydroseq():
    return harmonise(ad.read_h5ad(HYDROSEQ), dataset="hydroseq")


@pytest.fixture(scope="module")
def random_set_pvalues(hydroseq):
    X = sp.csr_matrix(hydroseq.X)
    detected_genes = np.flatnonzero(np.diff(X.tocsc().indptr) > 0)
    rng = np.random.default_rng(11)
    names = np.asarray(hydroseq.var_names)
    sets = {
        f"random{i}": list(names[rng.choice(detected_genes, SET_SIZE, replace=False)])
        for i in range(N_SETS)
    }
    pvalues, fdr = significance(hydroseq, sets, n_null=N_NULL)
    return pvalues, fdr, genes_detected(X)


def test_random_set_pvalues_do_not_follow_depth(random_set_pvalues):
    # median over the sets of |Spearman rho(p, genes detected)| <= 0.1 (the bound)
    pvalues, _, depth = random_set_pvalues
    rhos = [abs(spearmanr(pvalues[c], depth).statistic) for c in pvalues.columns]
    assert np.median(rhos) <= 0.1


def test_random_sets_are_significant_at_the_nominal_rate_in_shallow_and_deep_cells(
    random_set_pvalues,
):
    # 550 cells × 20 sets per half: the rate of p <= 0.05 within 0.05 ± 0.02 in each half
    pvalues, _, depth = random_set_pvalues
    shallow = depth <= np.median(depth)
    p = pvalues.to_numpy()
    for half in (shallow, ~shallow):
        assert abs((p[half] <= 0.05).mean() - 0.05) < 0.02


def test_random_sets_give_no_cell_after_bh(random_set_pvalues):
    # 22,000 cell × set tests: under the global null BH at 0.05 rejects nothing in ~95 % of
    # sets; allow at most 1 per 1,000 tests
    _, fdr, _ = random_set_pvalues
    assert (fdr.to_numpy() <= 0.05).mean() <= 0.001


def test_cells_without_the_signatures_genes_are_never_significant(hydroseq):
    X = sp.csr_matrix(hydroseq.X)
    names = np.asarray(hydroseq.var_names)
    epithelial = [g for g in ("EPCAM", "KRT8", "KRT19", "CDH1") if g in set(names)]
    pvalues, _ = significance(hydroseq, {"epithelial": epithelial}, n_null=N_NULL)
    columns = np.flatnonzero(np.isin(names, epithelial))
    none_detected = np.asarray((X[:, columns] != 0).sum(axis=1)).ravel() == 0
    assert none_detected.any()
    assert (pvalues["epithelial"].to_numpy()[none_detected] >= 0.5).all()
