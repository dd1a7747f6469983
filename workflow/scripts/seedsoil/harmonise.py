"""Harmonise a matrix read by :mod:`seedsoil.io` to the AnnData convention of docs/architecture.md.

Counts layer, ``log1p`` of counts per 10,000 in ``X``, detected input scale, gene symbols,
folder-safe sample names, the ``obs`` convention columns, an embedding and ``uns["seedsoil"]``.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable
from dataclasses import dataclass

import anndata as ad
import numpy as np
import pandas as pd
import scipy.sparse as sp

from seedsoil.errors import InputError
from seedsoil.names import convention_obs, duplicate_merge, gene_var, resolve_gene_names
from seedsoil.qc import cell_metrics, mito_genes

log = logging.getLogger(__name__)

# ---------------------------------------------------------------- harmonise: input checks

#: Largest per-cell sum of expm1(values) a log-normalised matrix can hold. log1p(x / total ×
#: target) gives every cell a sum of expm1 of exactly ``target`` over all genes (less over a
#: subset); the largest target in use is 1e6 (CPM), and 1% allows for stored rounding. Non-integer
#: values that are not logged (estimated counts, TPM) give sums of e^max: far above it.
LOG_NORMALISED_TOTAL_MAX = 1.01e6
#: Values within this distance of an integer count as integers (CSV round-trips give 3.00000000000001).
INTEGER_TOLERANCE = 1e-4
EMBEDDING_KEYS = ("X_umap", "X_umap_orig", "X_tsne")


def counts_not_found(counts: str, source_label: str, has_raw: bool, layers) -> InputError:
    """The error for a sheet ``counts`` value naming a matrix the input does not have."""
    if counts == "raw":
        return InputError(
            f"{source_label}: counts is 'raw' but the file has no .raw; use X or a layer."
        )
    return InputError(
        f"{source_label}: counts {counts!r} not found; use X, raw (has .raw: {has_raw}) "
        f"or layer:NAME with NAME one of {list(layers)}."
    )


def select_counts(adata: ad.AnnData, counts: str, source_label: str):
    """The matrix named by ``counts`` (``X``, ``raw`` or ``layer:NAME``) as float64 CSR, and its gene names."""
    if counts == "X":
        matrix, genes = adata.X, adata.var_names
    elif counts == "raw" and adata.raw is not None:
        matrix, genes = adata.raw.X, adata.raw.var_names
    elif counts.startswith("layer:") and counts[6:] in adata.layers:
        matrix, genes = adata.layers[counts[6:]], adata.var_names
    else:
        raise counts_not_found(counts, source_label, adata.raw is not None, adata.layers.keys())
    return sp.csr_matrix(matrix, dtype=np.float64), np.asarray(genes, dtype=str)


def _first_position(matrix: sp.csr_matrix, mask: np.ndarray) -> tuple[int, int]:
    """(row, column) of the first stored entry of ``matrix`` selected by ``mask`` over ``.data``."""
    entry = int(np.flatnonzero(mask)[0])
    row = int(np.searchsorted(matrix.indptr, entry, side="right") - 1)
    return row, int(matrix.indices[entry])


def check_finite(
    matrix: sp.csr_matrix, cells, genes, where: str, source_label: str, row_offset: int = 0
) -> None:
    """:class:`InputError` if ``matrix`` holds NaN or Inf, naming how many and the first cell/gene.

    ``matrix`` may be a block of rows starting at row ``row_offset`` of ``cells``.
    """
    bad = ~np.isfinite(matrix.data)
    if bad.any():
        row, col = _first_position(matrix, bad)
        rows = np.unique(np.searchsorted(matrix.indptr, np.flatnonzero(bad), side="right") - 1)
        row += row_offset
        raise InputError(
            f"{source_label}: {where} holds {int(bad.sum())} NaN/Inf values in {rows.size} cells "
            f"(first: cell {cells[row]!r} (row {row + 1}), gene {genes[col]!r}); expression values "
            "must be finite numbers. Fix or remove those cells/genes in the file."
        )


class ScaleTally:
    """What the stored values seen so far say about their scale (:meth:`scale`), block by block."""

    def __init__(self) -> None:
        self.n_values = 0
        self.min_value = np.inf
        self.max_value = -np.inf
        self.all_integer = True
        #: Largest per-cell sum of expm1(values): what a cell's total would be if they were logs.
        self.max_expm1_total = 0.0

    def add(self, block: sp.csr_matrix) -> None:
        """Tally a block of cells (rows)."""
        data = block.data
        if data.size == 0:
            return
        self.n_values += data.size
        self.min_value = min(self.min_value, float(data.min()))
        self.max_value = max(self.max_value, float(data.max()))
        if self.all_integer:
            self.all_integer = bool(np.all(np.abs(data - np.rint(data)) <= INTEGER_TOLERANCE))
        if not self.all_integer and self.max_expm1_total <= LOG_NORMALISED_TOTAL_MAX:
            starts = block.indptr[:-1][np.diff(block.indptr) > 0]  # rows with stored values
            with np.errstate(over="ignore"):
                totals = np.add.reduceat(np.expm1(data.astype(np.float64)), starts)
            self.max_expm1_total = max(self.max_expm1_total, float(totals.max()))

    def scale(self) -> str:
        """``"scaled"`` (any negative), ``"counts"`` (all integers within
        :data:`INTEGER_TOLERANCE`), ``"log-normalised"`` (non-integer, every cell's sum of
        expm1 at most :data:`LOG_NORMALISED_TOTAL_MAX`) or ``"normalised"`` (other non-integer
        values: TPM, CPM, estimated counts)."""
        if self.n_values == 0:
            return "counts"
        if self.min_value < 0:
            return "scaled"
        if self.all_integer:
            return "counts"
        if self.max_expm1_total <= LOG_NORMALISED_TOTAL_MAX:
            return "log-normalised"
        return "normalised"


def detect_scale(matrix: sp.csr_matrix) -> str:
    """The scale of ``matrix``'s stored values (:meth:`ScaleTally.scale`)."""
    tally = ScaleTally()
    tally.add(sp.csr_matrix(matrix))
    return tally.scale()


