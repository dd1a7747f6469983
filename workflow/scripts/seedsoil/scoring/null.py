"""Calibrated significance of the mean score against expression-matched random signatures.

For a signature with ``k`` up and ``l`` down genes, a null signature replaces every gene
by a random gene of the same expression bin (scanpy's 25 bins by dataset-wide mean, see
:func:`seedsoil.scoring.scanpy.expression_bins`), all ``k + l`` replacements distinct,
keeping each gene's weight and direction. ``n_null`` null signatures per signature are
drawn from ``numpy.random.default_rng(random_state)``. The statistic is the (weighted)
mean score of :mod:`seedsoil.scoring.mean`. Per cell, with ``G = #{null > observed}`` and
``E = #{null == observed}``,

    p = (1 + G + K) / (n_null + 1),    K = floor(U * (E + 1)),

with ``U`` uniform on (0, 1), so ``K`` is uniform on ``{0, ..., E}``: ``(n_null + 1) p`` is
the observed score's rank among itself and its nulls, largest first, ties in random order.
Under exchangeability of the observed signature with its nulls ("this cell expresses the
signature's genes no more than random genes of the same expression levels"; replacements
are drawn from the whole bin, the signature's own genes included) that rank is uniform on
``1 .. n_null + 1`` whatever the ties, so ``P(p <= a) <= a`` with equality on the grid, and
``p >= 1 / (n_null + 1)`` (Phipson & Smyth 2010: never zero, no resolution beyond the
nulls). Why randomised: a cell detecting few genes ties with many nulls (all-zero ones above
all). Counting ties against the signature, ``(1 + G + E) / (n_null + 1)``, is valid but the
more conservative the shallower the cell, so the p-values of *random* gene sets fell with
depth (Spearman rho of the cells' mean over random sets with genes detected -0.40 to -0.74
on three real data sets) and deep cells reached significance more easily for any
signature. Breaking ties at random places a tied cell evenly over its tie block instead.
``U`` is a deterministic hash of (cell name, signature name, ``random_state``)
(:func:`tie_uniforms`): a cell gets the same p-value whatever chunk, cell-range job or
thread count computes it.

A call needs expression. A cell that detects none of the signature's up genes, or whose
observed score does not exceed the median of its null scores (at least half the nulls are
``>=`` it), gets ``max(p, 1/2)``: only the coin flip, not the cell's expression, could
have put such a cell below one half, and ``1/2`` keeps it unselectable at any FDR level
used for calls. Not ``1``: shallow cells express none of a signature's genes more often,
so ``1`` would reintroduce the depth dependence removed above (the p-values stay valid
either way: ``P(p <= a) <= a``). Observed and null scores come from one sparse product
(gene × (signatures · (n_null + 1)) weights) evaluated cell by cell, so no cells × nulls
matrix is ever held. FDR: Benjamini–Hochberg across the cells of each signature.

**Floor extension** (a two-stage sequential Monte Carlo p-value; Besag & Clifford 1991,
Biometrika 78:301). With ``n_null`` nulls no p-value goes below ``1 / (n_null + 1)``, and BH
over ``m`` cells then calls nothing in a population smaller than ``m / (alpha (n_null + 1))``
cells (2 % of a sample for 1000 nulls: rare CTCs). A cell with ``G + K < h``
(:data:`FLOOR_EXCEEDANCES`, at most ``(n_null + 1) / 2``) that is not raised to ``1/2``
(above) gets ``p = (1 + G' + K') / (n_null_max + 1)`` instead, ``G'``, ``E'`` counted over the
first ``n_null`` nulls and ``n_null_max - n_null`` more (default ``n_null_max = 20 n_null``),
``K' = floor(U (E' + 1))`` with the same ``U``. Valid, ``P(p <= a) <= a`` for every ``a``:
each stage's p-value is valid alone, an extended cell's first-stage p-value is at most
``h / (n_null + 1)`` and every other cell's final one at least that. A cell not extended
keeps its ``n_null``-null p-value exactly. Cost: an extended cell meets ``n_null_max -
n_null`` more nulls, so a signature that many cells truly express costs up to
``n_null_max / n_null`` times its first-stage time. The extra nulls of set ``s`` come from ``default_rng(SeedSequence(random_state,
spawn_key=(s,)))``, drawn only for a set with floor cells (once per :class:`Prepared`, then
reused for every block of cells: :func:`cached_extension_weights`) and evaluated only on those
rows.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field

import numpy as np
import scipy.sparse as sp

from ..errors import InputError
from ._kernels import null_tail_counts
from .base import GeneSet, GeneStats
from .mean import signed_weights
from .scanpy import expression_bins

NEEDS_STATS = True
FLOOR_EXCEEDANCES = 10  # h: a p-value with fewer nulls at or above it is resolved further
EXTENSION_FACTOR = 20  # default n_null_max = 20 n_null
#: Bytes of extension weights (:func:`extension_weights`) one :class:`Prepared` keeps between
#: blocks of cells. Building a set's extension (19,000 null draws for ``n_null`` 1000) costs
#: more than evaluating a 20,000-cell block's floor cells against it, and the draws are the same
#: for every block; the shipped library's 39 sets need ~150 MB in all. Sets beyond the budget
#: are rebuilt per block (same values, only slower).
EXTENSION_CACHE_BYTES = 256 * 2**20


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
    up_members: sp.csr_matrix  # gene × n_sets: 1 where the gene is an up gene of the set
    has_up: np.ndarray  # per set: whether it has up genes (the expression rule needs one)
    set_names: tuple[str, ...]
    n_sets: int
    n_null: int
    random_state: int
    gene_sets: tuple[GeneSet, ...]  # for the floor extension's draws
    cuts: np.ndarray  # expression bin of every gene
    n_null_max: int  # nulls per set a floor cell is compared with (n_null: no extension)
    # set index -> its extension_weights, filled by cached_extension_weights
    extensions: dict = field(default_factory=dict, compare=False, repr=False)


def prepare(
    gene_sets: list[GeneSet],
    n_genes: int,
    stats: GeneStats,
    *,
    n_null: int = 1000,
    random_state: int = 0,
    n_bins: int = 25,
    n_null_max: int | None = None,
) -> Prepared:
    """The observed and first ``n_null`` null weights of every set; ``n_null_max`` (default
    ``EXTENSION_FACTOR * n_null``) bounds the floor extension (:func:`extend_floor`)."""
    n_null_max = EXTENSION_FACTOR * n_null if n_null_max is None else int(n_null_max)
    if n_null_max < n_null:
        raise InputError(f"n_null_max ({n_null_max}) must be at least n_null ({n_null})")
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
    ups = [np.asarray(gene_set.up, np.int64) for gene_set in gene_sets]
    up_members = sp.csr_matrix(
        (
            np.ones(sum(u.size for u in ups)),
            (
                np.concatenate(ups) if ups else np.empty(0, np.int64),
                np.repeat(np.arange(n_sets), [u.size for u in ups]),
            ),
        ),
        shape=(n_genes, n_sets),
    )
    up_members.sort_indices()
    return Prepared(
        weights=matrix,
        up_members=up_members,
        has_up=np.array([u.size > 0 for u in ups], dtype=bool),
        set_names=tuple(gene_set.name for gene_set in gene_sets),
        n_sets=n_sets,
        n_null=n_null,
        random_state=int(random_state),
        gene_sets=tuple(gene_sets),
        cuts=cuts,
        n_null_max=n_null_max,
    )


@dataclass(frozen=True)
class TailCounts:
    """Per cell × set: observed mean score, #{null > it}, #{null == it}, any up gene detected."""

    observed: np.ndarray
    greater: np.ndarray
    equal: np.ndarray
    up_detected: np.ndarray


