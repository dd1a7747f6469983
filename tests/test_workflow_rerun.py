"""Re-runs: a job depends on its own sheet row only, so adding a dataset costs only its own work."""

from __future__ import annotations

import re

import pandas as pd
import pytest
from workflow_helpers import TUMOUR_ROW, run_snakemake, synthetic_tumour, write_config, write_sheet

pytestmark = pytest.mark.workflow


def _row(dataset: str) -> dict:
    return {**TUMOUR_ROW, "id": dataset, "source": f"data/{dataset}.h5ad"}


def _planned_ingests(result) -> list[str]:
    """Datasets whose ingest job a dry run lists (by the job's benchmark file)."""
    found = re.findall(r"benchmark: results/benchmarks/ingest/([^/\s]+)\.tsv", result.stdout)
    return sorted(found)


def test_adding_a_sheet_row_runs_only_the_new_dataset(tmp_path):
    (tmp_path / "data").mkdir()
    for dataset in ("first", "second"):
        synthetic_tumour(n_per_type=15, n_filler=100).write_h5ad(
            tmp_path / "data" / f"{dataset}.h5ad"
        )
    sheet = write_sheet(tmp_path / "datasets.tsv", [_row("first")])
    config = write_config(tmp_path, sheet)
    done = run_snakemake(tmp_path, config, "results/first/samples.tsv")
    assert done.returncode == 0, done.stderr[-3000:]

    write_sheet(sheet, [_row("first"), _row("second")])
    targets = ["results/first/samples.tsv", "results/second/samples.tsv"]
    planned = run_snakemake(tmp_path, config, *targets, "--dry-run")
    assert planned.returncode == 0, planned.stderr[-3000:]
    assert _planned_ingests(planned) == ["second"], planned.stdout[-3000:]


def test_editing_a_row_reruns_that_dataset(tmp_path):
    (tmp_path / "data").mkdir()
    synthetic_tumour(n_per_type=15, n_filler=100).write_h5ad(tmp_path / "data" / "first.h5ad")
    sheet = write_sheet(tmp_path / "datasets.tsv", [_row("first")])
    config = write_config(tmp_path, sheet)
    done = run_snakemake(tmp_path, config, "results/first/samples.tsv")
    assert done.returncode == 0, done.stderr[-3000:]

    write_sheet(sheet, [{**_row("first"), "min_genes": "7"}])
    planned = run_snakemake(tmp_path, config, "results/first/samples.tsv", "--dry-run")
    assert _planned_ingests(planned) == ["first"], planned.stdout[-3000:]


def test_a_sample_spanning_conditions_is_mixed_with_a_logged_warning(tmp_path):
    (tmp_path / "data").mkdir()
    adata = synthetic_tumour(n_per_type=15, n_filler=100)
    adata.obs["site"] = ["Blood", "Tumor"] * (adata.n_obs // 2)  # patient = sample, site varies
    adata.write_h5ad(tmp_path / "data" / "first.h5ad")
    config = write_config(tmp_path, write_sheet(tmp_path / "datasets.tsv", [_row("first")]))
    done = run_snakemake(tmp_path, config, "results/first/samples.tsv")
    assert done.returncode == 0, done.stderr[-3000:]
    samples = pd.read_csv(tmp_path / "results" / "first" / "samples.tsv", sep="\t")
    assert set(samples["condition"]) == {"mixed"}
    log = (tmp_path / "logs" / "ingest" / "first.log").read_text()
    assert "sample P1 spans conditions Blood, Tumor" in log
