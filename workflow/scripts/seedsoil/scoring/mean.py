"""Mean expression of the up genes minus mean of the down genes, optionally z-scored.

Definitions, for a cell ``x`` and a signature with up genes ``U`` and down genes ``D``
with weights ``w`` (all 1 when unweighted)::

    mean:    score = sum_{g in U} w_g x_g / sum_{g in U} w_g  -  sum_{g in D} w_g x_g / sum_{g in D} w_g
    zscore:  the same with x_g replaced by z_g = (x_g - mu_g) / sd_g

where ``mu_g`` and ``sd_g`` are the gene's mean and population (ddof = 0) standard deviation
over all cells of the dataset (zeros included), from the statistics pass. A term is absent
when its gene list is empty. A gene constant over the dataset (``sd_g = 0``) has ``z_g = 0``.
The z-scored form is linear in ``x``: weights ``w_g / sd_g`` on the sparse values plus a
per-signature constant, so zeros are never materialised. Z-scoring puts genes of very
different expression levels on one scale, which matters for bidirectional signatures
such as EMT (epithelial genes down, mesenchymal genes up).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import scipy.sparse as sp

from ._kernels import weighted_sums
from .base import GeneSet, GeneStats

NEEDS_STATS = False


def needs_stats(*, zscore: bool = False) -> bool:
    return zscore


@dataclass(frozen=True)
class Prepared:
    weights: sp.csr_matrix  # gene × signature, float64
    offset: np.ndarray  # per-signature constant added to the weighted sums


def signed_weights(gene_set: GeneSet) -> tuple[np.ndarray, np.ndarray]:
    """Gene indices and weights ``w/sum(w)`` (up) and ``-w/sum(w)`` (down) of the mean score."""
    genes, weights = [], []
    for idx, w, sign in (
        (gene_set.up, gene_set.up_weights, 1.0),
        (gene_set.down, gene_set.down_weights, -1.0),
    ):
        if idx.size:
            genes.append(idx)
            weights.append(sign * np.asarray(w, dtype=np.float64) / np.sum(w, dtype=np.float64))
    return np.concatenate(genes), np.concatenate(weights)


def prepare(
    gene_sets: list[GeneSet], n_genes: int, stats: GeneStats | None, *, zscore: bool = False
) -> Prepared:
    rows, cols, vals = [], [], []
    offset = np.zeros(len(gene_sets), dtype=np.float64)
    if zscore:
        sd = stats.std
        inv_sd = np.divide(1.0, sd, out=np.zeros_like(sd), where=sd > 0)
        mean = stats.mean
    for s, gene_set in enumerate(gene_sets):
        genes, weights = signed_weights(gene_set)
        if zscore:
            offset[s] = -np.sum(weights * mean[genes] * inv_sd[genes])
            weights = weights * inv_sd[genes]
        rows.append(genes)
        cols.append(np.full(genes.size, s))
        vals.append(weights)
    matrix = sp.csr_matrix(
        (np.concatenate(vals), (np.concatenate(rows), np.concatenate(cols))),
        shape=(n_genes, len(gene_sets)),
    )
    matrix.sort_indices()
    return Prepared(weights=matrix, offset=offset)


def score_chunk(X: sp.csr_matrix, prepared: Prepared) -> np.ndarray:
    w = prepared.weights
    scores = np.zeros((X.shape[0], w.shape[1]), dtype=np.float64)
    weighted_sums(X.indptr, X.indices, X.data, w.indptr, w.indices, w.data, scores)
    scores += prepared.offset
    return scores
