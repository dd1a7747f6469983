"""The label audit of benchmarks/evaluate_celltypes.py: a label is contradicted only by the
cell's own detected defining genes (DEFINING_GENES), never by the assignment."""

from __future__ import annotations

import anndata as ad
import numpy as np
import pandas as pd
import pytest
import scipy.sparse as sp
from workflow_helpers import benchmark_module

GENES = ["CD3E", "CD8A", "CD4", "KLRF1", "FCER1A", "FCN1"]


@pytest.fixture(scope="module")
def evaluation():
    return benchmark_module("evaluate_celltypes")


def cells(*detected: tuple[str, ...]) -> ad.AnnData:
    """One cell per argument, detecting (value 1) exactly the genes named."""
    x = np.array([[1.0 if g in row else 0.0 for g in GENES] for row in detected], np.float32)
    adata = ad.AnnData(sp.csr_matrix(x), var=pd.DataFrame(index=GENES))
    adata.obs_names = [f"c{i}" for i in range(adata.n_obs)]
    return adata


def audit(evaluation, adata, labels):
    return evaluation.label_audit(adata, pd.Series(labels, index=adata.obs_names)).tolist()


def test_nk_label_is_contradicted_by_the_cd3_complex(evaluation):
    adata = cells(("CD3E", "KLRF1"), ("KLRF1",), ("CD8A",))
    labels = ["NK", "NK", "CD8 T"]
    assert audit(evaluation, adata, labels) == ["contradicted", "consistent", "consistent"]


def test_a_label_without_its_genes_is_contradicted_only_by_another_labelled_types_genes(
    evaluation,
):
    # CD4 T detecting CD8A only: contradicted; detecting nothing (dropout): consistent
    adata = cells(("CD8A",), (), ("CD4", "CD8A"))
    labels = ["CD4 T", "CD4 T", "CD8 T"]
    assert audit(evaluation, adata, labels) == ["contradicted", "consistent", "consistent"]


def test_genes_of_types_absent_from_the_labels_do_not_contradict(evaluation):
    # FCN1 is a monocyte gene, but no cell here is labelled a monocyte
    adata = cells(("FCN1",), ("FCER1A",))
    labels = ["dendritic", "dendritic"]
    assert audit(evaluation, adata, labels) == ["consistent", "consistent"]


def test_class_families_share_one_definition_and_uncovered_cells_stay_unaudited(evaluation):
    # a non-classical monocyte label is a monocyte/macrophage label; FCER1A alone contradicts it
    adata = cells(("FCER1A",), ("FCER1A",), ())
    labels = ["non-classical monocyte", "dendritic", np.nan]
    result = audit(evaluation, adata, labels)
    assert result[:2] == ["contradicted", "consistent"]
    assert pd.isna(result[2])


def test_contradicted_calls_counts_calls_as_labels(evaluation):
    adata = cells(("CD3E", "KLRF1"), ("KLRF1",), ("CD8A",))
    calls = pd.Series(["NK", "NK", "unassigned"], index=adata.obs_names)
    assert evaluation.contradicted_calls(adata, calls) == 1
