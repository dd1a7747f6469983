"""Communication compared between conditions with samples as replicates."""

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from seedsoil.report import write_cohort
from seedsoil.report.cohort_communication import (
    COMMUNICATION_TEST_COLUMNS,
    cell_types_tested,
    communication_condition_tests,
    sample_magnitudes,
)


def _table(scores: dict, chapter=False) -> pd.DataFrame:
    """A communication.tsv with the given {(sender, receiver, ligand, receptor): score}."""
    rows = [[*key, score, chapter] for key, score in scores.items()]
    return pd.DataFrame(
        rows, columns=["sender", "receiver", "ligand", "receptor", "score", "chapter"]
    )


CXCL8 = ("tumour", "neutrophil", "CXCL8", "CXCR2")
SPP1 = ("macrophage", "tumour", "SPP1", "CD44")
BACKGROUND = ("neutrophil", "tumour", "MIF", "CD74")


def _cohort():
    """Three tumour and three blood samples; CXCL8→CXCR2 higher in every tumour sample."""
    tables, conditions = {}, {}
    for i in range(3):
        tables[("d", f"T{i}")] = _table({CXCL8: 1.0 + i / 10, BACKGROUND: 0.5}, chapter=True)
        tables[("d", f"B{i}")] = _table({CXCL8: 0.2 + i / 10, BACKGROUND: 0.5}, chapter=True)
        conditions[("d", f"T{i}")] = "tumour"
        conditions[("d", f"B{i}")] = "blood"
    return tables, conditions


def test_interaction_higher_in_every_sample_of_one_condition_has_the_smallest_3v3_pvalue():
    tables, conditions = _cohort()
    tests = communication_condition_tests(tables, conditions)
    row = tests[(tests["ligand"] == "CXCL8")].iloc[0]
    assert (row["group_a"], row["group_b"], row["n_a"], row["n_b"]) == ("blood", "tumour", 3, 3)
    assert row["pvalue"] == pytest.approx(0.1)  # exact two-sided Mann–Whitney, 3 vs 3
    assert row["effect"] == pytest.approx(0.3 - 1.1) and bool(row["chapter"])
    constant = tests[tests["ligand"] == "MIF"].iloc[0]
    assert constant["pvalue"] == 1.0
    assert list(tests.columns) == COMMUNICATION_TEST_COLUMNS


def test_untested_row_between_present_types_counts_zero_and_absent_type_is_missing():
    tables = {
        "S1": _table({CXCL8: 1.0, BACKGROUND: 0.4}),
        "S2": _table({CXCL8: 2.0, BACKGROUND: 0.4}),
        "S3": _table({BACKGROUND: 0.3}),  # has tumour and neutrophil, CXCL8 row filtered out
        "S4": _table({SPP1: 0.7}),  # has no neutrophils
    }
    wide = sample_magnitudes(tables)
    assert wide.loc[CXCL8, "S3"] == 0.0
    assert np.isnan(wide.loc[CXCL8, "S4"])
    assert SPP1 not in wide.index  # tested in one sample only: nothing to compare


def test_samples_without_a_condition_and_single_condition_datasets_are_not_compared():
    tables, conditions = _cohort()
    conditions = {k: ("NA" if k[1].startswith("B") else v) for k, v in conditions.items()}
    assert communication_condition_tests(tables, conditions).empty


def test_write_cohort_writes_communication_tests_and_shows_them(tmp_path):
    tables, conditions = _cohort()
    summary = pd.DataFrame(
        [
            {"dataset": d, "sample": s, "condition": c, "n_cells": 100}
            for (d, s), c in conditions.items()
        ]
    )
    write_cohort(tmp_path, summary=summary, sample_reports={}, communication=tables)
    written = pd.read_csv(tmp_path / "communication_tests.tsv", sep="\t")
    assert set(written["ligand"]) == {"CXCL8", "MIF"}
    html = (tmp_path / "index.html").read_text()
    assert 'id="communication"' in html and "communication_tests.tsv" in html
    assert "Not computed: communication by condition" not in html


