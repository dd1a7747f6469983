"""Scoring a sample as separate jobs over cell ranges equals scoring it in one pass, to the bit."""

from __future__ import annotations

import anndata as ad
import numpy as np
import pandas as pd
import pytest
import scipy.sparse as sp
from workflow_helpers import REPO, synthetic_tumour

from seedsoil import score, significance
from seedsoil.errors import InputError
from seedsoil.pipeline import (
    gather_sample_scores,
    sample_gene_stats,
    score_sample,
    score_sample_chunk,
)
from seedsoil.scoring._input import open_source
from seedsoil.scoring.chunked import (
    chunk_bounds,
    continue_gene_stats,
    gather,
    load_gene_stats,
    n_chunks_for,
    save_gene_stats,
    score_rows,
)
from seedsoil.scoring.stats import gene_stats
from seedsoil.synthetic import log_normalise

LIBRARY = [str(REPO / "resources" / "signatures")]
SIGNATURES = {
    "epithelial": ["EPCAM", "KRT8", "KRT18", "KRT19", "CDH1", "CLDN4"],
    "neutrophil": {"up": ["ELANE", "MPO", "PADI4", "CSF3R"], "down": ["CD3E", "CD2"]},
    "t_cell": ["CD3E", "CD3D", "CD2", "CD8A", "GZMB", "NKG7"],
}
N_RANGES = 4  # uneven on purpose: 1203 cells


@pytest.fixture(scope="module")
def sample_path(tmp_path_factory):
    """A gzip-compressed sample file as split_sample writes it: float32 log-normalised CSR X."""
    raw = synthetic_tumour(n_per_type=201, n_filler=700, seed=3)
    raw = raw[:1203].copy()
    cells = ad.AnnData(
        log_normalise(sp.csr_matrix(raw.X)).astype(np.float32),
        obs=pd.DataFrame(index=raw.obs_names),
        var=pd.DataFrame(index=raw.var_names),
    )
    cells.uns["seedsoil"] = {"species": "human", "dataset": "synthetic", "sample": "S1"}
    path = tmp_path_factory.mktemp("chunked") / "cells.h5ad"
    cells.write_h5ad(path, compression="gzip")
    return path


def _chained_stats(path, n_ranges):
    stats = None
    for start, stop in chunk_bounds(ad.read_h5ad(path, backed="r").n_obs, n_ranges):
        stats = continue_gene_stats(path, start, stop, stats, block_size=97)
    return stats


def _in_ranges(path, signatures, method, n_ranges, n_null=0, **options):
    n_cells = ad.read_h5ad(path, backed="r").n_obs
    stats = _chained_stats(path, n_ranges)
    parts = [
        score_rows(
            path,
            signatures,
            method,
            start=start,
            stop=stop,
            stats=stats,
            options=options,
            n_null=n_null,
            block_size=101,
        )  # fmt: skip
        for start, stop in chunk_bounds(n_cells, n_ranges)
    ]
    return gather([s for s, _ in parts], [p for _, p in parts])


def test_chunk_bounds_cover_every_row_once_in_near_equal_ranges():
    bounds = chunk_bounds(1003, 4)
    assert bounds[0][0] == 0 and bounds[-1][1] == 1003
    assert all(a[1] == b[0] for a, b in zip(bounds[:-1], bounds[1:], strict=True))
    sizes = [stop - start for start, stop in bounds]
    assert max(sizes) - min(sizes) <= 1


def test_n_chunks_keeps_every_range_within_chunk_cells():
    assert n_chunks_for(1000, 1000) == 1
    assert n_chunks_for(1001, 1000) == 2
    assert n_chunks_for(0, 1000) == 1
    with pytest.raises(InputError, match="chunk_cells"):
        n_chunks_for(10, 0)


def test_chained_gene_stats_equal_one_pass_bit_for_bit(sample_path):
    chained = _chained_stats(sample_path, N_RANGES)
    source = open_source(sample_path)
    whole = gene_stats(source.chunks(20_000), source.n_genes)
    assert chained.n_cells == whole.n_cells
    for field in ("sum", "sum_native", "sum_sq", "nnz"):
        a, b = getattr(chained, field), getattr(whole, field)
        assert a.dtype == b.dtype, field
        np.testing.assert_array_equal(a, b, err_msg=field)


