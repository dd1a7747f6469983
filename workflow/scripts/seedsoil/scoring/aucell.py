"""AUCell: the area under a signature's recovery curve over each cell's top-ranked genes.

Reference: decoupler 2.2.0 ``decoupler.mt.aucell`` (Badia-i-Mompel et al., Bioinformatics
Advances 2022), itself after AUCell (Aibar et al., Nat Methods 2017,
https://doi.org/10.1038/nmeth.4463). Definition, as decoupler computes it:

- genes that are zero in every cell of the dataset are dropped (hence ``NEEDS_STATS``:
  :class:`GeneStats` ``nnz`` decides, over all cells, before any chunk is scored); the
  ``n_kept`` remaining genes are put in the order of ``numpy.random.default_rng(0).choice(
  n_kept, n_kept, replace=False)``, decoupler's fixed shuffle;
- in each cell the kept genes get ordinal ranks by decreasing value, ties (including all
  zeros) broken by that shuffled order (``scipy.stats.rankdata(-x, method="ordinal")``);
- ``n_up`` defaults to ``ceil(0.05 * n_kept)`` clipped to ``[2, n_kept]``, an explicit value
  is rounded up; it must satisfy ``1 < n_up <= n_kept``;
- for a set of ``k`` kept genes of which ``p`` have ranks ``r_1..r_p <= n_up``, the AUC is
  ``(p * n_up - sum r_i) / max_auc`` with ``max_auc = m(m-1)/2 + m(n_up - m)``,
  ``m = min(k, n_up - 1)`` — the area normalised by that of a set ranked first;
- sets with fewer than ``tmin`` kept genes get NaN (decoupler leaves them out; here a
  warning names each such set: on a targeted panel a signature often has fewer than 5 genes).

Only ``up`` genes form the set: AUCell has no direction and decoupler's aucell ignores
weights, so ``down`` genes and weights are not used. Cells without any non-zero kept value
get NaN (decoupler drops such cells). Stored zeros are zeros here; decoupler's filter counts
stored entries, so the two differ only on a matrix whose all-zero gene or cell has an
explicitly stored 0. A cell's score depends on the other cells only through
which genes are all-zero in the whole dataset: with the same statistics it is the same
whatever chunk holds the cell.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

import numpy as np
import scipy.sparse as sp

from seedsoil.errors import InputError
from seedsoil.scoring import _rank
from seedsoil.scoring.base import GeneSet, GeneStats
from seedsoil.scoring.stats import gene_detection

NEEDS_STATS = True
stats_pass = gene_detection  # prepare reads only GeneStats.nnz
log = logging.getLogger(__name__)
SHUFFLE_SEED = 0  # decoupler.pp.data._break_ties: default_rng(seed=0), not an option there


@dataclass(frozen=True)
class PreparedAUCell:
    pos_of_gene: np.ndarray  # gene index -> position in the shuffled kept genes, -1 if dropped
    n_kept: int
    union_of_gene: np.ndarray  # gene index -> union index, -1 outside every set
    union_pos: np.ndarray  # positions of the union genes, increasing
    col_ptr: np.ndarray  # column c has col_ptr[c + 1] - col_ptr[c] genes
    gene_col_ptr: (
        np.ndarray
    )  # union gene u is in columns gene_cols[gene_col_ptr[u]:gene_col_ptr[u + 1]]
    gene_cols: np.ndarray
    n_up: int
    max_auc: np.ndarray  # per set; NaN for sets below tmin


def shuffled_positions(nnz: np.ndarray) -> np.ndarray:
    """Position of each gene in decoupler's shuffled order of the non-empty genes; -1 for empty genes."""
    kept = np.flatnonzero(np.asarray(nnz) > 0)
    order = np.random.default_rng(seed=SHUFFLE_SEED).choice(
        np.arange(kept.size), kept.size, replace=False
    )
    pos_of_gene = np.full(np.asarray(nnz).size, -1, np.int64)
    pos_of_gene[kept[order]] = np.arange(kept.size)
    return pos_of_gene


def resolve_n_up(n_kept: int, n_up: int | float | None) -> int:
    """decoupler's ``n_up``: 5 % of the kept genes by default, at least 2."""
    if n_up is None:
        n_up = int(np.clip(np.ceil(0.05 * n_kept), a_min=2, a_max=n_kept))
    else:
        n_up = int(np.ceil(n_up))
    if not n_kept >= n_up > 1:
        raise InputError(
            f"n_up={n_up} must be greater than 1 and at most the {n_kept} non-empty genes"
        )
    return n_up


