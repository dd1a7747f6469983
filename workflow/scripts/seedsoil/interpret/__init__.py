"""The metastasis interpretation layer: from per-cell signature scores to answers.

One entry point, :func:`interpret_sample`, turns a sample's scores, p-values and FDRs into

* per-cell calls (``calls.parquet``): assigned cell type, CTC candidate and its EMT state,
  heterotypic-cluster flag (:mod:`.celltypes`, :mod:`.ctc`, :mod:`.clusters`);
* sender → receiver ligand–receptor scores with permutation p-values (``communication.tsv``,
  :mod:`.communication`);
* a sample summary (``interpretation.json``, :mod:`.summary`).

Definitions and validation figures are in ``docs/interpretation.md``.
"""

from __future__ import annotations

from pathlib import Path

import pandas as pd

from seedsoil.errors import InputError
from seedsoil.interpret.celltypes import assign_cell_types
from seedsoil.interpret.clusters import flag_heterotypic
from seedsoil.interpret.communication import load_pairs, score_communication
from seedsoil.interpret.ctc import call_ctc
from seedsoil.interpret.summary import cell_types_used, summarise_interpretation

__all__ = ["CALL_COLUMNS", "interpret_sample", "load_pairs", "summarise_interpretation"]

#: Columns of ``calls.parquet``, in order (``size_z`` comes from :mod:`.clusters`).
CALL_COLUMNS = [
    "cell_type_assigned", "assignment_score", "assignment_confidence",
    "ctc_candidate", "ctc_confidence", "ctc_fdr", "emt_state",
    "heterotypic_cluster", "size_z",
]  # fmt: skip


def _aligned(table: pd.DataFrame, name: str, adata, columns) -> pd.DataFrame:
    """``table`` reindexed to ``adata.obs_names``; InputError when cells or signatures differ."""
    missing_cells = adata.obs_names.difference(table.index)
    if len(missing_cells):
        raise InputError(
            f"{name}: {len(missing_cells)} cell(s) of the AnnData are missing (first: {missing_cells[0]!r}); "
            "score the same cells.h5ad the interpretation reads"
        )
    if columns is not None and list(table.columns) != list(columns):
        raise InputError(
            f"{name}: signature columns differ from scores.parquet; write all three tables from one scoring run"
        )
    return table.reindex(adata.obs_names)


def interpret_sample(
    adata,
    scores: pd.DataFrame,
    pvalues: pd.DataFrame,
    fdr: pd.DataFrame,
    *,
    pairs: pd.DataFrame | str | Path | None = None,
    alpha: float = 0.05,
    n_perm: int = 1000,
    random_state: int = 0,
    min_cells: int = 5,
) -> tuple[pd.DataFrame, pd.DataFrame, dict]:
    """Interpret one sample.

    ``adata`` follows the AnnData convention (log-normalised ``X``, ``obs["cell_type"]``,
    ``obs["n_counts"]``/``obs["n_genes"]``); ``scores``/``pvalues``/``fdr`` are cells × signatures
    from the engine (same columns). ``pairs`` is a table from :func:`load_pairs` or a path to one
    (default: the shipped ``resources/communication/pairs.tsv``). Communication groups are the
    dataset's labels when it has any, else the assigned types.

    Returns ``(calls, communication, summary)``: ``calls`` indexed by cell with
    :data:`CALL_COLUMNS`; ``communication`` with
    :data:`seedsoil.interpret.communication.OUTPUT_COLUMNS`; ``summary`` a JSON-ready dict
    (:func:`summarise_interpretation`).
    """
    scores = _aligned(scores, "scores", adata, None)
    pvalues = _aligned(pvalues, "pvalues", adata, scores.columns)
    fdr = _aligned(fdr, "fdr", adata, scores.columns)
    if not isinstance(pairs, pd.DataFrame):
        pairs = load_pairs(pairs)

    calls = pd.concat(
        [
            assign_cell_types(scores, fdr, alpha),
            call_ctc(adata, pvalues, fdr, alpha),
            flag_heterotypic(adata.obs, fdr, alpha),
        ],
        axis=1,
    )[CALL_COLUMNS]
    groups, _ = cell_types_used(calls, adata)
    communication, skipped = score_communication(
        adata, groups, pairs, n_perm=n_perm, random_state=random_state, min_cells=min_cells
    )
    summary = summarise_interpretation(
        calls, communication, scores, adata, fdr=fdr, alpha=alpha, skipped=skipped
    )
    summary.update({"n_perm": n_perm, "random_state": random_state, "min_cells": min_cells})
    return calls, communication, summary
