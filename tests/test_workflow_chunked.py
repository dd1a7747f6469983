"""The real workflow scoring samples as chunk jobs writes the same tables as one job per sample."""

from __future__ import annotations

import io

import pandas as pd
import pytest
from workflow_helpers import TUMOUR_ROW, run_snakemake, synthetic_tumour, write_config, write_sheet

pytestmark = pytest.mark.workflow

SAMPLES = ("P1", "P2")  # 120 cells each
CHUNK_CELLS = 40  # 3 ranges per sample
TABLES = ("scores.parquet", "pvalues.parquet", "fdr.parquet", "calls.parquet")
TEXTS = ("coverage.tsv", "communication.tsv")
SCORING_RULES = ("score_chunk", "score", "interpret")


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    """(one-job tables, chunked tables, workdir): the same workdir scored twice, chunk_cells apart.

    The second run re-scores (``--forcerun score``) from the same ingested cells and re-runs
    what depends on the scores; reports are not built (they only format these tables).
    """
    workdir = tmp_path_factory.mktemp("chunked")
    (workdir / "data").mkdir()
    synthetic_tumour().write_h5ad(workdir / "data" / "tumour.h5ad")
    sheet = write_sheet(
        workdir / "datasets.tsv",
        [TUMOUR_ROW],
    )
    targets = [f"results/tumour/{sample}/calls.parquet" for sample in SAMPLES]
    tables = {}
    for name, chunk_cells, extra in (
        ("one_job", 1_000_000, []),
        ("chunked", CHUNK_CELLS, ["--forcerun", "score"]),
    ):
        # scanpy scores need the dataset-wide gene statistics, as do the p-values
        scoring = {"method": "scanpy", "n_null": 50, "chunk_cells": chunk_cells}
        config = write_config(workdir, sheet, scoring=scoring)
        # one thread per job lets the two samples' jobs run side by side (threads never
        # change a result: seedsoil.scoring's kernels fix every summation order)
        threads = ["--set-threads", *(f"{rule}=1" for rule in SCORING_RULES)]
        result = run_snakemake(workdir, config, *targets, *extra, *threads)
        assert result.returncode == 0, result.stderr[-5000:]
        tables[name] = {
            (sample, file): (workdir / "results" / "tumour" / sample / file).read_bytes()
            for sample in SAMPLES
            for file in TABLES + TEXTS
        }
        if name == "one_job":
            assert not (workdir / "logs" / "score_chunk").exists()
    return tables["one_job"], tables["chunked"], workdir


def test_chunked_run_scored_each_sample_in_three_ranges(runs):
    workdir = runs[2]
    for sample in SAMPLES:
        logs = sorted((workdir / "logs" / "score_chunk" / "tumour").glob(f"{sample}.*.log"))
        assert [log.name for log in logs] == [f"{sample}.{i}.log" for i in range(3)]
        # the per-range tables are temporary
        assert not list((workdir / "results" / "tumour" / sample / "chunks").glob("*.parquet"))


def test_chunked_run_takes_the_gene_statistics_from_ingest(runs):
    """No statistics pass over the ranges: ingest wrote every sample's statistics."""
    workdir = runs[2]
    assert not (workdir / "logs" / "score_stats").exists()
    assert (workdir / "results" / "tumour" / "gene_stats.npz").is_file()


@pytest.mark.parametrize("table", TABLES)
def test_chunked_tables_equal_one_job_to_the_bit(runs, table):
    one_job, chunked, _ = runs
    for sample in SAMPLES:
        expected = pd.read_parquet(io.BytesIO(one_job[sample, table]))
        written = pd.read_parquet(io.BytesIO(chunked[sample, table]))
        assert len(written) == 120
        pd.testing.assert_frame_equal(written, expected, check_exact=True)


@pytest.mark.parametrize("text", TEXTS)
def test_chunked_text_tables_equal_one_job(runs, text):
    one_job, chunked, _ = runs
    for sample in SAMPLES:
        assert chunked[sample, text] == one_job[sample, text]
