"""Empirical significance against expression-matched null signatures."""

from __future__ import annotations

import numpy as np
import pytest
import scipy.sparse as sp
from scipy.stats import kstest
from synthetic import gene_names, log_normalise, umi_counts

from seedsoil.scoring import score, significance
from seedsoil.scoring.null import benjamini_hochberg, matched_nulls
from seedsoil.scoring.scanpy import expression_bins
from seedsoil.scoring.stats import gene_stats

N_GENES = 1000


@pytest.fixture(scope="module")
def counts():
    # denser than the shared fixture so that few random signatures are all-zero in a cell
    return umi_counts(400, N_GENES, 400, seed=3)


@pytest.fixture(scope="module")
def lognorm(counts):
    return log_normalise(counts)


def random_signatures(n, size, seed, directed=False):
    rng = np.random.default_rng(seed)
    var = np.array(gene_names(N_GENES))
    sets = {}
    for i in range(n):
        genes = list(rng.choice(var, size, replace=False))
        sets[f"null{i}"] = (
            {"up": genes[: 2 * size // 3], "down": genes[2 * size // 3 :]} if directed else genes
        )
    return sets


def test_bh_matches_hand_computed_example():
    p = np.array([0.01, 0.04, 0.03, 0.2])
    # sorted 0.01, 0.03, 0.04, 0.2 → ×4/rank 0.04, 0.06, 0.0533, 0.2 → running min from the top
    np.testing.assert_allclose(
        benjamini_hochberg(p), [0.04, 0.16 / 3, 0.16 / 3, 0.2], rtol=0, atol=1e-15
    )


def test_bh_matches_statsmodels():
    multitest = pytest.importorskip("statsmodels.stats.multitest")
    p = np.random.default_rng(0).uniform(size=500) ** 3
    expected = multitest.multipletests(p, method="fdr_bh")[1]
    np.testing.assert_allclose(benjamini_hochberg(p), expected, rtol=0, atol=1e-12)


def test_null_genes_come_from_the_replaced_genes_bin_and_are_distinct(lognorm):
    cuts = expression_bins(gene_stats([lognorm], N_GENES))
    genes = np.array([3, 50, 51, 400, 401, 402, 999])
    nulls = matched_nulls(genes, cuts, 300, np.random.default_rng(0))
    assert nulls.shape == (300, genes.size)
    assert (cuts[nulls] == cuts[genes]).all()
    assert all(np.unique(row).size == genes.size for row in nulls)


def test_observed_statistic_is_the_mean_score(lognorm):
    from seedsoil.scoring import null, resolve_gene_sets

    sigs = random_signatures(3, 20, seed=1, directed=True)
    gene_sets = resolve_gene_sets(sigs, gene_names(N_GENES))
    prepared = null.prepare(gene_sets, N_GENES, gene_stats([lognorm], N_GENES), n_null=10)
    counts = null.tail_counts(lognorm, prepared)
    mean = score(lognorm, sigs, "mean", var_names=gene_names(N_GENES))
    np.testing.assert_array_equal(counts.observed, mean.to_numpy())


@pytest.mark.parametrize("directed", [False, True])
def test_pvalues_are_uniform_on_null_signatures(lognorm, directed):
    # One cell per random signature gives 400 independent p-values. Tolerances: KS p > 0.01;
    # pooled over all cells × signatures, the fraction with p <= 0.05 is within 0.05 ± 0.02.
    sigs = random_signatures(400, 30, seed=5, directed=directed)
    pvalues, _ = significance(lognorm, sigs, var_names=gene_names(N_GENES), n_null=199)
    values = pvalues.to_numpy()
    assert kstest(np.diag(values), "uniform").pvalue > 0.01
    assert abs((values <= 0.05).mean() - 0.05) < 0.02
    assert values.min() >= 1 / 200 and values.max() <= 1.0


def test_planted_signal_is_significant(counts):
    signature = gene_names(N_GENES)[200:225]
    boosted = counts.tolil()
    boosted[:60, 200:225] = counts[:60, 200:225].toarray() + 6.0
    data = log_normalise(sp.csr_matrix(boosted))
    pvalues, fdr = significance(
        data, {"planted": signature}, var_names=gene_names(N_GENES), n_null=499
    )
    assert pvalues["planted"].iloc[:60].max() <= 0.01
    assert (fdr["planted"].iloc[:60] < 0.05).all()
    assert pvalues["planted"].iloc[60:].median() > 0.2
