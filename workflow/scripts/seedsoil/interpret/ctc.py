"""CTC candidate calls, their EMT state, and whether a sample supports CTC calls at all.

A CTC candidate is the transcriptomic counterpart of the CellSearch definition of a circulating
tumour cell (EpCAM⁺ cytokeratin⁺ CD45⁻; Kwan et al. 2018, Aceto et al. 2014 use the same logic
for enriched CTCs): a cell whose epithelial/CTC identity is significant and that shows no
leukocyte identity. Whether such a cell is *circulating* depends on where the sample came from
(blood vs primary tumour); the call only says the cell has a CTC-like transcriptome.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

CTC_SIGNATURE = "CTC_epithelial_identity"
EMT_SIGNATURE = "EMT_bidirectional"
EMT_EPITHELIAL = "EMT_epithelial"
EMT_MESENCHYMAL = "EMT_mesenchymal"
#: Leukocyte identity programmes: every immune signature except platelets (anucleate, not CD45⁺
#: leukocytes, and the partner of CTC–platelet clusters rather than an exclusion criterion).
PLATELET_SIGNATURE = "IMM_platelet"
LEUKOCYTE_MARKER = "PTPRC"


def leukocyte_signatures(columns) -> list[str]:
    """The leukocyte identity signatures present in ``columns`` (``IMM_*`` except platelets)."""
    return [c for c in columns if c.startswith("IMM_") and c != PLATELET_SIGNATURE]


def leukocyte_evidence(
    adata, fdr: pd.DataFrame, alpha: float = 0.05, ptprc_max: float = 0.0
) -> np.ndarray:
    """Boolean per cell: any leukocyte signature has FDR ≤ ``alpha``, or PTPRC (CD45) > ``ptprc_max``.

    PTPRC is read from ``adata.X`` (log-normalised) when the gene is present. The default
    ``ptprc_max = 0`` makes any detected CD45 transcript exclude a cell, as CD45 negativity does
    in CellSearch; raise it when ambient RNA puts a few PTPRC UMIs into every droplet.
    """
    leuk = leukocyte_signatures(fdr.columns)
    evidence = (
        (fdr[leuk].to_numpy(dtype=np.float64) <= alpha).any(axis=1)
        if leuk
        else np.zeros(fdr.shape[0], bool)
    )
    if LEUKOCYTE_MARKER in adata.var_names:
        column = adata[:, LEUKOCYTE_MARKER].X
        ptprc = np.asarray(column.toarray() if hasattr(column, "toarray") else column).ravel()
        evidence |= ptprc > ptprc_max
    return evidence


def emt_state(pvalues: pd.DataFrame, fdr: pd.DataFrame, alpha: float = 0.05) -> np.ndarray:
    """EMT state per cell: ``"epithelial"``, ``"hybrid"`` or ``"mesenchymal"``.

    From ``EMT_bidirectional`` (up = mesenchymal genes, down = epithelial genes) and its empirical
    one-sided p-value ``p`` against expression-matched random signatures of the same shape
    (``p`` small = score above the null): ``p ≤ alpha`` → mesenchymal (above the upper ``alpha``
    tail of the sample's null), ``p ≥ 1 − alpha`` → epithelial (in the lower tail), otherwise
    hybrid (within the null's central range, i.e. neither programme dominates). Per-cell p-values,
    not FDR, are used because this describes already-called cells rather than discovering them.

    Without ``EMT_bidirectional`` the two one-sided programmes are used: ``EMT_mesenchymal``
    significant (FDR ≤ ``alpha``) and ``EMT_epithelial`` not → mesenchymal; the reverse →
    epithelial; both or neither → hybrid. With neither available every state is ``""``.
    """
    n = pvalues.shape[0]
    if EMT_SIGNATURE in pvalues.columns:
        p = pvalues[EMT_SIGNATURE].to_numpy(dtype=np.float64)
        return np.select(
            [p <= alpha, p >= 1.0 - alpha], ["mesenchymal", "epithelial"], "hybrid"
        ).astype(object)
    if EMT_EPITHELIAL in fdr.columns and EMT_MESENCHYMAL in fdr.columns:
        epi = fdr[EMT_EPITHELIAL].to_numpy(dtype=np.float64) <= alpha
        mes = fdr[EMT_MESENCHYMAL].to_numpy(dtype=np.float64) <= alpha
        return np.select([mes & ~epi, epi & ~mes], ["mesenchymal", "epithelial"], "hybrid").astype(
            object
        )
    return np.full(n, "", dtype=object)


def call_ctc(
    adata,
    pvalues: pd.DataFrame,
    fdr: pd.DataFrame,
    alpha: float = 0.05,
    ptprc_max: float = 0.0,
) -> pd.DataFrame:
    """Call CTC candidates.

    Definition: ``ctc_candidate`` = FDR(``CTC_epithelial_identity``) ≤ ``alpha`` AND no
    :func:`leukocyte_evidence`. ``ctc_fdr`` is the CTC signature's FDR (NaN when the signature
    was not scored). ``ctc_confidence`` = ``(1 − ctc_fdr) × min_l FDR_l`` over leukocyte
    signatures ``l`` (1 when none is scored) for candidates, 0 otherwise: high when the epithelial
    identity is unambiguous *and* no leukocyte programme comes near significance. It orders calls;
    it is not a probability. ``emt_state`` (see :func:`emt_state`) is ``""`` for non-candidates.

    Returns a DataFrame indexed like ``fdr`` with ``ctc_candidate``, ``ctc_confidence``,
    ``ctc_fdr``, ``emt_state``.
    """
    out = pd.DataFrame(index=fdr.index)
    if CTC_SIGNATURE not in fdr.columns:
        out["ctc_candidate"] = False
        out["ctc_confidence"] = 0.0
        out["ctc_fdr"] = np.nan
        out["emt_state"] = ""
        return out
    q = fdr[CTC_SIGNATURE].to_numpy(dtype=np.float64)
    candidate = (q <= alpha) & ~leukocyte_evidence(adata, fdr, alpha, ptprc_max)
    leuk = leukocyte_signatures(fdr.columns)
    least_leukocyte_q = (
        fdr[leuk].to_numpy(dtype=np.float64).min(axis=1) if leuk else np.ones(q.size)
    )
    out["ctc_candidate"] = candidate
    out["ctc_confidence"] = np.where(
        candidate, np.clip((1.0 - q) * least_leukocyte_q, 0.0, 1.0), 0.0
    )
    out["ctc_fdr"] = q
    out["emt_state"] = np.where(candidate, emt_state(pvalues, fdr, alpha), "").astype(str)
    return out


def ctc_support(calls: pd.DataFrame, scored: bool, min_candidates: int = 3) -> str:
    """Whether the sample supports CTC calls: ``"supported"`` or ``"not supported: <reason>"``.

    Refuses when ``CTC_epithelial_identity`` was not scored (too few genes present), when no cell
    passes the call, or when fewer than ``min_candidates`` do: under BH control at 5 % a lone
    call or two is compatible with a false discovery, and pure-immune samples (e.g. PBMC) end here.
    """
    if not scored:
        return f"not supported: {CTC_SIGNATURE} was not scored (see coverage.tsv)"
    n = int(calls["ctc_candidate"].sum())
    if n == 0:
        return "not supported: no cell has a significant epithelial/CTC identity without leukocyte identity"
    if n < min_candidates:
        return f"not supported: only {n} candidate cell(s) (< {min_candidates}); compatible with false discoveries"
    return "supported"
