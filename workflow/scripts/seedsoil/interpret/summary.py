"""Sample-level summary of the interpretation layer (``interpretation.json``)."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd

from seedsoil.interpret.celltypes import (
    IMMUNE_TYPES,
    UNASSIGNED,
    confusion_table,
    has_labels,
    immune_labels,
    label_agreement,
)
from seedsoil.interpret.clusters import (
    DOUBLET_LIKE,
    OTHER_LEUKOCYTE,
    PARTNERS,
    partner_enrichment,
)
from seedsoil.interpret.ctc import CTC_SIGNATURE, ctc_support

NET_SIGNATURE = "NET_formation"
EXOSOME_SIGNATURES = ("EV_biogenesis", "EV_tumour_cargo")
N_TOP_PAIRS = 10


def _plain(value):
    """Recursively turn numpy/pandas values into JSON-ready Python values (NaN → None)."""
    if isinstance(value, dict):
        return {str(k): _plain(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_plain(v) for v in value]
    if isinstance(value, np.generic):
        value = value.item()
    if isinstance(value, float) and not math.isfinite(value):
        return None
    return value


def cell_types_used(calls: pd.DataFrame, adata) -> tuple[pd.Series, str]:
    """The cell type of each cell for downstream panels and where it came from.

    Dataset labels when the dataset has any (``"labels"``), else the assignment (``"assigned"``).
    """
    if "cell_type" in adata.obs.columns and has_labels(adata.obs["cell_type"]):
        return adata.obs["cell_type"].astype(str).reindex(calls.index), "labels"
    return calls["cell_type_assigned"].astype(str), "assigned"


def _fractions(values: pd.Series) -> dict[str, float]:
    return {str(k): float(v) for k, v in values.value_counts(normalize=True).sort_index().items()}


def _is_neutrophil(types: pd.Series) -> pd.Series:
    # Each distinct type is tested once rather than each of up to a million cells.
    codes, uniques = pd.factorize(types)
    hit = np.append(pd.Index(uniques).str.contains("neutrophil", case=False, regex=False), False)
    return pd.Series(hit[codes], index=types.index)  # a missing type (code -1) is not one


def summarise_interpretation(
    calls: pd.DataFrame,
    communication: pd.DataFrame | None,
    scores: pd.DataFrame,
    adata,
    *,
    fdr: pd.DataFrame | None = None,
    alpha: float = 0.05,
    skipped: dict | None = None,
    enrichment: dict | None = None,
) -> dict:
    """Per-sample summary for ``interpretation.json`` (plain JSON types; missing values are None).

    Keys: ``n_cells``; CTC — ``n_ctc_candidates``, ``frac_ctc``, ``ctc_support``, ``emt_states``;
    clusters — ``heterotypic`` (counts per flag), ``heterotypic_median_size_z``,
    ``partner_enrichment`` (needs ``fdr``, or ``enrichment``: that dict computed beforehand,
    :func:`~seedsoil.interpret.clusters.partner_enrichment` per partner, as
    :func:`seedsoil.interpret.interpret_cells` does before it drops the FDRs); cell types — ``cell_type_source`` (``"labels"`` |
    ``"assigned"``), ``composition`` (fraction of all cells per type), ``frac_immune``,
    ``immune_composition`` (fraction of immune cells per immune type; with labels, a label is
    immune when most of its cells are assigned an immune type), ``label_agreement`` and
    ``confusion`` (labels only); programmes — ``mean_net_in_neutrophils``, ``n_neutrophils``,
    ``exosome_by_cell_type``; communication — ``top_communication`` (the ``N_TOP_PAIRS`` rows
    with the smallest FDR, then highest score, among positive scores) and ``communication_skipped``
    (:func:`communication_summary`; ``communication`` None leaves them empty, for
    :func:`seedsoil.interpret.interpret_cells`).
    """
    n = int(calls.shape[0])
    candidates = calls["ctc_candidate"].to_numpy(dtype=bool)
    types, source = cell_types_used(calls, adata)
    summary: dict = {
        "n_cells": n,
        "alpha": alpha,
        "n_ctc_candidates": int(candidates.sum()),
        "frac_ctc": float(candidates.mean()) if n else 0.0,
        "ctc_support": ctc_support(calls, scored=CTC_SIGNATURE in scores.columns),
        "emt_states": {
            s: int((calls.loc[candidates, "emt_state"] == s).sum())
            for s in ("epithelial", "hybrid", "mesenchymal")
        },
        "heterotypic": {
            f: int((calls["heterotypic_cluster"] == f).sum())
            for f in (*PARTNERS.values(), OTHER_LEUKOCYTE, DOUBLET_LIKE)
        },
        "cell_type_source": source,
        "composition": _fractions(types),
    }
    flagged = calls["heterotypic_cluster"] != ""
    if "size_z" in calls.columns and flagged.any():
        summary["heterotypic_median_size_z"] = (
            float(np.nanmedian(calls.loc[flagged, "size_z"]))
            if calls.loc[flagged, "size_z"].notna().any()
            else None
        )
    if fdr is not None:
        summary["partner_enrichment"] = {p: partner_enrichment(fdr, alpha, p) for p in PARTNERS}
    elif enrichment is not None:
        summary["partner_enrichment"] = enrichment

    if source == "labels":
        immune = types.isin(immune_labels(types, calls["cell_type_assigned"]))
        summary["label_agreement"] = label_agreement(types, calls["cell_type_assigned"])
        summary["confusion"] = confusion_table(types, calls["cell_type_assigned"]).to_dict(
            orient="index"
        )
    else:
        immune = types.isin(IMMUNE_TYPES)
    summary["frac_immune"] = float(immune.mean()) if n else 0.0
    summary["immune_composition"] = _fractions(types[immune])
    summary["frac_unassigned"] = (
        float((calls["cell_type_assigned"] == UNASSIGNED).mean()) if n else 0.0
    )

    neutrophils = _is_neutrophil(types)
    summary["n_neutrophils"] = int(neutrophils.sum())
    summary["mean_net_in_neutrophils"] = (
        float(scores.loc[neutrophils.to_numpy(), NET_SIGNATURE].mean())
        if NET_SIGNATURE in scores.columns and neutrophils.any()
        else None
    )
    summary["exosome_by_cell_type"] = {
        s: scores[s].groupby(types.to_numpy()).mean().to_dict()
        for s in EXOSOME_SIGNATURES
        if s in scores.columns
    }

    summary.update(communication_summary(communication, skipped))
    return _plain(summary)


def communication_summary(communication: pd.DataFrame | None, skipped: dict | None = None) -> dict:
    """The communication keys of :func:`summarise_interpretation`, JSON-ready:
    ``top_communication`` (the :data:`N_TOP_PAIRS` rows with the smallest FDR, then highest
    score, among positive scores; empty when ``communication`` is None, i.e. not yet computed)
    and ``communication_skipped``."""
    if communication is None:
        top = []
    else:
        positive = (
            communication[communication["score"] > 0] if len(communication) else communication
        )
        top = (
            positive.sort_values(["fdr", "score"], ascending=[True, False])
            .head(N_TOP_PAIRS)[["sender", "receiver", "pair", "theme", "score", "pvalue", "fdr"]]
            .to_dict(orient="records")
        )
    return _plain(
        {
            "top_communication": top,
            "communication_skipped": skipped or {"pairs": [], "cell_types": {}},
        }
    )