def _refuse_negative(
    matrix, cells, genes, counts, source_label, *, has_raw: bool, layers, row_offset: int = 0
) -> None:
    negative = matrix.data < 0
    row, col = _first_position(matrix, negative)
    row += row_offset
    first = (
        f"{int(negative.sum())} negative values (first: {matrix.data[negative][0]:.3g} at cell "
        f"{cells[row]!r} (row {row + 1}), gene {genes[col]!r})"
    )
    if np.all(np.abs(matrix.data - np.rint(matrix.data)) <= INTEGER_TOLERANCE):
        raise InputError(
            f"{source_label}: {counts} holds integer values with {first}; counts must be ≥ 0. "
            "The file is corrupt or these are not counts: check it."
        )
    if counts == "X" and has_raw:
        hint = "The file has .raw: set the sheet's counts column to raw."
    elif layers:
        hint = f"Set the counts column to one of: {', '.join('layer:' + k for k in layers)}."
    else:
        hint = "Provide raw counts or log-normalised values instead."
    raise InputError(
        f"{source_label}: {counts} holds {first}: this looks like scaled (z-scored) data, which "
        f"cannot be scored because expression levels are no longer comparable between genes. {hint}"
    )


# ---------------------------------------------------------------- harmonise: values


def log_normalise(linear: sp.csr_matrix, target_sum: float = 1e4) -> sp.csr_matrix:
    """``log1p(value / cell total * target_sum)`` per cell as float32 CSR (the convention's ``X``).

    Computed in float64 on the stored values, so the sparsity structure (and index order) of
    ``linear`` is kept exactly; all-zero cells stay zero.
    """
    linear = sp.csr_matrix(linear)
    totals = np.asarray(linear.sum(axis=1), dtype=np.float64).ravel()
    factors = np.divide(target_sum, totals, out=np.zeros_like(totals), where=totals > 0)
    # one float64 copy, scaled and transformed in place: the same operations as
    # log1p(data * factor), without a temporary per step
    data = linear.data.astype(np.float64)
    data *= np.repeat(factors, np.diff(linear.indptr))
    np.log1p(data, out=data)
    return sp.csr_matrix(
        (data.astype(np.float32), linear.indices.copy(), linear.indptr.copy()), shape=linear.shape
    )