def max_auc(k: int, n_up: int) -> float:
    """AUC of a ``k``-gene set whose genes hold the top ranks (decoupler's normaliser)."""
    m = min(k, n_up - 1)
    return float(m * (m - 1) // 2 + m * (n_up - m)) if m > 0 else np.nan


def prepare(
    gene_sets: list[GeneSet],
    n_genes: int,
    stats: GeneStats | None,
    *,
    n_up: int | float | None = None,
    tmin: int | float = 5,
) -> PreparedAUCell:
    """Gene filter, shuffled order and per-set normalisers from the dataset-wide ``stats``."""
    if stats is None:
        raise ValueError("aucell needs dataset-wide GeneStats (NEEDS_STATS = True)")
    for gene_set in gene_sets:
        if gene_set.down.size:
            log.warning(
                "aucell: signature %r: its %d down gene(s) are not used (AUCell has no direction)",
                gene_set.name,
                gene_set.down.size,
            )
        if np.any(np.asarray(gene_set.up_weights) != 1):
            log.warning(
                "aucell: signature %r: gene weights are not used (AUCell is unweighted)",
                gene_set.name,
            )
    pos_of_gene = shuffled_positions(stats.nnz)
    n_kept = int((pos_of_gene >= 0).sum())
    n_up = resolve_n_up(n_kept, n_up)
    members = [
        np.asarray(s.up, np.int64)[pos_of_gene[np.asarray(s.up, np.int64)] >= 0] for s in gene_sets
    ]
    for gene_set, m in zip(gene_sets, members, strict=True):
        if m.size < tmin:  # decoupler drops such sets silently; here the NaN column is named
            log.warning(
                "aucell: signature %r: %d of its up genes are detected in the data, fewer than "
                "tmin=%s: it gets NaN in every cell (%s)",
                gene_set.name,
                m.size,
                tmin,
                "none is non-zero in any cell" if m.size == 0 else "lower tmin, or use ucell",
            )
    members = [m if m.size >= tmin else m[:0] for m in members]
    union = np.unique(np.concatenate(members)) if members else np.empty(0, np.int64)
    union = union[np.argsort(pos_of_gene[union])]
    union_of_gene = np.full(n_genes, -1, np.int64)
    union_of_gene[union] = np.arange(union.size)
    sizes = np.array([m.size for m in members], np.int64)
    col_union = union_of_gene[np.concatenate(members)] if members else np.empty(0, np.int64)
    # the transpose of the column layout: for each union gene, the columns holding it
    col_of_entry = np.repeat(np.arange(sizes.size), sizes)
    order = np.argsort(col_union, kind="stable")
    gene_col_ptr = np.concatenate(([0], np.cumsum(np.bincount(col_union, minlength=union.size))))
    return PreparedAUCell(
        pos_of_gene=pos_of_gene,
        n_kept=n_kept,
        union_of_gene=union_of_gene,
        union_pos=pos_of_gene[union],
        col_ptr=np.concatenate(([0], np.cumsum(sizes))).astype(np.int64),
        gene_col_ptr=gene_col_ptr.astype(np.int64),
        gene_cols=col_of_entry[order].astype(np.int64),
        n_up=n_up,
        max_auc=np.array([max_auc(k, n_up) if k > 0 else np.nan for k in sizes]),
    )


def score_chunk(X: sp.csr_matrix, prepared: PreparedAUCell) -> np.ndarray:
    """AUCell scores of the chunk's cells, ``(n_cells, n_sets)`` float64."""
    X = _rank.canonical_csr(X)
    data, bits = _rank.value_bits(X.data)
    return _rank.ordinal_auc(
        X.indptr.astype(np.int64, copy=False),
        X.indices,
        data,
        bits,
        prepared.pos_of_gene,
        prepared.n_kept,
        prepared.union_of_gene,
        prepared.union_pos,
        prepared.col_ptr,
        prepared.gene_col_ptr,
        prepared.gene_cols,
        prepared.n_up,
        prepared.max_auc,
        _rank.table_size(X.indptr),
    )
