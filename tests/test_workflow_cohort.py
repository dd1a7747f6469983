"""The workflow on a cohort with two samples in each of two conditions: the cohort report
compares communication between conditions, and `snakemake --report` says when it would leave
samples out.

The demo's datasets have no condition with two samples in one dataset, so this synthetic cohort
is what exercises the cohort's communication tests end to end.
"""

from __future__ import annotations

import zipfile
from pathlib import Path

import anndata as ad
import numpy as np
import pandas as pd
import pytest
import scipy.sparse as sp
from workflow_helpers import (
    EPITHELIAL,
    NEUTROPHIL,
    T_CELL,
    run_snakemake,
    write_config,
    write_sheet,
)

from seedsoil.report.cohort import _mann_whitney

pytestmark = pytest.mark.workflow

#: patient → condition: two patients per condition.
PATIENTS = {"P1": "primary", "P2": "primary", "P3": "relapse", "P4": "relapse"}
#: IL-8 from the tumour cells of the primary tumours only; their neutrophils carry CXCR2
#: (a NEUTROPHIL marker) in both conditions.
LIGAND = "CXCL8"


def two_condition_cohort(n_per_type: int = 30, n_filler: int = 300, seed: int = 1) -> ad.AnnData:
    """Raw UMI counts: per patient tumour cells, neutrophils and T cells with planted markers;
    CXCL8 in the tumour cells of primary-tumour patients, absent elsewhere."""
    rng = np.random.default_rng(seed)
    markers = list(dict.fromkeys(EPITHELIAL + NEUTROPHIL + T_CELL))
    genes = [*markers, LIGAND, "MT-CO1", "MT-ND1"] + [f"FILLER{i:04d}" for i in range(n_filler)]
    background = [g for g in genes if g != LIGAND]
    blocks, obs = [], []
    for patient, condition in PATIENTS.items():
        for cell_type, planted in (
            ("tumour", EPITHELIAL + ([LIGAND] if condition == "primary" else [])),
            ("neutrophil", NEUTROPHIL),
            ("T cell", T_CELL),
        ):
            counts = np.zeros((n_per_type, len(genes)), dtype=np.float32)
            columns = [genes.index(g) for g in background]
            counts[:, columns] = rng.poisson(0.4, size=(n_per_type, len(columns)))
            columns = [genes.index(g) for g in planted]
            counts[:, columns] += rng.poisson(8.0, size=(n_per_type, len(columns)))
            blocks.append(counts)
            obs += [{"patient": patient, "label": cell_type, "site": condition}] * n_per_type
    obs = pd.DataFrame(obs, index=[f"cell{i:04d}" for i in range(len(obs))])
    return ad.AnnData(sp.csr_matrix(np.vstack(blocks)), obs=obs, var=pd.DataFrame(index=genes))


@pytest.fixture(scope="module")
def cohort_run(tmp_path_factory):
    workdir = tmp_path_factory.mktemp("cohort")
    (workdir / "data").mkdir()
    two_condition_cohort().write_h5ad(workdir / "data" / "cohort.h5ad")
    row = {
        "id": "patients",
        "source": "data/cohort.h5ad",
        "format": "h5ad",
        "sample_column": "patient",
        "cell_type_column": "label",
        "condition_column": "site",
    }
    config = write_config(workdir, write_sheet(workdir / "datasets.tsv", [row]))
    result = run_snakemake(workdir, config)
    assert result.returncode == 0, result.stderr[-5000:]
    return workdir


def test_cohort_report_shows_communication_differences_between_conditions(cohort_run):
    cohort = cohort_run / "results" / "cohort"
    tests = pd.read_csv(cohort / "communication_tests.tsv", sep="\t")
    il8 = tests[
        (tests["sender"] == "tumour")
        & (tests["receiver"] == "neutrophil")
        & (tests["ligand"] == LIGAND)
        & (tests["receptor"] == "CXCR2")
    ]
    assert len(il8) == 1
    row = il8.iloc[0]
    assert (row["family"], row["group_a"], row["group_b"]) == ("patients", "primary", "relapse")
    assert (row["n_a"], row["n_b"]) == (2, 2)
    # the relapse samples have both types but no CXCL8: magnitude 0, below every primary one
    assert row["median_b"] == 0.0 and row["effect"] > 0
    # the cohort's Mann–Whitney U on the primary samples' own scores against the two zeros
    primary = [
        pd.read_csv(cohort_run / "results" / "patients" / p / "communication.tsv", sep="\t")
        .set_index(["sender", "receiver", "ligand", "receptor"])
        .loc[("tumour", "neutrophil", LIGAND, "CXCR2"), "score"]
        for p in ("P1", "P2")
    ]
    assert row["median_a"] == pytest.approx(np.median(primary), rel=1e-12)
    expected, test = _mann_whitney(np.array(primary), np.zeros(2))
    assert (row["pvalue"], row["test"]) == (pytest.approx(expected, rel=1e-12), test)
    assert bool(row["chapter"])
    page = (cohort / "index.html").read_text()
    assert 'id="communication"' in page and "Not computed: communication by condition" not in page
    assert "compared within each dataset" in page and "CXCR2" in page


def test_sample_tables_carry_kernel_p_values_and_liana_ranks_from_the_streamed_genes(cohort_run):
    # the interpret job reads the pairs' genes from cells.h5ad block by block; LIANA gets the
    # grouped cells' rows (every sample here is below communication.max_cells)
    table = pd.read_csv(cohort_run / "results" / "patients" / "P1" / "communication.tsv", sep="\t")
    assert len(table) and table["pvalue"].between(0, 1).all()
    assert table[["magnitude_rank", "specificity_rank", "lr_means"]].notna().all().all()
    np.testing.assert_allclose(table["lr_means"], table["score"], rtol=1e-6)
    assert table.loc[table["ligand"] == LIGAND, "chapter"].all()


def _archived(report: Path) -> list[str]:
    with zipfile.ZipFile(report) as archive:
        return [Path(name).name for name in archive.namelist() if "/data/raw/" in name]


def test_snakemake_report_of_the_run_holds_every_sample_and_no_parquet(cohort_run):
    result = run_snakemake(cohort_run, cohort_run / "config.yaml", "--report", "report.zip")
    assert result.returncode == 0, result.stderr[-3000:]
    assert "WARNING: snakemake --report" not in result.stderr
    files = _archived(cohort_run / "report.zip")
    assert files.count("report.html") == len(PATIENTS)
    assert files.count("communication_tests.tsv") == 1
    assert not [name for name in files if name.endswith(".parquet")]


def test_snakemake_report_with_another_config_warns_which_datasets_it_leaves_out(cohort_run):
    other = write_sheet(
        cohort_run / "other.tsv",
        [{"id": "pbmc68k", "source": "builtin:pbmc68k_reduced", "format": "h5ad"}],
    )
    (cohort_run / "other").mkdir(exist_ok=True)
    config = write_config(cohort_run / "other", other)
    result = run_snakemake(cohort_run, config, "--report", "other.zip")
    assert "WARNING: snakemake --report: no results for 1 of the 1 dataset(s)" in result.stderr
    assert "(pbmc68k:" in result.stderr and "does not name (patients)" in result.stderr
