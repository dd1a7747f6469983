"""The data's depth (genes detected per cell) and the rank windows chosen from it.

``depth`` is the record ``uns["seedsoil"]["depth"]`` holds (written at ingest for the
dataset, at the split for each sample): ``median_genes_detected``, ``q10_genes_detected``,
``q90_genes_detected`` (quantiles over cells of the number of genes with a non-zero value)
and ``n_genes_panel`` (genes in the matrix).

UCell's ``max_rank`` is the number of top-ranked genes a cell's score looks at; a gene
ranked below it counts as undetected. UCell's authors recommend a value near the number of
genes a cell detects (the default 1500 fits 10x droplet data, whose cells detect ~1,000-3,000
genes). With ``max_rank="auto"`` it is the *median* number of genes detected per cell,
capped by the genes in the matrix:

- far above the median (e.g. a full-length cell detecting 8,000 genes scored with a window
  of 1,500, or the default 1,500 on a panel of 2,500 genes where cells detect 300): in deep
  cells the signature genes fall outside the window and every cell scores 0, while in shallow
  cells the whole detected transcriptome sits inside it, so the score measures depth;
- at the median, half the cells fill the window with detected genes and are compared on
  the same footing (a gene's chance to rank inside the window no longer depends on how many
  other genes the cell detects), and the other half rank every gene they detect.

The quantile is a property of the sample alone (no tuning to a data set); the chosen value
is recorded with the scores (``scores.attrs["options"]["max_rank"]``) and in the report.
"""

from __future__ import annotations

import numpy as np

from ..errors import InputError

DEPTH_KEYS = ("median_genes_detected", "q10_genes_detected", "q90_genes_detected", "n_genes_panel")


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
        q10 = median = q90 = 0
    else:
        q10, median, q90 = np.rint(np.percentile(n_detected, [10, 50, 90])).astype(int)
    return {
        "median_genes_detected": int(median),
        "q10_genes_detected": int(q10),
        "q90_genes_detected": int(q90),
        "n_genes_panel": int(n_genes),
    }


def source_depth(source, chunk_size: int = 20_000) -> dict[str, int]:
    """:func:`depth_summary` of every cell of a :class:`~seedsoil.scoring._input.MatrixSource`."""
    parts = [genes_detected(chunk) for chunk in source.chunks(chunk_size, check_finite=False)]
    detected = np.concatenate(parts) if parts else np.empty(0, np.int64)
    return depth_summary(detected, source.n_genes)


def resolve_max_rank(depth: dict) -> int:
    """UCell's ``max_rank`` for data of this ``depth``: the median genes detected per cell,
    capped by the genes in the matrix, at least 1 (see the module docstring)."""
    missing = [key for key in ("median_genes_detected", "n_genes_panel") if key not in depth]
    if missing:
        raise InputError(f"depth record lacks {missing}; expected the keys {list(DEPTH_KEYS)}")
    return int(max(1, min(depth["median_genes_detected"], depth["n_genes_panel"])))
