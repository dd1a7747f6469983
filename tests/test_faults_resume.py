"""A run killed with SIGKILL in any heavy rule resumes to the tables of an uninterrupted run, and
runs are deterministic: a second run in a row, on one core instead of two, gives the same
tables. Run by ``make test-faults`` (about 3 minutes on 2 cores).

Tables are compared by content: Parquet and h5ad as data frames and arrays (exactly), TSV and
JSON as text, HTML reports as text with their generation time removed (docs/architecture.md,
"Crashes, resumes and determinism").
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import anndata as ad
import numpy as np
import pandas as pd
import psutil
import pytest
import scipy.sparse as sp
from workflow_helpers import (
    REPO,
    TUMOUR_ROW,
    run_snakemake,
    synthetic_tumour,
    write_config,
    write_sheet,
)

pytestmark = pytest.mark.faults

#: Output file names of each heavy rule, in the order a run reaches them: a temporary of one
#: of them (``.name.*.tmp*``) or the file itself appearing means the rule is at work.
HEAVY_RULES = {
    "ingest": ("ingested.h5ad", "samples.tsv", "gene_stats.npz"),
    "split_sample": ("cells.h5ad",),
    "score": ("coverage.tsv", "scores.parquet", "pvalues.parquet", "fdr.parquet"),
    "interpret": ("calls.parquet", "communication.tsv", "interpretation.json"),
    "sample_report": ("report.html", "summary.json", "pseudobulk.parquet"),
}
#: "… 2026-11-29 02:13 UTC": the generation time the reports show.
REPORT_TIME = re.compile(r"\d{4}-\d{2}-\d{2}[ T]\d{2}:\d{2}(:\d{2})?( UTC)?")


def make_workdir(workdir: Path) -> Path:
    """A working directory with 900 cells of two patients and its config; returns the config."""
    (workdir / "data").mkdir(parents=True)
    synthetic_tumour(n_per_type=150).write_h5ad(workdir / "data" / "tumour.h5ad")
    write_sheet(workdir / "datasets.tsv", [TUMOUR_ROW])
    # relative to the working directory: the reports show the config, equal in every run
    return write_config(workdir, Path("datasets.tsv"))


def run(workdir: Path, config: Path, *args: str, cores: int = 2) -> None:
    result = run_snakemake(workdir, config, *args, cores=cores)
    assert result.returncode == 0, result.stderr[-4000:]


def snapshot(workdir: Path) -> dict[str, object]:
    """Every result file by path (benchmarks left out: they are timings), in comparable form."""
    tables: dict[str, object] = {}
    for path in sorted((workdir / "results").rglob("*")):
        name = str(path.relative_to(workdir))
        if not path.is_file() or "benchmarks" in path.parts:
            continue
        if path.suffix == ".parquet":
            tables[name] = pd.read_parquet(path)
        elif path.suffix == ".h5ad":
            tables[name] = ad.read_h5ad(path)
        elif path.suffix == ".html":
            tables[name] = REPORT_TIME.sub("<time>", path.read_text())
        elif path.suffix == ".json":
            tables[name] = json.loads(path.read_text())
        elif path.suffix == ".npz":  # ingest's gene statistics: every array, to the bit
            with np.load(path) as arrays:
                tables[name] = {k: (v.dtype.str, v.shape, v.tobytes()) for k, v in arrays.items()}
        else:
            tables[name] = path.read_text()
    return tables


def assert_same_anndata(left: ad.AnnData, right: ad.AnnData, name: str) -> None:
    def dense(matrix):
        return matrix.toarray() if sp.issparse(matrix) else np.asarray(matrix)

    assert list(left.var_names) == list(right.var_names), name
    np.testing.assert_array_equal(dense(left.X), dense(right.X), err_msg=name)
    assert sorted(left.layers) == sorted(right.layers), name
    for key in left.layers:
        np.testing.assert_array_equal(dense(left.layers[key]), dense(right.layers[key]), name)
    pd.testing.assert_frame_equal(left.obs, right.obs, obj=name)
    assert sorted(left.obsm) == sorted(right.obsm), name
    for key in left.obsm:
        np.testing.assert_array_equal(dense(left.obsm[key]), dense(right.obsm[key]), name)


def assert_same_tables(left: dict, right: dict) -> None:
    assert sorted(left) == sorted(right)
    for name, value in left.items():
        if isinstance(value, pd.DataFrame):
            pd.testing.assert_frame_equal(value, right[name], obj=name)
        elif isinstance(value, ad.AnnData):
            assert_same_anndata(value, right[name], name)
        else:
            assert value == right[name], name


def output_files(workdir: Path, names: tuple[str, ...]) -> set[Path]:
    """Files under results/ named like one of ``names``, finished or temporary."""
    return {
        path
        for path in (workdir / "results").rglob("*")
        if path.name in names or any(path.name.startswith(f".{n}.") for n in names)
    }


def kill_during(workdir: Path, config: Path, rule: str) -> str:
    """Start the workflow, SIGKILL its whole process group as soon as ``rule`` writes (a
    temporary or a final output of it appears), and return what was seen."""
    names = HEAVY_RULES[rule]
    before = output_files(workdir, names) if (workdir / "results").exists() else set()
    command = [
        str(Path(sys.executable).with_name("snakemake")),
        "--snakefile", str(REPO / "Snakefile"), "--directory", str(workdir),
        "--configfile", str(config), "--cores", "2", "--rerun-incomplete",
    ]  # fmt: skip
    process = subprocess.Popen(
        command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True
    )
    seen = set()
    try:
        while process.poll() is None:
            if (workdir / "results").exists():
                seen = output_files(workdir, names) - before
            if seen:
                break
            time.sleep(0.01)
        assert process.poll() is None, f"the run ended before {rule} wrote anything"
        job_processes = psutil.Process(process.pid).children(recursive=True)
        os.killpg(process.pid, signal.SIGKILL)
        for child in job_processes:  # in case a job left the process group
            with contextlib.suppress(psutil.NoSuchProcess):
                child.kill()
    finally:
        process.wait()
    assert process.returncode == -signal.SIGKILL
    return ", ".join(sorted(p.name for p in seen))


@pytest.fixture(scope="module")
def clean_run(tmp_path_factory):
    """An uninterrupted run on 2 cores: its working directory, config and tables."""
    workdir = tmp_path_factory.mktemp("clean")
    config = make_workdir(workdir)
    run(workdir, config)
    return workdir, config, snapshot(workdir)


def test_a_second_run_in_a_row_on_one_core_gives_the_tables_of_the_first_on_two(clean_run):
    # One run checks both: repeating a run in place, and changing the number of cores.
    workdir, config, first = clean_run
    run(workdir, config, "--forceall", cores=1)
    assert_same_tables(snapshot(workdir), first)


def test_runs_killed_in_every_heavy_rule_resume_to_the_tables_of_a_clean_run(clean_run, tmp_path):
    config = make_workdir(tmp_path)
    for rule in HEAVY_RULES:
        seen = kill_during(tmp_path, config, rule)
        print(f"killed during {rule}: {seen}")
        # What the README says to do after a crash: unlock, then rerun the incomplete jobs.
        locked = run_snakemake(tmp_path, config)
        assert locked.returncode != 0 and "--unlock" in locked.stdout + locked.stderr
        run(tmp_path, config, "--unlock")
    run(tmp_path, config, "--rerun-incomplete")
    assert_same_tables(snapshot(tmp_path), clean_run[2])
    leftovers = [p for p in (tmp_path / "results").rglob(".*.tmp*")]
    assert not leftovers, f"temporaries of killed jobs left behind: {leftovers}"
