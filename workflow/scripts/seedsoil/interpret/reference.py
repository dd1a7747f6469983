"""Reference-based cell-type annotation with a CellTypist model trained locally on labelled cells.

CellTypist (Domínguez Conde et al. 2022, Science 376:eabl5197) fits an L2-regularised logistic
regression per label on log1p(counts per 10,000) expression; :func:`train_reference` trains one
on the user's labelled reference (no model download) and :func:`annotate_with_reference` gives
each cell of a sample the reference label with the highest probability, next to the
signature-based assignment (:mod:`.celltypes`). Only genes shared by the reference and the sample
are used, so a targeted panel is annotated on its own genes.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import pandas as pd

from seedsoil.errors import InputError

if TYPE_CHECKING:
    import anndata as ad

#: Columns of :func:`annotate_with_reference`'s table.
REFERENCE_COLUMNS = ["cell_type_reference", "reference_confidence"]


def read_reference(path) -> ad.AnnData:
    """The reference ``.h5ad`` read whole; InputError naming the file when it is missing or not
    an AnnData file."""
    from pathlib import Path

    import anndata as ad

    path = Path(path)
    if not path.is_file():
        raise InputError(
            f"annotation.reference: {path} does not exist; give the path of a labelled .h5ad"
        )
    try:
        return ad.read_h5ad(path)
    except (OSError, KeyError, ValueError) as error:
        raise InputError(
            f"annotation.reference: {path} is not a readable .h5ad ({error}); write the reference "
            "with anndata's write_h5ad (log-normalised X, labels in obs)"
        ) from error


def reference_labels(reference, label_column: str, source: str = "reference") -> pd.Series:
    """The reference's labels as strings; InputError naming ``source`` and the column when the
    column is missing or holds fewer than two labels (a classifier needs two)."""
    if label_column not in reference.obs.columns:
        raise InputError(
            f"{source}: no obs column {label_column!r} (columns: {list(reference.obs.columns)}); "
            "set annotation.reference.label_column to the column holding the cell-type labels"
        )
    labels = reference.obs[label_column].astype(str)
    usable = labels[~labels.isin(["", "nan", "NA", "unlabelled"])]
    if usable.nunique() < 2:
        raise InputError(
            f"{source}: column {label_column!r} holds {usable.nunique()} distinct label(s); "
            "a reference needs at least two labelled cell types"
        )
    return labels


def train_reference(
    reference, label_column: str, *, genes=None, source: str = "reference", random_state: int = 0
):
    """A CellTypist model trained on ``reference`` (log-normalised ``X``) to predict
    ``obs[label_column]``; cells without a label are left out. ``genes`` restricts the features
    (e.g. to the genes a sample shares with the reference). ``celltypist.train`` with
    ``use_SGD=True`` (CellTypist's SGD logistic regression, one-vs-rest; its default
    ``LogisticRegression`` path passes ``multi_class``, which scikit-learn ≥ 1.8 no longer takes),
    ``check_expression=False`` (the project's log-normalisation may use another target sum), one
    job and ``random_state`` for the SGD shuffling, so results are reproducible."""
    import celltypist

    labels = reference_labels(reference, label_column, source)
    keep = ~labels.isin(["", "nan", "NA", "unlabelled"]).to_numpy()
    cells = reference[keep]
    if genes is not None:
        shared = cells.var_names.intersection(pd.Index(genes))
        if len(shared) == 0:
            raise InputError(
                f"{source}: no gene in common with the sample; use a reference of the same species"
            )
        cells = cells[:, shared]
    cells = cells.copy()
    cells.obs = pd.DataFrame({"label": labels[keep].to_numpy()}, index=cells.obs_names)
    return celltypist.train(
        cells,
        labels="label",
        check_expression=False,
        use_SGD=True,
        n_jobs=1,
        random_state=random_state,
    )


def annotate_with_reference(adata, model) -> pd.DataFrame:
    """Each cell of ``adata`` (log-normalised ``X``) with the model's most probable label and that
    probability (CellTypist ``prob_matrix``, per-label sigmoid of the decision function), indexed
    like ``adata.obs``: :data:`REFERENCE_COLUMNS`. Genes of the model absent from ``adata`` are
    ignored by CellTypist (their coefficients drop out)."""
    import celltypist

    shared = adata.var_names.intersection(pd.Index(model.features))
    if len(shared) == 0:
        raise InputError("the reference model shares no gene with the sample")
    result = celltypist.annotate(adata[:, shared].copy(), model=model, majority_voting=False)
    predicted = result.predicted_labels["predicted_labels"].astype(str)
    probability = result.probability_matrix.max(axis=1)
    return pd.DataFrame(
        {
            "cell_type_reference": predicted.reindex(adata.obs_names).to_numpy(),
            "reference_confidence": probability.reindex(adata.obs_names).to_numpy(dtype=float),
        },
        index=adata.obs_names,
    )
