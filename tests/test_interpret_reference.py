"""Reference-based annotation: a CellTypist model trained locally on labelled cells."""

import anndata as ad
import numpy as np
import pandas as pd
import pytest

from seedsoil.errors import InputError
from seedsoil.interpret.reference import annotate_with_reference, train_reference

GENES = [f"G{i}" for i in range(20)]


def _cells(n_per_type: int, seed: int, prefix: str) -> tuple[ad.AnnData, np.ndarray]:
    """Log-normalised cells of two types: A expresses G0-G4 highly, B G5-G9, on Poisson noise."""
    rng = np.random.default_rng(seed)
    counts = rng.poisson(0.3, (2 * n_per_type, len(GENES))).astype(float)
    counts[:n_per_type, :5] += rng.poisson(5, (n_per_type, 5))
    counts[n_per_type:, 5:10] += rng.poisson(5, (n_per_type, 5))
    truth = np.array(["A"] * n_per_type + ["B"] * n_per_type)
    cells = [f"{prefix}{i}" for i in range(2 * n_per_type)]
    adata = ad.AnnData(
        np.log1p(counts), obs=pd.DataFrame(index=cells), var=pd.DataFrame(index=GENES)
    )
    return adata, truth


def _reference():
    reference, truth = _cells(40, seed=0, prefix="r")
    reference.obs["label"] = truth
    return reference


def test_model_trained_on_a_reference_labels_new_cells_of_the_same_types():
    model = train_reference(_reference(), "label")
    query, truth = _cells(30, seed=1, prefix="q")
    out = annotate_with_reference(query, model)
    assert (out["cell_type_reference"].to_numpy() == truth).mean() >= 0.95


def test_a_sample_with_only_some_reference_genes_is_annotated_on_those():
    query, truth = _cells(30, seed=1, prefix="q")
    panel = query[:, GENES[::2]].copy()  # half of the genes, both types' markers among them
    model = train_reference(_reference(), "label", genes=panel.var_names)
    out = annotate_with_reference(panel, model)
    assert (out["cell_type_reference"].to_numpy() == truth).mean() >= 0.95


def test_confidence_is_a_probability():
    model = train_reference(_reference(), "label")
    query, _ = _cells(10, seed=2, prefix="q")
    confidence = annotate_with_reference(query, model)["reference_confidence"]
    assert ((confidence >= 0) & (confidence <= 1)).all()


def test_missing_label_column_is_named_with_the_fix():
    with pytest.raises(InputError, match="'celltype'.*label_column"):
        train_reference(_reference(), "celltype", source="ref.h5ad")


def test_a_reference_with_one_label_is_refused():
    reference = _reference()
    reference.obs["label"] = "A"
    with pytest.raises(InputError, match="at least two"):
        train_reference(reference, "label")
