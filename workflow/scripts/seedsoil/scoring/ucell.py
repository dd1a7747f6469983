"""UCell: a Mann-Whitney U statistic of the signature genes' ranks in each cell.

Reference: pyUCell 0.8.0 (``pyucell.compute_ucell_scores``, CPU path), itself following
Andreatta & Carmona, Comput Struct Biotechnol J 2021 (https://doi.org/10.1016/j.csbj.2021.06.043).
Definition, for one cell and one gene list of length ``L`` (present plus missing genes):

- only the cell's non-zero values are ranked, in decreasing order, ties by ``ties_method``
  (``"average"``: a tied group shares the mean of its positions); NaN counts as zero;
- a gene ranked above ``max_rank`` (a tied group is kept or dropped whole, by its shared
  rank), a gene that is zero in the cell and, with ``missing_genes="impute"``, a gene
  absent from the matrix all count as ``max_rank``; ``"skip"`` leaves missing genes out of ``L``;
- ``U = 1 - (R - L(L+1)/2) / (L * max_rank - L(L+1)/2)`` with ``R`` the sum of the ranks,
  evaluated in float32 as pyUCell does (0 when the denominator is 0 or ``L`` is 0);
- score = ``max(U_up - w_neg * U_down, 0)``; ``down`` genes are pyUCell's ``"gene-"`` genes.

Gene weights are not used (UCell is unweighted). A cell's score depends on its own row only.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

import numpy as np
import scipy.sparse as sp

from seedsoil.errors import InputError
from seedsoil.scoring import _rank
from seedsoil.scoring.base import GeneSet, GeneStats

NEEDS_STATS = False
log = logging.getLogger(__name__)
TIE_OFFSETS = {"average": 0.5, "min": 0.0, "max": 1.0}


@dataclass(frozen=True)
class PreparedUCell:
    """Gene lists as columns over a union of signature genes (``2 * n_sets`` columns: up, down)."""

    union_of_gene: np.ndarray  # gene index -> union index, -1 outside every signature
    col_ptr: np.ndarray  # column c has col_ptr[c + 1] - col_ptr[c] present genes
    gene_col_ptr: (
        np.ndarray
    )  # union gene u is in columns gene_cols[gene_col_ptr[u]:gene_col_ptr[u + 1]]
    gene_cols: np.ndarray
    n_missing: np.ndarray  # per column: missing genes imputed at max_rank
    length: np.ndarray  # per column: L of the U statistic
    max_rank: int
    tie_offset: float
    w_neg: float


def prepare(
    gene_sets: list[GeneSet],
    n_genes: int,
    stats: GeneStats | None = None,
    *,
    max_rank: int = 1500,
    w_neg: float = 1.0,
    missing_genes: str = "impute",
    ties_method: str = "average",
) -> PreparedUCell:
    """Column layout and constants for :func:`score_chunk` (option names and defaults as in pyUCell)."""
    if ties_method not in TIE_OFFSETS:
        raise InputError(f"ties_method must be one of {sorted(TIE_OFFSETS)}, got {ties_method!r}")
    if missing_genes not in ("impute", "skip"):
        raise InputError(f"missing_genes must be 'impute' or 'skip', got {missing_genes!r}")
    if isinstance(max_rank, str) or int(max_rank) != max_rank or max_rank < 1:
        raise InputError(
            f"max_rank must be a positive integer, got {max_rank!r} ('auto' is resolved from "
            "the data's depth by seedsoil.score: seedsoil.scoring.depth.resolve_max_rank)"
        )
    columns = []
    n_missing = []
    for gene_set in gene_sets:
        if np.any(np.asarray(gene_set.up_weights) != 1) or np.any(
            np.asarray(gene_set.down_weights) != 1
        ):
            log.warning(
                "ucell: signature %r: gene weights are not used (UCell is unweighted)",
                gene_set.name,
            )
        missing_up, missing_down = len(gene_set.missing_up), len(gene_set.missing_down)
        columns += [np.asarray(gene_set.up, np.int64), np.asarray(gene_set.down, np.int64)]
        n_missing += [missing_up, missing_down] if missing_genes == "impute" else [0, 0]
    union = np.unique(np.concatenate(columns)) if columns else np.empty(0, np.int64)
    union_of_gene = np.full(n_genes, -1, np.int64)
    union_of_gene[union] = np.arange(union.size)
    sizes = np.array([c.size for c in columns], np.int64)
    col_ptr = np.concatenate(([0], np.cumsum(sizes))).astype(np.int64)
    col_union = union_of_gene[np.concatenate(columns)] if columns else np.empty(0, np.int64)
    # the transpose of the column layout: for each union gene, the columns holding it
    col_of_entry = np.repeat(np.arange(sizes.size), sizes)
    order = np.argsort(col_union, kind="stable")
    gene_col_ptr = np.concatenate(([0], np.cumsum(np.bincount(col_union, minlength=union.size))))
    n_missing = np.array(n_missing, np.int64)
    return PreparedUCell(
        union_of_gene=union_of_gene,
        col_ptr=col_ptr,
        gene_col_ptr=gene_col_ptr.astype(np.int64),
        gene_cols=col_of_entry[order].astype(np.int64),
        n_missing=n_missing,
        length=sizes + n_missing,
        max_rank=int(max_rank),
        tie_offset=TIE_OFFSETS[ties_method],
        w_neg=float(w_neg),
    )


def u_statistic(rank_sum: np.ndarray, length: int, max_rank: int) -> np.ndarray:
    """pyUCell's normalisation of rank sums, in float32 operation for operation."""
    if length == 0:
        return np.zeros(rank_sum.shape, np.float32)
    s_min = length * (length + 1) / 2.0
    s_max = length * max_rank
    if s_max == s_min:
        return np.zeros(rank_sum.shape, np.float32)
    return np.float32(1.0) - (rank_sum.astype(np.float32) - np.float32(s_min)) / np.float32(
        s_max - s_min
    )


def score_chunk(X: sp.csr_matrix, prepared: PreparedUCell) -> np.ndarray:
    """UCell scores of the chunk's cells, ``(n_cells, n_sets)`` float64 (float32 values, as pyUCell)."""
    X = _rank.canonical_csr(X)
    data, bits = _rank.value_bits(X.data)
    rank_sums = _rank.ucell_rank_sums(
        X.indptr.astype(np.int64, copy=False),
        X.indices,
        data,
        bits,
        prepared.union_of_gene,
        prepared.col_ptr,
        prepared.gene_col_ptr,
        prepared.gene_cols,
        prepared.max_rank,
        prepared.tie_offset,
        _rank.table_size(X.indptr),
    )
    rank_sums += prepared.n_missing * float(prepared.max_rank)
    n_sets = prepared.length.size // 2
    scores = np.empty((X.shape[0], n_sets), np.float64)
    for s in range(n_sets):
        up = u_statistic(rank_sums[:, 2 * s], prepared.length[2 * s], prepared.max_rank)
        down = u_statistic(rank_sums[:, 2 * s + 1], prepared.length[2 * s + 1], prepared.max_rank)
        score = up - np.float32(prepared.w_neg) * down
        scores[:, s] = np.where(score < 0, np.float32(0.0), score)
    return scores