def _two_datasets():
    """Dataset d: 3 tumour vs 3 blood samples; dataset e: 2 tumour samples with the same names
    as d's, and no blood."""
    tables, conditions = _cohort()
    for i in range(2):
        tables[("e", f"T{i}")] = _table({CXCL8: 5.0, BACKGROUND: 0.5}, chapter=True)
        conditions[("e", f"T{i}")] = "tumour"
    return tables, conditions


def test_conditions_are_compared_within_each_dataset_by_default_one_fdr_family_each():
    tables, conditions = _two_datasets()
    tests = communication_condition_tests(tables, conditions)
    assert set(tests["family"]) == {"d"}  # e has one condition: nothing to compare
    row = tests[tests["ligand"] == "CXCL8"].iloc[0]
    assert (row["n_a"], row["n_b"]) == (3, 3)


def test_pooled_cohort_compares_samples_of_every_dataset_in_one_family():
    tables, conditions = _two_datasets()
    tests = communication_condition_tests(tables, conditions, within=None)
    assert set(tests["family"]) == {"cohort"}
    row = tests[tests["ligand"] == "CXCL8"].iloc[0]
    # e's T0 and T1 join d's tumour samples although d has samples of the same names
    assert (row["n_a"], row["n_b"]) == (3, 5)


def test_cohort_page_says_which_samples_and_fdr_family_the_tests_use(tmp_path):
    tables, conditions = _two_datasets()
    summary = pd.DataFrame(
        [
            {"dataset": d, "sample": s, "condition": c, "n_cells": 100}
            for (d, s), c in conditions.items()
        ]
    )
    write_cohort(tmp_path / "within", summary=summary, sample_reports={}, communication=tables)
    write_cohort(
        tmp_path / "pooled", summary=summary, sample_reports={}, communication=tables, within=None
    )
    within = (tmp_path / "within" / "index.html").read_text()
    pooled = (tmp_path / "pooled" / "index.html").read_text()
    assert "compared within each dataset" in within and "compare_within: null" not in within
    assert "compare_within: null" in pooled
    families = pd.read_csv(tmp_path / "pooled" / "communication_tests.tsv", sep="\t")["family"]
    assert set(families) == {"cohort"}


def test_a_config_without_a_cohort_section_compares_within_datasets():
    from snakemake.utils import validate

    config = {"datasets": "datasets.tsv"}
    schema = Path(__file__).resolve().parents[1] / "workflow" / "schemas" / "config.schema.yaml"
    validate(config, str(schema))  # fills the schema's defaults, as the Snakefile does
    assert config["cohort"]["compare_within"] == "dataset"


def test_a_sample_where_no_row_passed_the_filter_has_magnitude_zero_between_its_types():
    tables, conditions = _cohort()
    for i in range(3):
        tables[("d", f"B{i}")] = _table({})  # blood: no ligand expressed, an empty table
    summary = pd.DataFrame(
        [
            {"dataset": d, "sample": s, "n_cells": 100, "min_cells": 5,
             "composition:tumour": 0.5, "composition:neutrophil": 0.5}
            for d, s in tables
        ]
    )  # fmt: skip
    tests = communication_condition_tests(tables, conditions, cell_types=cell_types_tested(summary))
    row = tests[tests["ligand"] == "CXCL8"].iloc[0]
    assert (row["n_a"], row["n_b"], row["median_a"]) == (3, 3, 0.0)
    # without the types, an empty table says nothing about the sample: it is left out
    assert communication_condition_tests(tables, conditions)["n_a"].eq(0).all()


def test_one_sample_per_condition_is_listed_untested_and_the_page_says_what_is_needed(tmp_path):
    tables, conditions = _cohort()
    keep = [("d", "T0"), ("d", "B0")]
    tables = {k: tables[k] for k in keep}
    summary = pd.DataFrame(
        [{"dataset": d, "sample": s, "condition": conditions[(d, s)], "n_cells": 100}
         for d, s in keep]
    )  # fmt: skip
    write_cohort(tmp_path, summary=summary, sample_reports={}, communication=tables)
    written = pd.read_csv(tmp_path / "communication_tests.tsv", sep="\t")
    assert len(written) and written["pvalue"].isna().all()
    page = (tmp_path / "index.html").read_text()
    assert "needs two conditions with at least two samples each in one dataset" in page