def tail_counts(X: sp.csr_matrix, prepared: Prepared) -> TailCounts:
    """The observed mean scores of the rows of ``X`` and where their nulls fall."""
    w, m = prepared.weights, prepared.up_members
    return TailCounts(
        *null_tail_counts(
            X.indptr,
            X.indices,
            X.data,
            w.indptr,
            w.indices,
            w.data,
            m.indptr,
            m.indices,
            prepared.n_sets,
            prepared.n_null,
        )  # fmt: skip
    )


def _hash64(text: str) -> int:
    return int.from_bytes(hashlib.blake2b(text.encode(), digest_size=8).digest(), "little")


def tie_uniforms(cell_names, set_names, random_state: int) -> np.ndarray:
    """(cells × sets) numbers in (0, 1), a deterministic function of (cell name, set name, seed).

    Each name is hashed (BLAKE2b, 64 bits); the pair is combined and passed through the
    splitmix64 finaliser, whose top 53 bits give ``(k + 1/2) / 2**53``. Uniform for
    practical purposes and identical for a cell in any chunk or job.
    """
    seed = np.uint64(_hash64(f"seedsoil-ties:{int(random_state)}"))
    cells = np.array([_hash64(str(name)) for name in cell_names], dtype=np.uint64)
    sets = np.array([_hash64(str(name)) for name in set_names], dtype=np.uint64)
    z = cells[:, None] ^ (sets[None, :] * np.uint64(0x9E3779B97F4A7C15)) ^ seed
    z = (z ^ (z >> np.uint64(30))) * np.uint64(0xBF58476D1CE4E5B9)
    z = (z ^ (z >> np.uint64(27))) * np.uint64(0x94D049BB133111EB)
    z = z ^ (z >> np.uint64(31))
    return ((z >> np.uint64(11)).astype(np.float64) + 0.5) / 2.0**53


