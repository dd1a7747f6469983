"""Ingest's per-sample gene statistics equal a statistics pass over the sample's cells.h5ad."""

from __future__ import annotations

import anndata as ad
import numpy as np
import pandas as pd
import pytest
import scipy.sparse as sp
from workflow_helpers import REPO, sheet_row, synthetic_tumour

from seedsoil.errors import InputError
from seedsoil.ingest import ingest
from seedsoil.pipeline import score_sample
from seedsoil.scoring.chunked import (
    chunk_bounds,
    continue_gene_stats,
    load_sample_gene_stats,
    save_sample_gene_stats,
)
from seedsoil.scoring.stats import GeneStatsBySample, gene_stats
from seedsoil.split import write_sample_cells

QC = {"min_genes": 20, "max_mito_fraction": 0.5, "min_cells_per_sample": 5}
COLUMNS = {"sample_column": "patient", "cell_type_column": "label", "condition_column": "site"}
FIELDS = ("sum", "sum_native", "sum_sq", "nnz")
POOR_CELLS = (1, 8, 9, 30, 61)  # left with 5 genes each: below min_genes


def assert_same_stats(written, expected):
    """Every field equal to the bit, dtypes included."""
    assert written.n_cells == expected.n_cells
    for field in FIELDS:
        a, b = getattr(written, field), getattr(expected, field)
        assert a.dtype == b.dtype, field
        assert a.tobytes() == b.tobytes(), field


def interleaved_tumour(seed: int = 5) -> ad.AnnData:
    """Two patients' cells in random order, a few of them too poor to pass QC."""
    raw = synthetic_tumour(n_per_type=15, n_filler=80, seed=seed)
    adata = raw[np.random.default_rng(seed).permutation(raw.n_obs)].copy()
    values = adata.X.toarray()
    for row in POOR_CELLS:
        values[row, 5:] = 0
    adata.X = sp.csr_matrix(values)
    return adata


def chained_stats(path, n_ranges: int):
    """The statistics pass score_stats ran: one range after another over the cell file."""
    stats = None
    n_cells = ad.read_h5ad(path, backed="r").n_obs
    for start, stop in chunk_bounds(n_cells, n_ranges):
        stats = continue_gene_stats(path, start, stop, stats, block_size=11)
    return stats


def ingest_and_split(tmp_path, adata: ad.AnnData, **columns):
    """(samples table, stats file, {sample: cells.h5ad}) of ``adata`` run through ingest and split."""
    source = tmp_path / "input.h5ad"
    adata.write_h5ad(source)
    stats_path = tmp_path / "gene_stats.npz"
    samples = ingest(
        source, sheet_row(tmp_path, source, **columns), QC, tmp_path / "ingested.h5ad",
        stats_path=stats_path, block_cells=7,
    )  # fmt: skip
    cells = {}
    for sample in samples["sample"]:
        cells[sample] = tmp_path / sample / "cells.h5ad"
        cells[sample].parent.mkdir()
        write_sample_cells(tmp_path / "ingested.h5ad", sample, cells[sample])
    return samples, stats_path, cells


def assert_accumulated_by_sample(matrix, groups, n_samples, step, native_dtype):
    """``GeneStatsBySample`` fed ``step`` rows at a time equals ``gene_stats`` of each sample's
    rows (group -1: rows counted nowhere), its native sums in ``native_dtype``."""
    by_sample = GeneStatsBySample(matrix.shape[1], matrix.dtype)
    for lo in range(0, matrix.shape[0], step):
        by_sample.add(matrix[lo : lo + step], groups[lo : lo + step])
    for code in range(n_samples):
        expected = gene_stats([matrix[np.flatnonzero(groups == code)]], matrix.shape[1])
        assert expected.sum_native.dtype == native_dtype
        assert_same_stats(by_sample.result(code), expected)


def test_accumulated_by_sample_equals_gene_stats_of_each_samples_rows_float32():
    rng = np.random.default_rng(0)
    matrix = sp.random(300, 50, density=0.3, format="csr", dtype=np.float32, random_state=rng)
    matrix.data = np.log1p(matrix.data * 1000).astype(np.float32)
    groups = rng.integers(-1, 3, size=300)  # three samples, -1: rows counted nowhere
    assert_accumulated_by_sample(matrix, groups, 3, step=23, native_dtype=np.float32)


