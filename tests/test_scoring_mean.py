"""The mean and z-scored mean methods against their definitions computed densely on small data."""

from __future__ import annotations

import numpy as np
import pytest
import scipy.sparse as sp
from synthetic import gene_names

from seedsoil.errors import InputError
from seedsoil.scoring import score

TOLERANCE = 1e-10  # float64 sums in a different order than numpy's dense reference


@pytest.fixture(scope="module")
def dense(umi_lognorm):
    return umi_lognorm.toarray().astype(np.float64)


def idx(genes):
    return [int(g[1:]) for g in genes]


def test_mean_is_mean_of_up_genes(umi_lognorm, dense):
    var = gene_names(2000)
    genes = var[100:140]
    ours = score(umi_lognorm, {"s": genes}, "mean", var_names=var)
    np.testing.assert_allclose(ours["s"], dense[:, idx(genes)].mean(axis=1), rtol=0, atol=TOLERANCE)


def test_weighted_up_minus_down(umi_lognorm, dense):
    var = gene_names(2000)
    up, down = var[10:20], var[500:530]
    weights = {g: 1.0 + i for i, g in enumerate(up + down)}
    ours = score(
        umi_lognorm, {"s": {"up": up, "down": down, "weights": weights}}, "mean", var_names=var
    )
    w_up = np.array([weights[g] for g in up])
    w_down = np.array([weights[g] for g in down])
    expected = dense[:, idx(up)] @ w_up / w_up.sum() - dense[:, idx(down)] @ w_down / w_down.sum()
    np.testing.assert_allclose(ours["s"], expected, rtol=0, atol=TOLERANCE)


def test_zscore_standardises_with_dataset_mean_and_population_sd(umi_lognorm, dense):
    var = gene_names(2000)
    up, down = var[:25], var[300:315]
    ours = score(umi_lognorm, {"s": {"up": up, "down": down}}, "mean", var_names=var, zscore=True)

    def z(columns):
        values = dense[:, idx(columns)]
        return (values - values.mean(axis=0)) / values.std(axis=0)

    expected = z(up).mean(axis=1) - z(down).mean(axis=1)
    np.testing.assert_allclose(ours["s"], expected, rtol=0, atol=1e-9)


def test_zscore_gives_constant_gene_zero():
    matrix = sp.csr_matrix(
        np.array([[1.0, 2.0, 0.0], [3.0, 2.0, 0.0], [0.0, 2.0, 0.0]], dtype=np.float32)
    )
    ours = score(matrix, {"s": ["a", "b", "c"]}, "mean", var_names=["a", "b", "c"], zscore=True)
    a = np.array([1.0, 3.0, 0.0])
    np.testing.assert_allclose(ours["s"], ((a - a.mean()) / a.std()) / 3, rtol=0, atol=1e-12)


def test_non_positive_weight_is_refused(umi_lognorm):
    var = gene_names(2000)
    with pytest.raises(InputError, match="weights"):
        score(umi_lognorm, {"s": {"up": var[:3], "weights": {var[0]: -1.0}}}, "mean", var_names=var)
