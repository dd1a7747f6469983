"""seedsoil.qc: metrics, filters with reasons, and the split into samples."""

from __future__ import annotations

import anndata as ad
import numpy as np
import pandas as pd
import pytest
import scipy.sparse as sp

from seedsoil.errors import InputError
from seedsoil.qc import apply_qc, cell_metrics, qc_metrics, split_samples

GENES = ["CD3E", "LYZ", "MS4A1", "MT-CO1", "MT-ND1"]


def make(counts, samples, *, with_counts=True) -> ad.AnnData:
    counts = np.asarray(counts, dtype=np.float64)
    lognorm = np.log1p(counts / counts.sum(1, keepdims=True) * 1e4)
    obs = pd.DataFrame({"sample": samples}, index=[f"c{i}" for i in range(len(counts))])
    adata = ad.AnnData(
        sp.csr_matrix(lognorm, dtype=np.float32), obs=obs, var=pd.DataFrame(index=GENES)
    )
    if with_counts:
        adata.layers["counts"] = sp.csr_matrix(counts, dtype=np.float32)
    adata.uns["seedsoil"] = {"dataset": "d", "warnings": []}
    return adata


COUNTS = [
    [5, 3, 2, 0, 0],  # 3 genes, no MT
    [1, 1, 0, 4, 4],  # MT fraction 0.8
    [0, 0, 6, 1, 0],  # 2 genes, MT 1/7
    [2, 2, 2, 2, 2],  # 5 genes, MT 0.4
]


def test_metrics_on_counts():
    metrics = qc_metrics(make(COUNTS, ["a"] * 4))
    np.testing.assert_array_equal(metrics["n_counts"], [10, 10, 7, 10])
    np.testing.assert_array_equal(metrics["n_genes"], [3, 4, 2, 5])
    np.testing.assert_allclose(metrics["mito_fraction"], [0, 0.8, 1 / 7, 0.4], rtol=1e-12)


def test_metrics_without_counts_use_expm1_of_x():
    metrics = qc_metrics(make(COUNTS, ["a"] * 4, with_counts=False))
    np.testing.assert_allclose(metrics["n_counts"], 1e4, rtol=1e-5)  # CP10k totals
    np.testing.assert_allclose(metrics["mito_fraction"], [0, 0.8, 1 / 7, 0.4], rtol=1e-5)


def test_metrics_leave_the_callers_matrix_with_explicit_zeros_intact():
    # Row 0 stores an explicit zero for LYZ: it is no gene of the cell, and the caller's
    # matrix keeps its three stored values and its indptr.
    counts = sp.csr_matrix(
        (np.array([5.0, 0.0, 2.0, 4.0]), np.array([0, 1, 2, 3]), np.array([0, 3, 4])),
        shape=(2, 5),
    )
    before = (counts.data.copy(), counts.indices.copy(), counts.indptr.copy())

    metrics = cell_metrics(counts, counts, np.array([False, False, False, True, False]))

    np.testing.assert_array_equal(metrics["n_genes"], [2, 1])
    np.testing.assert_array_equal(metrics["n_counts"], [7, 4])
    for array, original in zip((counts.data, counts.indices, counts.indptr), before, strict=True):
        np.testing.assert_array_equal(array, original)


def test_apply_qc_sets_reasons_and_counts():
    adata = apply_qc(make(COUNTS, ["a"] * 4), min_genes=3, max_mito_fraction=0.5)
    assert adata.obs["qc_pass"].tolist() == [True, False, False, True]
    assert adata.obs["qc_reason"].tolist() == ["", "max_mito_fraction", "min_genes", ""]
    qc = adata.uns["seedsoil"]["qc"]
    assert qc["failed"] == {"min_genes": 1, "max_mito_fraction": 1, "min_cells_per_sample": 0}
    assert qc["n_pass"] == 2 and qc["per_sample"] == {"a": {"n_cells": 4, "n_pass": 2}}


def test_a_cell_failing_twice_lists_both_reasons():
    adata = apply_qc(make([[0, 0, 0, 1, 1]], ["a"]), min_genes=3, max_mito_fraction=0.5)
    assert adata.obs["qc_reason"].iloc[0] == "min_genes;max_mito_fraction"


def test_split_samples_keeps_passing_cells_per_sample():
    adata = apply_qc(make(COUNTS, ["b", "a", "b", "a"]), min_genes=3, max_mito_fraction=0.5)
    parts = split_samples(adata)
    assert list(parts) == ["a", "b"]
    assert list(parts["a"].obs_names) == ["c3"] and list(parts["b"].obs_names) == ["c0"]


def test_empty_sample_after_qc_names_sample_and_thresholds():
    adata = apply_qc(make(COUNTS, ["b", "a", "a", "b"]), min_genes=3, max_mito_fraction=0.5)
    with pytest.raises(InputError) as error:
        split_samples(adata)
    message = str(error.value)
    assert (
        "sample 'a'" in message and "min_genes=3" in message and "max_mito_fraction=0.5" in message
    )
    assert "Relax" in message


def test_min_cells_per_sample_drops_small_samples_on_purpose():
    adata = apply_qc(
        make(COUNTS, ["b", "a", "a", "b"]),
        min_genes=2,
        max_mito_fraction=0.9,
        min_cells_per_sample=3,
    )
    assert adata.obs["qc_reason"].tolist() == ["min_cells_per_sample"] * 4
    assert split_samples(adata) == {}


def test_missing_mito_genes_are_reported():
    adata = make(COUNTS, ["a"] * 4)[:, :3].copy()
    apply_qc(adata, min_genes=1)
    assert any("no mitochondrial genes" in w for w in adata.uns["seedsoil"]["warnings"])