def test_gene_stats_survive_saving_exactly(sample_path, tmp_path):
    stats = _chained_stats(sample_path, 2)
    save_gene_stats(stats, tmp_path / "stats.npz")
    loaded = load_gene_stats(tmp_path / "stats.npz")
    assert loaded.n_cells == stats.n_cells
    for field in ("sum", "sum_native", "sum_sq", "nnz"):
        assert getattr(loaded, field).dtype == getattr(stats, field).dtype
        np.testing.assert_array_equal(getattr(loaded, field), getattr(stats, field))


def test_stats_must_continue_the_previous_range(sample_path):
    first = continue_gene_stats(sample_path, 0, 300)
    with pytest.raises(InputError, match="must continue"):
        continue_gene_stats(sample_path, 400, 600, first)
    with pytest.raises(InputError, match="must continue"):
        continue_gene_stats(sample_path, 300, 600, None)


@pytest.mark.parametrize(
    ("method", "options"),
    [("ucell", {}), ("scanpy", {"random_state": 0}), ("aucell", {}), ("mean", {"zscore": True})],
)
def test_scores_in_ranges_equal_one_pass(sample_path, method, options):
    scores, _, _ = _in_ranges(sample_path, SIGNATURES, method, N_RANGES, **options)
    expected = score(sample_path, SIGNATURES, method=method, **options)
    pd.testing.assert_frame_equal(scores, expected, check_exact=True)


def test_pvalues_and_fdr_in_ranges_equal_one_pass(sample_path):
    _, pvalues, fdr = _in_ranges(sample_path, SIGNATURES, "ucell", N_RANGES, n_null=50)
    expected_p, expected_fdr = significance(sample_path, SIGNATURES, n_null=50, random_state=0)
    pd.testing.assert_frame_equal(pvalues, expected_p, check_exact=True)
    pd.testing.assert_frame_equal(fdr, expected_fdr, check_exact=True)


def test_fdr_is_computed_across_all_cells_not_per_range(sample_path):
    _, pvalues, fdr = _in_ranges(sample_path, SIGNATURES, "ucell", N_RANGES, n_null=50)
    first_range = slice(*chunk_bounds(len(pvalues), N_RANGES)[0])
    per_range = gather([pvalues.iloc[first_range]], [pvalues.iloc[first_range]])[2]
    # the same p-values adjusted among fewer cells give smaller q-values somewhere
    assert (per_range.to_numpy() < fdr.iloc[first_range].to_numpy()).any()


def test_streamed_sample_equals_in_memory_sample(sample_path):
    options = dict(library=LIBRARY, gmt=[], min_coverage=0.3, method="scanpy", n_null=30)
    streamed = score_sample(sample_path, random_state=1, **options)
    in_memory = score_sample(ad.read_h5ad(sample_path), random_state=1, **options)
    for a, b in zip(streamed[:3], in_memory[:3], strict=True):
        pd.testing.assert_frame_equal(a, b, check_exact=True)
    pd.testing.assert_frame_equal(streamed[3], in_memory[3])


@pytest.mark.parametrize("n_null", [0, 30])
def test_sample_scored_as_chunk_jobs_equals_one_job(sample_path, tmp_path, n_null):
    options = dict(library=LIBRARY, gmt=[], min_coverage=0.3)
    scoring = dict(method="ucell", n_null=n_null, random_state=0)
    n_chunks = 3
    previous = None
    for chunk in range(n_chunks):
        stats = sample_gene_stats(sample_path, chunk, n_chunks, previous)
        previous = tmp_path / f"stats.{chunk}.npz"
        save_gene_stats(stats, previous)
    score_paths, pvalue_paths = [], []
    for chunk in range(n_chunks):
        scores, pvalues = score_sample_chunk(
            sample_path, chunk, n_chunks, previous, **options, **scoring
        )
        score_paths.append(tmp_path / f"scores.{chunk}.parquet")
        pvalue_paths.append(tmp_path / f"pvalues.{chunk}.parquet")
        scores.to_parquet(score_paths[-1])
        pvalues.to_parquet(pvalue_paths[-1])
    gathered = gather_sample_scores(sample_path, score_paths, pvalue_paths, **options)
    single = score_sample(sample_path, **options, **scoring)
    for a, b in zip(gathered[:3], single[:3], strict=True):
        pd.testing.assert_frame_equal(a, b, check_exact=True)
    pd.testing.assert_frame_equal(gathered[3], single[3])
