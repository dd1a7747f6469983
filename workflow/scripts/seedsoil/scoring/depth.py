"""The data's depth (genes detected per cell) and the rank windows chosen from it.

``depth`` is the record ``uns["seedsoil"]["depth"]`` holds (written at ingest for the
dataset's QC-passed cells, at the split for each sample's): ``median_genes_detected``,
``q10_genes_detected``, ``q25_genes_detected``, ``q90_genes_detected`` (quantiles over cells
of the number of genes with a non-zero value) and ``n_genes_panel`` (genes in the matrix).

UCell's ``max_rank`` is the number of top-ranked genes a cell's score looks at; a gene
ranked below it counts as undetected. UCell's authors recommend a value near the number of
genes a cell detects (the default 1500 fits 10x droplet data). With ``max_rank="auto"`` it
is the *lower quartile* of genes detected per cell, capped by the genes in the matrix:

- far above the cells' detection (1,500 on a 2,545-gene panel where cells detect ~300), every
  gene a shallow cell detects falls inside the window, so the score of any gene set rises with
  depth (random 20-gene sets: median Spearman rho with genes detected 0.59 on the Hydro-Seq
  panel, 0.33 on wu2020); far below it (1,500 where cells detect 4,000-8,000, full-length),
  moderately expressed signature genes fall outside the window and score 0;
- with the window at or below a cell's detection, whether a random gene ranks inside it does
  not depend on how many further genes the cell detects; the lower quartile fills the window
  with detected genes in three cells of four. Measured on four real data sets (three
  chemistries; benchmarks/depth_calibration.py), the depth trend of random sets' scores
  (rho of each cell's mean rank over 30 sets with genes detected) changes sign between the
  10th percentile and the median and is smallest at the lower quartile (-0.04 to +0.04 on
  the panel and the full-length data, -0.07 and -0.19 on droplet data, against +0.24 to
  +0.33 at the median; docs/interpretation.md, "Depth calibration").

The quantile is a property of the sample alone; the chosen value is recorded with the scores
(``scores.attrs["scoring"]``, the report's methods section, ``scored.h5ad``'s ``uns``).
"""

from __future__ import annotations

import numpy as np

from ..errors import InputError

DEPTH_KEYS = (
    "median_genes_detected",
    "q10_genes_detected",
    "q25_genes_detected",
    "q90_genes_detected",
    "n_genes_panel",
)


def genes_detected(X) -> np.ndarray:
    """Number of non-zero values in each row of a CSR matrix (stored zeros not counted)."""
    counts = np.diff(X.indptr).astype(np.int64)
    stored_zeros = X.data == 0
    if stored_zeros.any():
        rows = np.repeat(np.arange(X.shape[0]), np.diff(X.indptr))
        counts -= np.bincount(rows[stored_zeros], minlength=X.shape[0])
    return counts


def depth_summary(n_detected, n_genes: int) -> dict[str, int]:
    """The ``uns["seedsoil"]["depth"]`` record of cells detecting ``n_detected`` genes each."""
    n_detected = np.asarray(n_detected, dtype=np.float64)
    if n_detected.size == 0:
        q10 = q25 = median = q90 = 0
    else:
        q10, q25, median, q90 = np.rint(np.percentile(n_detected, [10, 25, 50, 90])).astype(int)
    return {
        "median_genes_detected": int(median),
        "q10_genes_detected": int(q10),
        "q25_genes_detected": int(q25),
        "q90_genes_detected": int(q90),
        "n_genes_panel": int(n_genes),
    }


def source_depth(source, chunk_size: int = 20_000) -> dict[str, int]:
    """:func:`depth_summary` of every cell of a :class:`~seedsoil.scoring._input.MatrixSource`."""
    parts = [genes_detected(chunk) for chunk in source.chunks(chunk_size, check_finite=False)]
    detected = np.concatenate(parts) if parts else np.empty(0, np.int64)
    return depth_summary(detected, source.n_genes)


def resolve_max_rank(depth: dict) -> int:
    """UCell's ``max_rank`` for data of this ``depth``: the lower quartile of genes detected
    per cell, capped by the genes in the matrix, at least 1 (see the module docstring)."""
    missing = [key for key in ("q25_genes_detected", "n_genes_panel") if key not in depth]
    if missing:
        raise InputError(f"depth record lacks {missing}; expected the keys {list(DEPTH_KEYS)}")
    return int(max(1, min(depth["q25_genes_detected"], depth["n_genes_panel"])))
