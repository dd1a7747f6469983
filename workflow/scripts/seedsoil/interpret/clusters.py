"""Heterotypic CTC clusters: droplets carrying a tumour-cell and a neutrophil or platelet programme.

Neutrophils escort CTCs (Szczerba et al. 2019) and platelets cloak them (Labelle et al. 2011);
in droplet data such a cluster, if captured intact, is one barcode expressing both programmes.
So is a technical doublet. What the data can tell apart:

* **Partner specificity** — a tumour programme co-occurring with a leukocyte programme that has
  no known escort role (T, B, NK, …) is flagged ``"doublet-like"``; :func:`partner_enrichment`
  compares how often the partner is a neutrophil with how often a random leukocyte is one (≈ 1
  under random doublets, > 1 when tumour cells pair preferentially with neutrophils).
* **Library size** — ``size_z`` (robust z of log counts and log genes) is high for *both*
  physical clusters and doublets, so it cannot separate them; a heterotypic call with an ordinary
  size more likely reflects ambient RNA or phagocytosed material than two cells.

What it cannot: an individual CTC–neutrophil barcode cannot be proven to be a physical cluster
rather than a doublet of the same two cell types; that needs imaging or cluster-enriching assays.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from seedsoil.interpret.ctc import core_groups_detected, leukocyte_signatures

TUMOUR_SIGNATURES = ("CTC_epithelial_identity", "ID_epithelial_tumour")
PARTNERS = {"IMM_neutrophil": "CTC-neutrophil", "IMM_platelet": "CTC-platelet"}
DOUBLET_LIKE = "doublet-like"
#: A CTC–leukocyte cluster of :func:`seedsoil.interpret.ctc.call_ctc` whose only leukocyte
#: feature is PTPRC at leukocyte level: a leukocyte partner of unknown type.
OTHER_LEUKOCYTE = "CTC-leukocyte"
#: Partners also recognised by their own core markers when their programme cannot be tested
#: (a targeted panel carries 5 of the 15 platelet genes: ITGA2B, GP1BA, ITGB3, SELP, CD36 on
#: Hydro-Seq's). Platelets only: anucleate, so they are not leukocyte evidence for the CTC call
#: (:func:`seedsoil.interpret.ctc.call_ctc`) and a CTC carrying them stays ``"CTC"``.
MARKER_PARTNERS = {"IMM_platelet": "CTC-platelet"}
#: Distinct core marker groups of the partner a tumour barcode must detect: two platelet
#: glycoproteins (e.g. CD41/ITGA2B *and* CD42b/GP1BA), as the CTC call asks of a cluster.
MIN_PARTNER_GROUPS = 2


def _robust_z(values: np.ndarray) -> np.ndarray:
    """(x − median) / (1.4826 × MAD); NaN when the MAD is 0 or values are missing."""
    median = np.nanmedian(values)
    mad = 1.4826 * np.nanmedian(np.abs(values - median))
    return (values - median) / mad if mad > 0 else np.full(values.shape, np.nan)


def size_z(obs: pd.DataFrame) -> np.ndarray:
    """Per-cell library-size outlyingness: mean robust z of ``log(n_counts)`` and ``log(n_genes)``.

    Uses whichever of the two ``obs`` columns exist; NaN when neither does.
    """
    zs = [
        _robust_z(np.log(np.maximum(obs[c].to_numpy(dtype=np.float64), 1.0)))
        for c in ("n_counts", "n_genes")
        if c in obs.columns
    ]
    if not zs:
        return np.full(obs.shape[0], np.nan)
    stacked = np.vstack(zs)
    n_valid = np.isfinite(stacked).sum(axis=0)
    total = np.where(np.isfinite(stacked), stacked, 0.0).sum(axis=0)
    return np.where(n_valid > 0, total / np.maximum(n_valid, 1), np.nan)


def _significant(fdr: pd.DataFrame, names, alpha: float) -> np.ndarray:
    hit = np.zeros(fdr.shape[0], dtype=bool)
    for name in (n for n in names if n in fdr.columns):  # a column at a time: no table copy
        hit |= fdr[name].to_numpy(dtype=np.float64) <= alpha
    return hit


def flag_heterotypic(
    obs: pd.DataFrame,
    fdr: pd.DataFrame,
    alpha: float = 0.05,
    ctc_class: pd.Series | None = None,
    expression=None,
    partner_core: dict | None = None,
) -> pd.DataFrame:
    """Flag possible heterotypic CTC clusters.

    Definition: a *tumour* cell has FDR ≤ ``alpha`` for any of :data:`TUMOUR_SIGNATURES`, or is a
    CTC candidate (``ctc_class`` from :func:`seedsoil.interpret.ctc.call_ctc`, when given).
    Tumour and ``IMM_neutrophil`` significant → ``"CTC-neutrophil"``; tumour and ``IMM_platelet``
    → ``"CTC-platelet"`` (both → the partner with the smaller FDR); tumour and only other leukocyte
    programmes → ``"doublet-like"``; a ``"CTC-leukocyte cluster"`` of ``ctc_class`` with none of
    these (its leukocyte feature is PTPRC alone) → ``"CTC-leukocyte"``; a tumour barcode still
    unlabelled that detects at least :data:`MIN_PARTNER_GROUPS` distinct core marker groups of a
    :data:`MARKER_PARTNERS` signature (``partner_core[signature]``, read from ``expression``,
    an AnnData; skipped when either is None) → that partner (``"CTC-platelet"``: platelets
    attached to the CTC, or their ambient RNA); otherwise ``""``. ``size_z`` is :func:`size_z`.

    Returns a DataFrame indexed like ``fdr`` with ``heterotypic_cluster`` and ``size_z``.
    """
    tumour = _significant(fdr, TUMOUR_SIGNATURES, alpha)
    cluster = np.zeros(fdr.shape[0], dtype=bool)
    if ctc_class is not None:
        ctc_class = ctc_class.reindex(fdr.index).fillna("").astype(str).to_numpy()
        tumour |= ctc_class != ""
        cluster = ctc_class == "CTC-leukocyte cluster"
    label = np.full(fdr.shape[0], "", dtype=object)
    best_q = np.full(fdr.shape[0], np.inf)
    for signature, name in PARTNERS.items():
        if signature not in fdr.columns:
            continue
        q = fdr[signature].to_numpy(dtype=np.float64)
        hit = tumour & (q <= alpha) & (q < best_q)
        label[hit] = name
        best_q[hit] = q[hit]
    others = [s for s in leukocyte_signatures(fdr.columns) if s not in PARTNERS]
    label[tumour & (label == "") & _significant(fdr, others, alpha)] = DOUBLET_LIKE
    label[cluster & (label == "")] = OTHER_LEUKOCYTE
    if expression is not None and partner_core:
        for signature, name in MARKER_PARTNERS.items():
            groups = partner_core.get(signature) or ()
            if len(groups) >= MIN_PARTNER_GROUPS:
                detected = core_groups_detected(expression, groups) >= MIN_PARTNER_GROUPS
                label[tumour & (label == "") & detected] = name
    out = pd.DataFrame(index=fdr.index)
    out["heterotypic_cluster"] = label  # strings shared by the cells, not one per cell
    out["size_z"] = size_z(obs.reindex(fdr.index))
    return out


def partner_enrichment(
    fdr: pd.DataFrame, alpha: float = 0.05, partner: str = "IMM_neutrophil"
) -> dict:
    """How much more often tumour-containing barcodes carry ``partner`` than random leukocytes do.

    ``observed`` = fraction of tumour barcodes with any leukocyte/platelet programme whose partner
    programme is significant; ``expected`` = the fraction of non-tumour leukocyte/platelet barcodes
    in which it is significant (what random doublets would give); ``enrichment`` = ratio (None when
    either group is empty). Counts are returned alongside so small numbers are visible.
    """
    if partner not in fdr.columns:
        return {
            "partner": partner,
            "observed": None,
            "expected": None,
            "enrichment": None,
            "n_heterotypic": 0,
        }
    tumour = _significant(fdr, TUMOUR_SIGNATURES, alpha)
    any_partner = _significant(fdr, [*leukocyte_signatures(fdr.columns), *PARTNERS], alpha)
    hit = fdr[partner].to_numpy(dtype=np.float64) <= alpha
    mixed, single = tumour & any_partner, ~tumour & any_partner
    observed = float(hit[mixed].mean()) if mixed.any() else None
    expected = float(hit[single].mean()) if single.any() else None
    enrichment = observed / expected if observed is not None and expected else None
    return {
        "partner": partner,
        "observed": observed,
        "expected": expected,
        "enrichment": enrichment,
        "n_heterotypic": int(mixed.sum()),
        "n_leukocyte": int(single.sum()),
    }
