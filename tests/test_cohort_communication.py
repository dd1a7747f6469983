"""Communication compared between conditions with samples as replicates."""

import numpy as np
import pandas as pd
import pytest

from seedsoil.report import write_cohort
from seedsoil.report.cohort_communication import (
    COMMUNICATION_TEST_COLUMNS,
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
