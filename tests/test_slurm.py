"""The workflow on a real one-node SLURM cluster gives the same tables as a local run.

Needs root and apt-get (scripts/slurm_up.sh installs and starts munged, slurmctld and slurmd);
skipped otherwise. Deselected by default: run with ``pytest -m slurm`` or ``make test-slurm``.
"""

from __future__ import annotations

import os
import re
import subprocess
from pathlib import Path

import pandas as pd
import pytest
from workflow_helpers import REPO, run_snakemake, synthetic_tumour, write_config, write_sheet

pytestmark = pytest.mark.slurm

SLURM_UP = REPO / "scripts" / "slurm_up.sh"
SLURM_DOWN = REPO / "scripts" / "slurm_down.sh"
PROFILE = REPO / "profiles" / "slurm"
DAEMONS = ("munged", "slurmctld", "slurmd")
# Exit status of slurm_up.sh when this machine cannot host a cluster (not root, no apt-get).
CANNOT_RUN_HERE = 2
# Whole SLURM run; `-k` because snakemake waits for running jobs after SIGTERM.
TIMEOUT = ["timeout", "-k", "30", "900"]
SUBMITTED = re.compile(r"submitted with SLURM jobid (\d+) \(log: (\S+)\)")


def _recorded_pids(state: Path) -> dict[str, int]:
    """Daemon -> PID that slurm_up.sh recorded as started by itself."""
    return {
        daemon: int((state / f"{daemon}.pid").read_text())
        for daemon in DAEMONS
        if (state / f"{daemon}.pid").is_file()
    }


def _runs(pid: int, name: str) -> bool:
    comm = Path(f"/proc/{pid}/comm")
    return comm.is_file() and comm.read_text().strip() == name


def _script(path: Path, state: Path) -> subprocess.CompletedProcess:
    env = {**os.environ, "SEEDSOIL_SLURM_DIR": str(state)}
    return subprocess.run(["bash", str(path)], env=env, capture_output=True, text=True, timeout=600)


@pytest.fixture(scope="module")
def cluster(tmp_path_factory):
    """A running cluster; yields the PIDs this fixture started and stops exactly those after."""
    if os.geteuid() != 0:
        pytest.skip("SLURM test needs root: slurm_up.sh installs packages and starts daemons")
    state = tmp_path_factory.mktemp("slurm-state")
    up = _script(SLURM_UP, state)
    if up.returncode == CANNOT_RUN_HERE:
        pytest.skip(f"cannot bring up SLURM here: {up.stderr.strip()}")
    if up.returncode != 0:
        _script(SLURM_DOWN, state)  # stop whatever it started before failing
        pytest.fail(f"slurm_up.sh failed:\n{up.stdout}\n{up.stderr}")
    started = _recorded_pids(state)
    yield started
    down = _script(SLURM_DOWN, state)
    assert down.returncode == 0, down.stderr
    still_running = {d: pid for d, pid in started.items() if _runs(pid, d)}
    assert not still_running, f"slurm_down.sh left daemons running: {still_running}"


@pytest.fixture(scope="module")
def small_run(tmp_path_factory):
    """Input, sheet and config of a small run, shared by the local and the SLURM run."""
    inputs = tmp_path_factory.mktemp("inputs")
    h5ad = inputs / "tumour.h5ad"
    synthetic_tumour().write_h5ad(h5ad)
    sheet = write_sheet(
        inputs / "datasets.tsv",
        [
            {
                "id": "synthetic",
                "source": str(h5ad),
                "format": "h5ad",
                "sample_column": "patient",
                "cell_type_column": "label",
                "condition_column": "site",
            }
        ],
    )
    return sheet


def _workdir_with_config(tmp_path_factory, name: str, sheet: Path) -> tuple[Path, Path]:
    workdir = tmp_path_factory.mktemp(name)
    return workdir, write_config(workdir, sheet)


@pytest.fixture(scope="module")
def local_results(tmp_path_factory, small_run):
    workdir, config = _workdir_with_config(tmp_path_factory, "local", small_run)
    result = run_snakemake(workdir, config, cores=2)
    assert result.returncode == 0, result.stderr[-4000:]
    return workdir / "results"


