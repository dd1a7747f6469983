"""``scanpy.tl.score_genes`` (scanpy 1.11.5) for many signatures in one pass.

Definition (Satija et al. 2015, as implemented by scanpy, ``ctrl_as_ref=True``,
``gene_pool`` = all genes, ``use_raw=False``):

1. Gene means ``m_g = float64(S_g) / n_cells`` where ``S_g`` is the gene's sum accumulated
   row by row in the matrix's own dtype (float32 for a float32 ``X``): scanpy calls scipy's
   ``X.sum(axis=0, dtype="float64")``, whose ``dtype`` applies only to the output.
2. Bins ``cut_g = rank_min(m_g) // round(n_genes / (n_bins - 1))`` (pandas ``rank(method="min")``).
3. A legacy ``numpy.random.RandomState(random_state)`` is created per signature (scanpy calls
   ``np.random.seed`` on every call). For each bin holding a signature gene, in ascending bin
   order: the bin's genes in column order; if there are more than ``ctrl_size``, keep
   ``choice(n, ctrl_size, replace=False)`` of them (pandas ``sample``); drop signature genes.
   The control set is the union over bins.
4. ``score = mean(signature genes) - mean(control genes)`` per cell, where each mean is a
   per-cell sum in the matrix's dtype, divided in float64 by the number of genes. scanpy
   sums ``X[:, genes]`` with scipy's ``sum(axis=1)``, i.e. ``numpy.add.reduceat`` over the
   row's stored values: ``v[0] + pairwise_sum(v[1:])`` in float32 for a float32 ``X``;
   :func:`~seedsoil.scoring._kernels.subset_sums` reproduces that order.

All signatures share one sparse gene × column indicator matrix (signature and control
columns), so one pass over ``X`` scores them all; the sums are bit-identical to scanpy's
(float32 pairwise rounding included, which a float64 linear combination would miss by ~1e-6).
A directed signature scores ``score(up) - score(down)``, each part exactly as a separate
``score_genes`` call. Weights are ignored (scanpy has none).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import scipy.sparse as sp
from scipy.stats import rankdata

from ..errors import InputError
from ._kernels import subset_sums
from .base import GeneSet, GeneStats

NEEDS_STATS = True


def expression_bins(stats: GeneStats, n_bins: int = 25) -> np.ndarray:
    """scanpy's expression cut of every gene (step 2 above), as int64."""
    means = stats.sum_native.astype(np.float64) / stats.n_cells
    n_items = int(np.round(means.size / (n_bins - 1)))
    if n_items < 1:
        raise InputError(
            f"{means.size} genes are too few for n_bins={n_bins} expression bins; lower n_bins"
        )
    return rankdata(means, method="min").astype(np.int64) // n_items


def control_genes(
    genes: np.ndarray, cuts: np.ndarray, ctrl_size: int, random_state: int
) -> np.ndarray:
    """Sorted column indices of scanpy's control genes for one gene list (step 3 above)."""
    draws = np.random.RandomState(random_state)
    controls = []
    for cut in np.unique(cuts[genes]):
        pool = np.flatnonzero(cuts == cut)
        if ctrl_size < pool.size:
            pool = pool[draws.choice(pool.size, size=ctrl_size, replace=False)]
        controls.append(np.setdiff1d(pool, genes))
    return np.unique(np.concatenate(controls)) if controls else np.empty(0, dtype=np.int64)


@dataclass(frozen=True)
class Prepared:
    weights: sp.csr_matrix  # gene × column indicator in the matrix's sum dtype
    columns: np.ndarray  # (n_sets, 4): up, up-control, down, down-control column (-1: absent)
    counts: np.ndarray  # (n_sets, 4) number of genes behind each column
    column_start: np.ndarray  # column k's genes are entries column_start[k]:column_start[k+1]


def prepare(
    gene_sets: list[GeneSet],
    n_genes: int,
    stats: GeneStats,
    *,
    ctrl_size: int = 50,
    n_bins: int = 25,
    random_state: int = 0,
) -> Prepared:
    cuts = expression_bins(stats, n_bins)
    members: list[np.ndarray] = []
    columns = np.full((len(gene_sets), 4), -1, dtype=np.int64)
    counts = np.ones((len(gene_sets), 4), dtype=np.int64)
    for s, gene_set in enumerate(gene_sets):
        for part, genes in enumerate((gene_set.up, gene_set.down)):
            if genes.size == 0:
                continue
            controls = control_genes(genes, cuts, ctrl_size, random_state)
            if controls.size == 0:
                raise InputError(
                    f"signature {gene_set.name!r}: no control genes left in its expression bins "
                    "(the signature covers whole bins); use fewer genes or a larger matrix"
                )
            for offset, block in enumerate((genes, controls)):
                columns[s, 2 * part + offset] = len(members)
                counts[s, 2 * part + offset] = block.size
                members.append(block)
    rows = np.concatenate(members) if members else np.empty(0, dtype=np.int64)
    cols = np.repeat(np.arange(len(members)), [m.size for m in members])
    weights = sp.csr_matrix(
        (np.ones(rows.size, dtype=stats.sum_native.dtype), (rows, cols)),
        shape=(n_genes, len(members)),
    )
    weights.sort_indices()
    column_start = np.concatenate(([0], np.cumsum([m.size for m in members], dtype=np.int64)))
    return Prepared(weights=weights, columns=columns, counts=counts, column_start=column_start)


def score_chunk(X: sp.csr_matrix, prepared: Prepared) -> np.ndarray:
    w = prepared.weights
    data = X.data.astype(w.dtype, copy=False)
    sums = np.zeros((X.shape[0], w.shape[1]), dtype=w.dtype)
    subset_sums(
        X.indptr, X.indices, data, w.indptr, w.indices, prepared.column_start, w.dtype.type(0), sums
    )
    scores = np.zeros((X.shape[0], prepared.columns.shape[0]), dtype=np.float64)
    for s, (up, up_ctrl, down, down_ctrl) in enumerate(prepared.columns):
        n = prepared.counts[s]
        if up >= 0:
            scores[:, s] += (
                sums[:, up].astype(np.float64) / n[0] - sums[:, up_ctrl].astype(np.float64) / n[1]
            )
        if down >= 0:
            scores[:, s] -= (
                sums[:, down].astype(np.float64) / n[2]
                - sums[:, down_ctrl].astype(np.float64) / n[3]
            )
    return scores