def tie_ranks(equal: np.ndarray, uniforms: np.ndarray) -> np.ndarray:
    """``K = floor(U (E + 1))``, uniform on ``{0, ..., E}`` (capped at ``E`` against rounding)."""
    return np.minimum(np.floor(uniforms * (equal + 1.0)), equal)


def without_expression(counts: TailCounts, n_null: int, has_up) -> np.ndarray:
    """Cells × sets where the p-value is raised to ``1/2``: no up gene detected where the set
    has some, or the observed score not above the null median."""
    not_above_median = 2 * (counts.greater + counts.equal) >= n_null
    return not_above_median | (~counts.up_detected & np.asarray(has_up, dtype=bool)[None, :])


def randomised_pvalues(counts: TailCounts, uniforms: np.ndarray, n_null: int, has_up) -> np.ndarray:
    """``(1 + G + floor(U (E + 1))) / (n_null + 1)``, then ``max(p, 1/2)`` for cells without
    expression (:func:`without_expression`)."""
    p = (1.0 + counts.greater + tie_ranks(counts.equal, uniforms)) / (n_null + 1.0)
    return np.where(without_expression(counts, n_null, has_up), np.maximum(p, 0.5), p)


def extension_weights(prepared: Prepared, s: int) -> tuple[sp.csr_matrix, sp.csr_matrix]:
    """Set ``s``'s weights (column 0) and its ``n_null_max - n_null`` extension nulls, and its
    up-gene indicator (one column). The nulls are drawn as in :func:`prepare`, from a
    generator seeded by (``random_state``, ``s``) alone, so they are the same for any chunk
    or job and built only for a set that has floor cells; drawn ``n_null`` at a time so the
    draws never need more memory than :func:`prepare`'s."""
    gene_set = prepared.gene_sets[s]
    genes, weights = signed_weights(gene_set)
    n_extra = prepared.n_null_max - prepared.n_null
    rng = np.random.default_rng(np.random.SeedSequence(prepared.random_state, spawn_key=(s,)))
    batches = [
        matched_nulls(genes, prepared.cuts, min(prepared.n_null, n_extra - done), rng)
        for done in range(0, n_extra, prepared.n_null)
    ]
    nulls = np.concatenate(batches)
    n_genes = prepared.weights.shape[0]
    matrix = sp.csr_matrix(
        (
            np.concatenate([weights, np.tile(weights, n_extra)]),
            (
                np.concatenate([genes, nulls.ravel()]),
                np.concatenate(
                    [np.zeros(genes.size, np.int64), np.repeat(1 + np.arange(n_extra), genes.size)]
                ),
            ),
        ),
        shape=(n_genes, 1 + n_extra),
    )
    matrix.sort_indices()
    return matrix, prepared.up_members[:, [s]].tocsr()


