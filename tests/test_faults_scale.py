"""The input scale is told from the data's structure, on a real targeted-panel sample."""

from __future__ import annotations

from pathlib import Path

import anndata as ad
import numpy as np
import pytest
import scipy.sparse as sp

from seedsoil.harmonise import detect_scale

HYDROSEQ = Path(__file__).parents[1] / "resources" / "data" / "hydroseq_ctc_enriched_1100.h5ad"


@pytest.fixture(scope="module")
def counts() -> sp.csr_matrix:
    """Real UMI counts of a targeted panel (2,545 genes), cells with no count removed."""
    matrix = sp.csr_matrix(ad.read_h5ad(HYDROSEQ).X, dtype=np.float64)
    return matrix[np.asarray(matrix.sum(axis=1)).ravel() > 0]


def log_normalised(counts: sp.csr_matrix, target: float) -> sp.csr_matrix:
    totals = np.asarray(counts.sum(axis=1)).ravel()
    scaled = sp.csr_matrix(sp.diags(target / totals) @ counts)
    scaled.data = np.log1p(scaled.data)
    return sp.csr_matrix(scaled, dtype=np.float32)


@pytest.mark.parametrize("target", [1e4, 1e6])
def test_log1p_of_normalised_counts_is_log_normalised(counts, target):
    assert detect_scale(log_normalised(counts, target)) == "log-normalised"


def test_log_normalised_values_of_a_gene_subset_are_log_normalised(counts):
    assert detect_scale(log_normalised(counts, 1e4)[:, :500]) == "log-normalised"


def test_non_integer_counts_as_small_as_logs_are_not_logs(counts):
    # low-depth estimated counts: each cell's largest value at most 19, as log1p values can be
    estimated = counts.copy()
    estimated.data = estimated.data * (19 / counts.data.max())
    estimated.data *= np.random.default_rng(0).uniform(0.9, 1.0, counts.nnz)
    assert estimated.data.max() <= 19
    assert detect_scale(estimated) == "normalised"


def test_all_integer_values_are_counts_whatever_their_size(counts):
    assert detect_scale(counts) == "counts"
