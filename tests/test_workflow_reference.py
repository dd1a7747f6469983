"""The workflow's optional reference-based annotation (annotation.reference), end to end."""

from __future__ import annotations

import anndata as ad
import pandas as pd
import pytest
import scanpy as sc
import yaml
from workflow_helpers import TUMOUR_ROW, run_snakemake, synthetic_tumour, write_config, write_sheet

pytestmark = pytest.mark.workflow


def test_reference_labels_land_in_calls_next_to_the_signature_types(tmp_path):
    (tmp_path / "data").mkdir()
    synthetic_tumour().write_h5ad(tmp_path / "data" / "tumour.h5ad")
    # The reference: other cells of the same three labelled types, log-normalised.
    reference = synthetic_tumour(n_per_type=20, seed=1)
    sc.pp.normalize_total(reference, target_sum=1e4)
    sc.pp.log1p(reference)
    reference.obs["cell_type"] = reference.obs["label"].astype(str)
    reference.write_h5ad(tmp_path / "data" / "reference.h5ad")
    config = write_config(tmp_path, write_sheet(tmp_path / "datasets.tsv", [TUMOUR_ROW]))
    settings = yaml.safe_load(config.read_text())
    settings["annotation"] = {"reference": "data/reference.h5ad", "label_column": "cell_type"}
    config.write_text(yaml.safe_dump(settings))

    result = run_snakemake(tmp_path, config, "results/tumour/P1/calls.parquet")
    assert result.returncode == 0, result.stderr[-5000:]
    calls = pd.read_parquet(tmp_path / "results" / "tumour" / "P1" / "calls.parquet")
    labels = ad.read_h5ad(tmp_path / "results" / "tumour" / "P1" / "cells.h5ad").obs["cell_type"]
    agreement = (calls["cell_type_reference"] == labels.reindex(calls.index).astype(str)).mean()
    assert agreement >= 0.95  # planted markers at 20x background: near-perfect transfer
    assert calls["reference_confidence"].between(0, 1).all()
    assert (tmp_path / "logs" / "annotate_reference" / "tumour" / "P1.log").exists()