def _nbytes(matrix: sp.csr_matrix) -> int:
    return matrix.data.nbytes + matrix.indices.nbytes + matrix.indptr.nbytes


def cached_extension_weights(
    prepared: Prepared, s: int, budget: int | None = None
) -> tuple[sp.csr_matrix, sp.csr_matrix]:
    """:func:`extension_weights` of set ``s``, built once per ``prepared`` and kept in
    ``prepared.extensions`` while all kept extensions fit in ``budget`` bytes (default
    :data:`EXTENSION_CACHE_BYTES`); beyond it they are rebuilt at every call. The result is
    the same either way: the draws depend on (``random_state``, ``s``) alone."""
    if s in prepared.extensions:
        return prepared.extensions[s]
    built = extension_weights(prepared, s)
    budget = EXTENSION_CACHE_BYTES if budget is None else budget
    kept = sum(_nbytes(w) + _nbytes(m) for w, m in prepared.extensions.values())
    if kept + _nbytes(built[0]) + _nbytes(built[1]) <= budget:
        prepared.extensions[s] = built
    return built


def extend_floor(
    X: sp.csr_matrix,
    prepared: Prepared,
    counts: TailCounts,
    uniforms: np.ndarray,
    pvalues: np.ndarray,
) -> np.ndarray:
    """``pvalues`` with every floor cell's recomputed against ``n_null_max`` nulls.

    A floor cell of set ``s`` has ``G + K < h`` (``h`` = :data:`FLOOR_EXCEEDANCES`, at most
    ``(n_null + 1) / 2``) and expression (not raised to ``1/2``). Its p-value becomes
    ``(1 + G' + K') / (n_null_max + 1)`` with ``G'``, ``E'`` counted over the first
    ``n_null`` nulls and the extension together and ``K' = floor(U (E' + 1))``, the same
    ``U``. Only those rows are evaluated against the extension, one set at a time.
    """
    if prepared.n_null_max <= prepared.n_null:
        return pvalues
    h = min(FLOOR_EXCEEDANCES, (prepared.n_null + 1) // 2)
    rank = counts.greater + tie_ranks(counts.equal, uniforms)
    floor = (rank < h) & ~without_expression(counts, prepared.n_null, prepared.has_up)
    out = pvalues.copy()
    for s in np.flatnonzero(floor.any(axis=0)):
        rows = np.flatnonzero(floor[:, s])
        sub = X[rows]
        w, m = cached_extension_weights(prepared, s)
        _, greater, equal, _ = null_tail_counts(
            sub.indptr, sub.indices, sub.data, w.indptr, w.indices, w.data,
            m.indptr, m.indices, 1, prepared.n_null_max - prepared.n_null,
        )  # fmt: skip
        greater = counts.greater[rows, s] + greater[:, 0]
        equal = counts.equal[rows, s] + equal[:, 0]
        ranks = greater + tie_ranks(equal, uniforms[rows, s])
        out[rows, s] = (1.0 + ranks) / (prepared.n_null_max + 1.0)
    return out


def cell_pvalues(X: sp.csr_matrix, prepared: Prepared, cell_names) -> np.ndarray:
    """Cells × signatures randomised empirical p-values of the rows of ``X`` (named
    ``cell_names``), as defined in the module docstring."""
    if len(cell_names) != X.shape[0]:
        raise ValueError(f"{len(cell_names)} cell names for {X.shape[0]} rows")
    counts = tail_counts(X, prepared)
    uniforms = tie_uniforms(cell_names, prepared.set_names, prepared.random_state)
    pvalues = randomised_pvalues(counts, uniforms, prepared.n_null, prepared.has_up)
    return extend_floor(X, prepared, counts, uniforms, pvalues)


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