def harmonise_block(
    values: sp.csr_matrix, scale: str, merge: sp.csr_matrix | None
) -> tuple[sp.csr_matrix, sp.csr_matrix | None]:
    """``(X, counts layer or None)`` of a block of cells' input values on ``scale``.

    Counts are rounded, log-normalised values taken back to the linear scale, duplicated genes
    summed there (``merge`` from :func:`duplicate_merge`), then ``X`` is ``log1p(CP10k)``
    (:func:`log_normalise`), or ``log1p`` of the linear values for log-normalised input.
    ``values`` is not modified.
    """
    data = values.data.astype(np.float64)  # a copy, rounded or exponentiated in place
    if scale == "counts":
        np.rint(data, out=data)
    elif scale == "log-normalised":
        np.expm1(data, out=data)
    linear = sp.csr_matrix((data, values.indices.copy(), values.indptr.copy()), shape=values.shape)
    linear.eliminate_zeros()
    if merge is not None:
        linear = sp.csr_matrix(linear @ merge)
    if scale == "log-normalised":
        X = linear.copy()
        X.data = np.log1p(X.data)
        X = sp.csr_matrix(X, dtype=np.float32)
    else:
        X = log_normalise(linear)
    return X, sp.csr_matrix(linear, dtype=np.float32) if scale == "counts" else None


@dataclass
class HarmonisePlan:
    """What harmonising a dataset needs before reading its values: the convention's ``obs``,
    the gene symbols and duplicate merge, warnings so far, and the input's own embedding."""

    obs: pd.DataFrame
    input_genes: np.ndarray
    symbols: np.ndarray
    var: pd.DataFrame
    merge: sp.csr_matrix | None
    warnings: list[str]
    embedding: tuple[np.ndarray, str] | None
    counts: str
    source_label: str
    has_raw: bool
    layers: list[str]


def plan_harmonisation(
    obs: pd.DataFrame,
    var: pd.DataFrame,
    obsm,
    *,
    input_genes,
    has_raw: bool,
    layers,
    dataset: str,
    sample_key: str | None = None,
    cell_type_key: str | None = None,
    condition_key: str | None = None,
    condition: str = "NA",
    species: str = "human",
    gene_id: str = "symbol",
    counts: str = "X",
    source_label: str = "input",
    embedding: str | None = None,
) -> HarmonisePlan:
    """The :class:`HarmonisePlan` of an input from its ``obs``, ``var`` (of the counts matrix),
    ``obsm`` and the names of the counts matrix's genes (:func:`harmonise` explains each step)."""
    obs_out, warnings = convention_obs(
        obs, dataset=dataset, sample_key=sample_key, cell_type_key=cell_type_key,
        condition_key=condition_key, condition=condition, source_label=source_label,
    )  # fmt: skip
    genes = np.asarray(input_genes, dtype=str)
    symbols, gene_warnings = resolve_gene_names(genes, gene_id, species, var, source_label)
    merge, unique_symbols, duplicate_warnings = duplicate_merge(symbols)
    return HarmonisePlan(
        obs=obs_out,
        input_genes=genes,
        symbols=unique_symbols,
        var=gene_var(genes, symbols, unique_symbols, var),
        merge=merge,
        warnings=gene_warnings + warnings + duplicate_warnings,
        embedding=_dataset_embedding(obsm, embedding, source_label),
        counts=counts,
        source_label=source_label,
        has_raw=has_raw,
        layers=list(layers),
    )


@dataclass
class HarmonisedValues:
    """What :func:`harmonise_rows` learnt from the values: the scale, the largest stored value,
    per-cell QC metrics and the ``X`` rows of the cells chosen for a computed embedding."""

    scale: str
    max_value: float
    max_expm1_total: float
    metrics: dict[str, np.ndarray]
    embedding_rows: sp.csr_matrix | None