def test_accumulated_by_sample_equals_gene_stats_of_each_samples_rows_integers():
    rng = np.random.default_rng(1)
    matrix = sp.random(200, 40, density=0.4, format="csr", dtype=np.float64, random_state=rng)
    matrix = sp.csr_matrix((np.ceil(matrix.data * 50).astype(np.int32), matrix.indices,
                            matrix.indptr), shape=matrix.shape)  # fmt: skip
    groups = rng.integers(-1, 2, size=200)
    assert_accumulated_by_sample(matrix, groups, 2, step=17, native_dtype=np.int64)


def test_streamed_ingest_stats_equal_the_chained_pass_over_each_cells_file(tmp_path):
    samples, stats_path, cells = ingest_and_split(tmp_path, interleaved_tumour(), **COLUMNS)
    ingested = ad.read_h5ad(tmp_path / "ingested.h5ad", backed="r")
    assert not ingested.obs["qc_pass"].all()  # QC-filtered cells sit between the kept ones
    assert list(samples["sample"]) == ["P1", "P2"]
    for sample, path in cells.items():
        written = load_sample_gene_stats(stats_path, sample)
        assert written.sum_native.dtype == np.float32
        assert_same_stats(written, chained_stats(path, 3))


def test_stats_of_an_input_harmonised_twice_are_those_of_the_second_pass(tmp_path):
    """The first block holds integers only, later ones do not: ingest restarts the pass."""
    adata = interleaved_tumour()
    values = adata.X.toarray() * 37.0
    values[10] += 0.25
    adata.X = sp.csr_matrix(values)
    samples, stats_path, cells = ingest_and_split(tmp_path, adata, **COLUMNS)
    ingested = ad.read_h5ad(tmp_path / "ingested.h5ad", backed="r")
    assert ingested.uns["seedsoil"]["input_scale"] == "normalised"
    for sample, path in cells.items():
        assert_same_stats(load_sample_gene_stats(stats_path, sample), chained_stats(path, 2))


def test_in_memory_ingest_stats_equal_the_chained_pass(tmp_path):
    adata = interleaved_tumour()
    adata.X = sp.csc_matrix(adata.X)  # a CSC matrix is ingested whole, not streamed
    samples, stats_path, cells = ingest_and_split(tmp_path, adata, **COLUMNS)
    assert len(samples) == 2
    for sample, path in cells.items():
        assert_same_stats(load_sample_gene_stats(stats_path, sample), chained_stats(path, 3))


def test_a_sample_absent_from_the_stats_file_is_named(tmp_path):
    stats = gene_stats([sp.csr_matrix(np.eye(3, dtype=np.float32))], 3)
    save_sample_gene_stats({"P1": stats}, tmp_path / "gene_stats.npz")
    assert_same_stats(load_sample_gene_stats(tmp_path / "gene_stats.npz", "P1"), stats)
    with pytest.raises(InputError, match="sample 'P2'.*re-run ingest"):
        load_sample_gene_stats(tmp_path / "gene_stats.npz", "P2")


def test_one_job_scoring_with_ingests_stats_equals_its_own_pass(tmp_path):
    """score_sample given the ingested statistics reads the cells once, same tables."""
    samples, stats_path, cells = ingest_and_split(tmp_path, interleaved_tumour(), **COLUMNS)
    options = dict(
        library=[str(REPO / "resources" / "signatures")], gmt=[], min_coverage=0.5,
        method="scanpy", n_null=20, random_state=0,
    )  # fmt: skip
    path = cells["P1"]
    expected = score_sample(path, **options)
    written = score_sample(path, **options, stats=load_sample_gene_stats(stats_path, "P1"))
    for table, reference in zip(written[:3], expected[:3], strict=True):
        pd.testing.assert_frame_equal(table, reference, check_exact=True)
    pd.testing.assert_frame_equal(written[3], expected[3])