@pytest.fixture(scope="module")
def slurm_run(cluster, tmp_path_factory, small_run):
    """The same config through the executor plugin and profiles/slurm; returns (workdir, log)."""
    workdir, config = _workdir_with_config(tmp_path_factory, "slurm", small_run)
    result = run_snakemake(
        workdir,
        config,
        "--profile",
        str(PROFILE),
        # keep each job's SLURM log so the test can see where it ran
        "--slurm-keep-successful-logs",
        cores=None,
        wrapper=TIMEOUT,
    )
    log = result.stdout + result.stderr
    assert result.returncode == 0, f"SLURM run failed (rc {result.returncode}):\n{log[-6000:]}"
    return workdir, log


def _tables(results: Path) -> dict[str, Path]:
    """Parquet tables under results/, by path relative to it."""
    return {str(p.relative_to(results)): p for p in sorted(results.rglob("*.parquet"))}


def test_slurm_run_writes_the_same_tables_as_a_local_run(local_results, slurm_run):
    slurm_results = slurm_run[0] / "results"
    local_tables, slurm_tables = _tables(local_results), _tables(slurm_results)
    assert local_tables, "the local run wrote no parquet tables"
    assert sorted(slurm_tables) == sorted(local_tables)
    for name, local_path in local_tables.items():
        # same code, same seeds, same inputs: equal to the last bit (no tolerance)
        pd.testing.assert_frame_equal(
            pd.read_parquet(slurm_tables[name]), pd.read_parquet(local_path), check_exact=True
        )


def test_every_cluster_rule_ran_as_a_completed_slurm_job(slurm_run):
    workdir, log = slurm_run
    submitted = SUBMITTED.findall(log)
    # "checkpoint ingest:" is a cluster job too; "localrule"/"localcheckpoint" lines are not
    cluster_jobs = re.findall(r"^(?:rule|checkpoint) (\w+):$", log, flags=re.MULTILINE)
    assert cluster_jobs, "no rule was sent to the cluster"
    assert len(submitted) == len(cluster_jobs)
    # the rules' own log directories name each rule: every SLURM log lies in one of them
    logged_rules = sorted(re.search(r"/rule_(\w+)/", path).group(1) for _, path in submitted)
    assert logged_rules == sorted(cluster_jobs)
    for _, path in submitted:
        assert Path(path).is_file() and Path(path).is_relative_to(workdir)
    # SLURM itself (not Snakemake's word) says each job completed; finished jobs stay in
    # `squeue --states=all` for MinJobAge = 300 s.
    ids = ",".join(job_id for job_id, _ in submitted)
    states = subprocess.run(
        ["squeue", "--states=all", "--noheader", "--format=%i %T", f"--jobs={ids}"],
        capture_output=True,
        text=True,
        check=True,
    ).stdout.split("\n")
    states = dict(line.split() for line in states if line.strip())
    assert states == {job_id: "COMPLETED" for job_id, _ in submitted}


def test_local_aggregation_rules_stay_off_the_cluster(slurm_run):
    _, log = slurm_run
    local_jobs = set(re.findall(r"^local(?:rule|checkpoint) (\w+):$", log, flags=re.MULTILINE))
    assert "cohort" in local_jobs
    submitted_rules = {re.search(r"/rule_(\w+)/", p).group(1) for _, p in SUBMITTED.findall(log)}
    assert not local_jobs & submitted_rules


def test_a_second_bring_up_adopts_the_running_cluster_and_its_teardown_stops_nothing(
    cluster, tmp_path
):
    up = _script(SLURM_UP, tmp_path)
    assert up.returncode == 0, up.stderr
    assert _recorded_pids(tmp_path) == {}
    assert _script(SLURM_DOWN, tmp_path).returncode == 0
    for daemon, pid in cluster.items():
        assert _runs(pid, daemon), (
            f"{daemon} ({pid}) was stopped by a teardown that did not start it"
        )
    ping = subprocess.run(["scontrol", "ping"], capture_output=True, text=True)
    assert "is UP" in ping.stdout
