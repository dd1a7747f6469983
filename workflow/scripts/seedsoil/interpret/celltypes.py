"""Cell-type assignment from identity and immune signatures, and agreement with given labels.

A cell is assigned the type of the highest-scoring signature among the identity (``ID_*``)
and immune (``IMM_*``) signatures that are significant for that cell (BH FDR ≤ ``alpha``
against the engine's expression-matched random signatures); a cell significant for none of
them is ``"unassigned"``. The argmax is taken over raw scores, which are comparable between
signatures for rank-based methods such as UCell (each score is a normalised rank statistic in
[0, 1]); the significance filter is what keeps an unspecific high score from winning.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

UNASSIGNED = "unassigned"
UNLABELLED = "unlabelled"

#: Signature name → cell type it identifies. Immune types come first (IMM_*), then
#: tumour/stromal identities (ID_*). Signatures missing from a sample's scores are skipped.
CELL_TYPE_SIGNATURES: dict[str, str] = {
    "IMM_macrophage_TAM": "macrophage",
    "IMM_dendritic": "dendritic",
    "IMM_neutrophil": "neutrophil",
    "IMM_mast": "mast",
    "IMM_CD8_cytotoxic": "CD8 T",
    "IMM_CD4_T": "CD4 T",
    "IMM_Treg": "Treg",
    "IMM_gammadelta_IL17": "gammadelta T",
    "IMM_NK": "NK",
    "IMM_B": "B",
    "IMM_MDSC": "MDSC",
    "IMM_platelet": "platelet",
    "ID_epithelial_tumour": "epithelial/tumour",
    "ID_fibroblast": "fibroblast",
    "ID_endothelial": "endothelial",
    "ID_glial": "glial",
}

#: Types that count as immune (haematopoietic) in immune-composition summaries.
IMMUNE_TYPES: frozenset[str] = frozenset(
    t for s, t in CELL_TYPE_SIGNATURES.items() if s.startswith("IMM_")
)


def assign_cell_types(scores: pd.DataFrame, fdr: pd.DataFrame, alpha: float = 0.05) -> pd.DataFrame:
    """Assign each cell the type of its best significant identity/immune signature.

    Definition, per cell, over the signatures of :data:`CELL_TYPE_SIGNATURES` present in ``scores``:
    ``S`` = signatures with ``fdr ≤ alpha``; if ``S`` is empty the cell is ``"unassigned"``,
    otherwise it gets the type of ``s1 = argmax_{s in S} score_s``.
    ``assignment_score`` = ``score_{s1}`` (NaN when unassigned).
    ``assignment_confidence`` = relative margin ``(score_{s1} - score_{s2}) / score_{s1}`` clipped to
    [0, 1], where ``s2`` is the best-scoring *other* candidate signature whether significant or not
    (0 when unassigned, or when ``score_{s1} ≤ 0``). A confidence near 0 means a close runner-up.

    Returns a DataFrame indexed like ``scores`` with columns ``cell_type_assigned``,
    ``assignment_score``, ``assignment_confidence``.
    """
    used = [s for s in CELL_TYPE_SIGNATURES if s in scores.columns and s in fdr.columns]
    out = pd.DataFrame(index=scores.index)
    if not used:
        out["cell_type_assigned"] = UNASSIGNED
        out["assignment_score"] = np.nan
        out["assignment_confidence"] = 0.0
        return out
    values = scores[used].to_numpy(dtype=np.float64)
    significant = fdr[used].to_numpy(dtype=np.float64) <= alpha
    masked = np.where(significant, values, -np.inf)
    best = np.argmax(masked, axis=1)
    rows = np.arange(values.shape[0])
    assigned = significant.any(axis=1)
    best_score = values[rows, best]
    others = values.copy()
    others[rows, best] = -np.inf
    runner_up = others.max(axis=1) if len(used) > 1 else np.zeros(values.shape[0])
    with np.errstate(divide="ignore", invalid="ignore"):
        margin = np.where(best_score > 0, (best_score - runner_up) / best_score, 0.0)
    types = np.array([CELL_TYPE_SIGNATURES[s] for s in used], dtype=object)
    out["cell_type_assigned"] = np.where(assigned, types[best], UNASSIGNED).astype(str)
    out["assignment_score"] = np.where(assigned, best_score, np.nan)
    out["assignment_confidence"] = np.where(assigned, np.clip(margin, 0.0, 1.0), 0.0)
    return out


def has_labels(cell_type: pd.Series) -> bool:
    """True when the dataset gave cell-type labels (not all ``"unlabelled"``/missing)."""
    labels = cell_type.astype(str)
    return bool((~labels.isin([UNLABELLED, "", "nan", "NA"])).any())


def confusion_table(labels: pd.Series, assigned: pd.Series) -> pd.DataFrame:
    """Cell counts: given label (rows) × assigned type (columns)."""
    return pd.crosstab(labels.astype(str).rename("label"), assigned.astype(str).rename("assigned"))


def label_agreement(labels: pd.Series, assigned: pd.Series) -> dict:
    """Agreement of assigned types with given labels.

    ``ari_all``: adjusted Rand index (Hubert & Arabie 1985, sklearn) over all cells, with
    ``"unassigned"`` as a class of its own; ``ari_assigned``: the same over assigned cells only;
    ``frac_assigned``; ``majority_accuracy``: fraction of cells whose assigned type is the most
    common assigned type of their label (a label-to-type mapping learned from the data itself,
    so it is an upper bound, not a held-out accuracy).
    """
    from sklearn.metrics import adjusted_rand_score

    labels = labels.astype(str)
    assigned = assigned.astype(str).reindex(labels.index)
    keep = (assigned != UNASSIGNED).to_numpy()
    table = confusion_table(labels, assigned)
    majority = int(table.max(axis=1).sum())
    # The ARI depends only on the partitions: integer codes give the same value as the strings
    # without sorting a million of them.
    label_codes, assigned_codes = pd.factorize(labels)[0], pd.factorize(assigned)[0]
    return {
        "n_cells": int(labels.size),
        "ari_all": float(adjusted_rand_score(label_codes, assigned_codes)),
        "ari_assigned": float(adjusted_rand_score(label_codes[keep], assigned_codes[keep]))
        if keep.sum() > 1
        else None,
        "frac_assigned": float(keep.mean()) if labels.size else 0.0,
        "majority_accuracy": majority / labels.size if labels.size else None,
    }


def immune_labels(labels: pd.Series, assigned: pd.Series) -> set[str]:
    """Given labels whose cells are mostly assigned an immune type (the label's majority call).

    Used to tell which free-text labels are immune when computing immune composition from labels.
    """
    table = confusion_table(labels, assigned)
    majority = table.idxmax(axis=1)
    return {label for label, kind in majority.items() if kind in IMMUNE_TYPES}