def harmonise_rows(
    read_blocks: Callable[[], Iterable[tuple[int, sp.csr_matrix]]],
    plan: HarmonisePlan,
    sink,
    *,
    embedding_cells: np.ndarray | None = None,
) -> HarmonisedValues:
    """Harmonise an input's values block of rows by block (:func:`harmonise_block`).

    ``read_blocks()`` yields ``(first row, CSR block)`` over all cells in order; each harmonised
    block goes to ``sink.append(X, counts, metrics)`` with its QC metrics
    (:func:`seedsoil.qc.cell_metrics`). The scale is that of the first block unless the
    whole input says otherwise (:class:`ScaleTally`): then the pass is repeated with the right
    scale after ``sink.start()``, so the result equals classifying all values first. NaN/Inf and
    negative values raise :class:`InputError` naming the first cell and gene. ``X`` rows of
    ``embedding_cells`` (sorted row numbers; all cells if None and no dataset embedding) are kept.
    """
    scale = None
    mito = mito_genes(plan.symbols)
    cells = plan.obs.index
    while True:
        tally = ScaleTally()
        sink.start()
        metrics, kept = [], []
        for start, block in read_blocks():
            check_finite(block, cells, plan.input_genes, plan.counts, plan.source_label, start)
            tally.add(block)
            if tally.min_value < 0:
                _refuse_negative(
                    block, cells, plan.input_genes, plan.counts, plan.source_label,
                    has_raw=plan.has_raw, layers=plan.layers, row_offset=start,
                )  # fmt: skip
            scale = scale or detect_scale(block)
            X, counts = harmonise_block(block, scale, plan.merge)
            metrics.append(cell_metrics(counts, X, mito))
            sink.append(X, counts, metrics[-1])
            if plan.embedding is None and embedding_cells is None:
                kept.append(X)
            elif plan.embedding is None:
                rows = embedding_cells[
                    (embedding_cells >= start) & (embedding_cells < start + X.shape[0])
                ]
                kept.append(X[rows - start])
        if tally.scale() == (scale or "counts"):
            break
        log.info("%s: values are %s, not %s as the first rows suggested: harmonising again",
                 plan.source_label, tally.scale(), scale)  # fmt: skip
        scale = tally.scale()
    return HarmonisedValues(
        scale=scale or "counts",
        max_value=tally.max_value,
        max_expm1_total=tally.max_expm1_total,
        metrics={name: np.concatenate([m[name] for m in metrics]) for name in metrics[0]}
        if metrics
        else {},
        embedding_rows=sp.vstack(kept, format="csr") if kept else None,
    )


def _scale_warning(
    scale: str, max_value: float, totals: np.ndarray, counts: str, max_expm1_total: float
) -> list[str]:
    if scale == "normalised":
        why = (
            f"; not logs: a cell's sum of expm1 would reach {max_expm1_total:.3g}, above any "
            "normalisation target"
            if np.isfinite(max_expm1_total)
            else ""
        )
        return [
            f"{counts} is normalised (non-integer, max {max_value:.4g}{why}), not counts: no "
            "counts layer; each cell was rescaled to 10,000 in total and log1p-transformed"
        ]
    if scale == "log-normalised":
        return [
            f"{counts} is already log-normalised (non-integer, max {np.log1p(max_value):.3g}): "
            f"kept as X, no counts layer; per-cell totals of expm1(X) range {totals.min():.4g}–"
            f"{totals.max():.4g} (median {np.median(totals):.4g})"
        ]
    return []


def _dataset_embedding(obsm, key: str | None, source_label: str) -> tuple[np.ndarray, str] | None:
    """The input's own 2-D embedding (``obsm[key]``, else the first of :data:`EMBEDDING_KEYS`)."""
    if key is not None and key not in obsm:
        raise InputError(
            f"{source_label}: embedding {key!r} not in obsm; available: {list(obsm.keys())}."
        )
    key = key or next((k for k in EMBEDDING_KEYS if k in obsm), None)
    if key is not None:
        coordinates = np.asarray(obsm[key], dtype=np.float32)
        if coordinates.ndim == 2 and coordinates.shape[1] >= 2:
            return coordinates[:, :2], f"dataset: {key}"
    return None


def embedding_of(
    plan: HarmonisePlan,
    values: HarmonisedValues,
    embedding_cells: np.ndarray | None,
    random_state: int,
) -> tuple[np.ndarray, str]:
    """The dataset's embedding, else one computed on the kept rows (NaN for the other cells)."""
    from seedsoil.embedding import compute_embedding

    if plan.embedding is not None:
        return plan.embedding
    if values.embedding_rows is None or values.embedding_rows.nnz == 0:
        # nothing expressed (QC then names the thresholds that removed every cell); PCA would fail
        return np.zeros((len(plan.obs), 2), dtype=np.float32), "computed: none (no expression)"
    coordinates, how = compute_embedding(
        ad.AnnData(X=values.embedding_rows), random_state=random_state
    )
    if embedding_cells is None:
        return coordinates, how
    placed = np.full((len(plan.obs), 2), np.nan, dtype=np.float32)
    placed[embedding_cells] = coordinates
    return placed, (
        f"{how} on a random {embedding_cells.size:,} of {len(plan.obs):,} cells "
        "(the others have no coordinates)"
    )


