"""Calibrated significance of the mean score against expression-matched random signatures.

For a signature with ``k`` up and ``l`` down genes, a null signature replaces every gene
by a random gene of the same expression bin (scanpy's 25 bins by dataset-wide mean, see
:func:`seedsoil.scoring.scanpy.expression_bins`), all ``k + l`` replacements distinct,
keeping each gene's weight and direction. ``n_null`` null signatures per signature are
drawn from ``numpy.random.default_rng(random_state)``. The statistic is the (weighted)
mean score of :mod:`seedsoil.scoring.mean`; per cell,

    p = (1 + #{null scores >= observed score}) / (n_null + 1)

(Phipson & Smyth 2010: never zero). The null hypothesis is "this cell expresses the
signature's genes no more than random genes of the same expression levels"; replacements
are drawn from the whole bin, the signature's own genes included, so the signature is
itself a possible null draw and the p-value is exact under that hypothesis up to the
resolution ``1 / (n_null + 1)``. Ties count against the signature (e.g. a cell expressing
none of its genes ties with every all-zero null), which makes the test conservative. Observed and null scores come from one sparse product (gene × (signatures ·
(n_null + 1)) weights) evaluated cell by cell, so no cells × nulls matrix is ever held.
FDR: Benjamini–Hochberg across the cells of each signature.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import scipy.sparse as sp

from ._kernels import null_exceedances
from .base import GeneSet, GeneStats
from .mean import signed_weights
from .scanpy import expression_bins

NEEDS_STATS = True


def _distinct_draws(pool_size: int, k: int, n_draws: int, rng: np.random.Generator) -> np.ndarray:
    """``n_draws`` rows of ``k`` distinct integers in ``[0, pool_size)``, uniformly."""
    if k * k <= pool_size:  # duplicates are rare: redraw the rows that have any
        draws = rng.integers(0, pool_size, size=(n_draws, k))
        while True:
            ordered = np.sort(draws, axis=1)
            bad = np.flatnonzero((ordered[:, 1:] == ordered[:, :-1]).any(axis=1))
            if bad.size == 0:
                return draws
            draws[bad] = rng.integers(0, pool_size, size=(bad.size, k))
    keys = rng.random((n_draws, pool_size))
    return (
        np.argpartition(keys, k - 1, axis=1)[:, :k] if k < pool_size else np.argsort(keys, axis=1)
    )


def matched_nulls(
    genes: np.ndarray, cuts: np.ndarray, n_null: int, rng: np.random.Generator
) -> np.ndarray:
    """(n_null, genes.size) gene indices: column ``t`` is drawn from the bin of ``genes[t]``."""
    nulls = np.empty((n_null, genes.size), dtype=np.int64)
    for cut in np.unique(cuts[genes]):
        positions = np.flatnonzero(cuts[genes] == cut)
        pool = np.flatnonzero(cuts == cut)
        nulls[:, positions] = pool[_distinct_draws(pool.size, positions.size, n_null, rng)]
    return nulls


@dataclass(frozen=True)
class Prepared:
    weights: sp.csr_matrix  # gene × (n_sets observed + n_sets * n_null null) columns
    n_sets: int
    n_null: int


def prepare(
    gene_sets: list[GeneSet],
    n_genes: int,
    stats: GeneStats,
    *,
    n_null: int = 1000,
    random_state: int = 0,
    n_bins: int = 25,
) -> Prepared:
    cuts = expression_bins(stats, n_bins)
    rng = np.random.default_rng(random_state)
    n_sets = len(gene_sets)
    rows, cols, vals = [], [], []
    for s, gene_set in enumerate(gene_sets):
        genes, weights = signed_weights(gene_set)
        nulls = matched_nulls(genes, cuts, n_null, rng)
        rows += [genes, nulls.ravel()]
        cols += [
            np.full(genes.size, s),
            np.repeat(n_sets + s * n_null + np.arange(n_null), genes.size),
        ]
        vals += [weights, np.tile(weights, n_null)]
    matrix = sp.csr_matrix(
        (np.concatenate(vals), (np.concatenate(rows), np.concatenate(cols))),
        shape=(n_genes, n_sets * (n_null + 1)),
    )
    matrix.sort_indices()
    return Prepared(weights=matrix, n_sets=n_sets, n_null=n_null)


def exceedances(X: sp.csr_matrix, prepared: Prepared) -> tuple[np.ndarray, np.ndarray]:
    """Per cell and signature: the observed mean score and #{null scores >= it}."""
    w = prepared.weights
    return null_exceedances(
        X.indptr, X.indices, X.data, w.indptr, w.indices, w.data, prepared.n_sets, prepared.n_null
    )


def empirical_pvalues(exceed: np.ndarray, n_null: int) -> np.ndarray:
    return (1.0 + exceed) / (n_null + 1.0)


def cell_pvalues(X: sp.csr_matrix, prepared: Prepared) -> np.ndarray:
    """Cells × signatures empirical p-values of the rows of ``X``: (1 + #{null ≥ observed}) /
    (n_null + 1)."""
    _, exceed = exceedances(X, prepared)
    return empirical_pvalues(exceed, prepared.n_null)


def benjamini_hochberg(pvalues: np.ndarray) -> np.ndarray:
    """BH adjusted p-values (q-values) of a 1-D array: ``min_{j >= i} p_(j) n / j``, capped at 1."""
    p = np.asarray(pvalues, dtype=np.float64)
    n = p.size
    order = np.argsort(p, kind="stable")
    scaled = p[order] * n / np.arange(1, n + 1)
    adjusted = np.minimum.accumulate(scaled[::-1])[::-1]
    out = np.empty(n, dtype=np.float64)
    out[order] = np.minimum(adjusted, 1.0)
    return out