def harmonised_metadata(
    plan: HarmonisePlan,
    values: HarmonisedValues,
    *,
    dataset: str,
    fmt: str,
    species: str,
    gene_id: str,
    provenance: dict | None,
    embedding: str,
) -> dict:
    """``uns["seedsoil"]`` of a harmonised dataset (docs/architecture.md)."""
    from seedsoil import __version__

    totals = values.metrics.get("n_counts", np.zeros(0))
    return {
        "dataset": dataset,
        "source": plan.source_label,
        "format": fmt,
        "species": species,
        "gene_id": gene_id,
        "counts_source": plan.counts,
        "input_scale": values.scale,
        "provenance": {
            k: str((provenance or {}).get(k, ""))
            for k in ("publication", "accession", "licence", "url", "sha256")
        },
        "warnings": plan.warnings
        + (
            _scale_warning(
                values.scale, values.max_value, totals, plan.counts, values.max_expm1_total
            )
            if totals.size
            else []
        ),
        "qc": {},
        "embedding": embedding,
        "version": __version__,
    }


class _MemorySink:
    """Collects harmonised blocks in memory (the in-memory :func:`harmonise`)."""

    def start(self) -> None:
        self.X, self.counts = [], []

    def append(self, X, counts, metrics=None) -> None:
        self.X.append(X)
        if counts is not None:
            self.counts.append(counts)


def harmonise(
    adata: ad.AnnData,
    *,
    dataset: str,
    sample_key: str | None = None,
    cell_type_key: str | None = None,
    condition_key: str | None = None,
    condition: str = "NA",
    species: str = "human",
    gene_id: str = "symbol",
    counts: str = "X",
    source_label: str = "input",
    fmt: str = "",
    provenance: dict | None = None,
    embedding: str | None = None,
    random_state: int = 0,
) -> ad.AnnData:
    """A new AnnData in the convention of docs/architecture.md, built from ``adata``.

    Values come from ``counts`` (``X``, ``raw`` or ``layer:NAME``); their scale is detected
    (:func:`detect_scale`): counts → ``layers["counts"]`` (rounded) and ``X = log1p(CP10k)``;
    normalised (TPM-like) → rescaled to 10,000 per cell, then log1p, no counts layer;
    log-normalised → kept as ``X``; scaled (negative values) → :class:`InputError`. Gene
    identifiers are resolved to symbols (:func:`resolve_gene_names`), duplicated symbols summed
    on the linear scale (:func:`duplicate_merge`), barcodes made unique
    (:func:`make_unique`), sample names made folder-safe (:func:`sample_names`). Missing
    labels become ``"unlabelled"`` (cell type) and ``condition`` (condition). Input obs
    columns are kept; those named like convention columns become ``orig_<name>``. The
    embedding is ``obsm[embedding]``, else the first of :data:`EMBEDDING_KEYS`, else computed
    (:func:`seedsoil.embedding.compute_embedding`; above
    :data:`seedsoil.embedding.MAX_EMBEDDING_CELLS` cells on a seeded random subsample). QC
    metrics are added (:func:`seedsoil.qc.cell_metrics`); ``qc_pass``/``qc_reason`` come
    from ``apply_qc``. :func:`seedsoil.ingest.ingest_h5ad` does the same block by block.
    """
    from seedsoil.embedding import embedding_subsample

    linear, genes = select_counts(adata, counts, source_label)
    plan = plan_harmonisation(
        adata.obs, adata.var, adata.obsm, input_genes=genes, has_raw=adata.raw is not None,
        layers=adata.layers.keys(), dataset=dataset, sample_key=sample_key,
        cell_type_key=cell_type_key, condition_key=condition_key, condition=condition,
        species=species, gene_id=gene_id, counts=counts, source_label=source_label,
        embedding=embedding,
    )  # fmt: skip
    subsample = embedding_subsample(adata.n_obs, random_state)
    sink = _MemorySink()
    values = harmonise_rows(lambda: [(0, linear)], plan, sink, embedding_cells=subsample)
    out = ad.AnnData(
        X=sink.X[0],
        obs=plan.obs,
        var=plan.var,
    )
    if sink.counts:
        out.layers["counts"] = sink.counts[0]
    for column, metric in values.metrics.items():
        out.obs[column] = metric
    coordinates, how = embedding_of(plan, values, subsample, random_state)
    out.obsm["X_embedding"] = coordinates
    out.uns["seedsoil"] = harmonised_metadata(
        plan, values, dataset=dataset, fmt=fmt, species=species, gene_id=gene_id,
        provenance=provenance, embedding=how,
    )  # fmt: skip
    return out
