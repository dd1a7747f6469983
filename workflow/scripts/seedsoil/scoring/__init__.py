"""The scoring engine: every signature in one pass over the cells, streamed in chunks.

``score(data, signatures, method)`` returns a cells × signatures DataFrame;
``significance(data, signatures)`` returns empirical p-values against expression-matched
null signatures and their Benjamini–Hochberg FDR across cells. Method modules follow the
contract in :mod:`seedsoil.scoring.base`.
"""

from __future__ import annotations

import importlib
import inspect
import logging
from collections.abc import Mapping

import numpy as np
import pandas as pd

from ..errors import InputError
from ..util import numba_threads
from ._input import open_source
from .base import GeneSet, GeneStats
from .stats import gene_stats

__all__ = [
    "METHODS",
    "GeneSet",
    "GeneStats",
    "degenerate_scores",
    "resolve_gene_sets",
    "score",
    "significance",
]

#: method name -> module implementing the contract (imported on first use)
METHODS = {
    "scanpy": "seedsoil.scoring.scanpy",
    "ucell": "seedsoil.scoring.ucell",
    "aucell": "seedsoil.scoring.aucell",
    "mean": "seedsoil.scoring.mean",
}

log = logging.getLogger("seedsoil.scoring")


def _signature_parts(name: str, spec) -> tuple[list, list, Mapping]:
    """(up genes, down genes, weights) of one signature given in any accepted form."""
    if isinstance(spec, str):
        raise InputError(
            f"signature {name!r}: expected a list of genes, got the single string {spec!r}"
        )
    if isinstance(spec, Mapping):
        unknown = set(spec) - {"up", "down", "weights"}
        if unknown:
            raise InputError(
                f"signature {name!r}: unknown keys {sorted(unknown)}; use 'up', 'down', 'weights'"
            )
        up, down, weights = spec.get("up"), spec.get("down"), spec.get("weights")
    elif hasattr(spec, "up"):
        up, down, weights = spec.up, getattr(spec, "down", None), getattr(spec, "weights", None)
    else:
        up, down, weights = spec, None, None
    # None means "none given"; gene lists may be any iterable (list, tuple, array, Index)
    up = [] if up is None else up
    down = [] if down is None else down
    weights = {} if weights is None else weights
    for part in (up, down):
        if isinstance(part, str):
            raise InputError(
                f"signature {name!r}: expected a list of genes, got the single string {part!r}"
            )
    return [str(g) for g in dict.fromkeys(up)], [str(g) for g in dict.fromkeys(down)], weights


def _present(
    name: str, genes: list, weights: Mapping, index: pd.Index
) -> tuple[np.ndarray, np.ndarray, list]:
    positions = (
        index.get_indexer(pd.Index(genes, dtype=object).astype(str))
        if genes
        else np.empty(0, dtype=np.int64)
    )
    missing = [g for g, p in zip(genes, positions, strict=True) if p < 0]
    found = positions >= 0
    w = (
        np.array([float(weights.get(g, 1.0)) for g in genes], dtype=np.float64)[found]
        if genes
        else np.empty(0)
    )
    if not (np.isfinite(w).all() and (w > 0).all()):
        raise InputError(f"signature {name!r}: weights must be finite and positive")
    order = np.argsort(positions[found], kind="stable")
    return positions[found][order].astype(np.int64), w[order], missing


def resolve_gene_sets(signatures: Mapping, var_names) -> list[GeneSet]:
    """Resolve each signature against the matrix's genes (``var_names``), in input order.

    ``signatures`` maps a name to a gene list, to ``{"up": [...], "down": [...],
    "weights": {gene: w}}`` (``down``/``weights`` optional), or to an object with ``.up``,
    ``.down`` and ``.weights``. Genes absent from ``var_names`` are recorded in
    ``GeneSet.missing``; a signature with no gene present raises :class:`InputError`.
    """
    if not isinstance(signatures, Mapping) or not signatures:
        raise InputError("signatures must be a non-empty mapping of name -> genes")
    index = pd.Index(var_names).astype(str)
    gene_sets = []
    for name, spec in signatures.items():
        up, down, weights = _signature_parts(str(name), spec)
        both = set(up) & set(down)
        if both:
            raise InputError(
                f"signature {name!r}: genes listed both up and down: {sorted(both)[:5]}"
            )
        up_idx, up_w, up_missing = _present(str(name), up, weights, index)
        down_idx, down_w, down_missing = _present(str(name), down, weights, index)
        if up_idx.size + down_idx.size == 0:
            raise InputError(
                f"signature {name!r}: none of its {len(up) + len(down)} genes is in the data "
                f"(e.g. {(up + down)[:5]}); check species and gene identifiers, or drop the signature"
            )
        gene_sets.append(
            GeneSet(
                str(name), up_idx, down_idx, up_w, down_w, tuple(up_missing), tuple(down_missing)
            )
        )
    return gene_sets


def _method_module(method: str):
    if method not in METHODS:
        raise InputError(f"unknown scoring method {method!r}; choose one of {sorted(METHODS)}")
    return importlib.import_module(METHODS[method])


def _check_options(method: str, prepare, options: dict) -> None:
    accepted = [
        p.name
        for p in inspect.signature(prepare).parameters.values()
        if p.kind is inspect.Parameter.KEYWORD_ONLY
    ]
    unknown = sorted(set(options) - set(accepted))
    if unknown:
        raise InputError(
            f"method {method!r} has no option(s) {unknown}; its options are {accepted}"
        )


def _report_missing(gene_sets: list[GeneSet]) -> dict[str, list[str]]:
    missing = {gs.name: list(gs.missing) for gs in gene_sets if gs.missing}
    for name, genes in missing.items():
        log.warning(
            "signature %r: %d gene(s) not in the data and ignored: %s", name, len(genes), genes[:10]
        )
    return missing


def score(
    data,
    signatures: Mapping,
    method: str = "scanpy",
    *,
    layer: str | None = None,
    var_names=None,
    obs_names=None,
    chunk_size: int = 20_000,
    n_threads: int | None = None,
    **options,
) -> pd.DataFrame:
    """Score every cell for every signature with ``method``.

    ``data``: an AnnData (its ``X``, or ``layers[layer]``), a scipy sparse matrix or
    array with ``var_names=`` (and optionally ``obs_names=``), or a path to an ``.h5ad``
    file (read ``chunk_size`` cells at a time with h5py). ``options`` go to the method
    (defaults equal the reference tool's: scanpy ``ctrl_size=50, n_bins=25,
    random_state=0``; ucell ``max_rank=1500``; mean ``zscore=False``; see each module).
    ucell's ``max_rank="auto"`` chooses the window from the data's depth
    (:func:`seedsoil.scoring.depth.resolve_max_rank`, one extra pass over the cells).
    ``n_threads`` sets the numba threads and never changes the result.

    Returns a cells × signatures float64 DataFrame (columns in input order, named as the
    signatures); ``.attrs["missing_genes"]`` maps signature -> genes absent from the data,
    ``.attrs["options"]`` holds the options as resolved (``max_rank`` as a number) and, when
    ``max_rank="auto"``, ``.attrs["depth"]`` the depth it was chosen from.
    """
    module = _method_module(method)
    _check_options(method, module.prepare, options)
    source = open_source(data, layer=layer, var_names=var_names, obs_names=obs_names)
    depth = None
    if options.get("max_rank") == "auto":
        from .depth import resolve_max_rank, source_depth

        depth = source_depth(source, chunk_size)
        options["max_rank"] = resolve_max_rank(depth)
        log.info("max_rank=auto: %d from the data's depth %s", options["max_rank"], depth)
    gene_sets = resolve_gene_sets(signatures, source.var_names)
    needs = module.needs_stats(**options) if hasattr(module, "needs_stats") else module.NEEDS_STATS
    result = np.empty((source.n_cells, len(gene_sets)), dtype=np.float64)
    with numba_threads(n_threads):
        stats_pass = getattr(module, "stats_pass", gene_stats)
        stats = stats_pass(source.chunks(chunk_size), source.n_genes) if needs else None
        prepared = module.prepare(gene_sets, source.n_genes, stats, **options)
        start = 0
        for chunk in source.chunks(chunk_size, check_finite=stats is None):
            result[start : start + chunk.shape[0]] = module.score_chunk(chunk, prepared)
            start += chunk.shape[0]
    frame = pd.DataFrame(result, index=source.obs_names, columns=[gs.name for gs in gene_sets])
    frame.attrs.update(
        {"method": method, "options": dict(options), "missing_genes": _report_missing(gene_sets)}
    )
    if depth is not None:
        frame.attrs["depth"] = depth
    return frame


#: why a method can give a signature the same degenerate score in every cell
_DEGENERATE_REASONS = {
    "ucell": "its genes are undetected or rank beyond max_rank={max_rank} in every cell "
    "(max_rank: auto chooses the window from the data's depth)",
    "aucell": "fewer than tmin of its up genes are detected in the data, or none ranks within "
    "the top n_up genes of any cell (aucell has no score then; try ucell)",
    "scanpy": "its genes and their control genes are undetected in every cell",
    "mean": "none of its genes is detected in any cell",
}


def degenerate_scores(scores: pd.DataFrame, method: str, *, context: str = "") -> list[str]:
    """Warnings, one per signature whose scores are all zero or all NaN over the cells, each
    naming the signature, the method and the likely reason; also logged."""
    options = scores.attrs.get("options") or scores.attrs.get("scoring") or {}
    if "max_rank" not in options and method == "ucell":  # the method's default was used
        prepare = _method_module(method).prepare
        options = {"max_rank": inspect.signature(prepare).parameters["max_rank"].default}
    reason = _DEGENERATE_REASONS.get(method, "").format(max_rank=options.get("max_rank", "?"))
    messages = []
    for name in scores.columns:
        values = scores[name].to_numpy(dtype=np.float64)
        if values.size == 0:
            continue
        state = "NaN" if np.isnan(values).all() else "0" if (values == 0).all() else ""
        if state:
            messages.append(
                f"{context}signature {name!r} scored {state} in every cell with method "
                f"{method!r}: {reason}"
            )
    for message in messages:
        log.warning(message)
    return messages


def significance(
    data,
    signatures: Mapping,
    *,
    n_null: int = 1000,
    random_state: int = 0,
    n_bins: int = 25,
    layer: str | None = None,
    var_names=None,
    obs_names=None,
    chunk_size: int = 20_000,
    n_threads: int | None = None,
    n_null_max: int | None = None,
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Empirical p-values of each cell's mean score and their BH FDR across cells.

    Cells at the p-value floor of ``n_null`` nulls are compared with up to ``n_null_max``
    (default ``20 * n_null``; ``n_null``: no extension).
    See :mod:`seedsoil.scoring.null` for the exact definition. Returns ``(pvalues, fdr)``,
    two cells × signatures DataFrames laid out as :func:`score`'s.
    """
    from . import null

    if n_null < 1:
        raise InputError(f"n_null must be at least 1, got {n_null}")
    source = open_source(data, layer=layer, var_names=var_names, obs_names=obs_names)
    gene_sets = resolve_gene_sets(signatures, source.var_names)
    pvalues = np.empty((source.n_cells, len(gene_sets)), dtype=np.float64)
    with numba_threads(n_threads):
        stats = gene_stats(source.chunks(chunk_size), source.n_genes)
        prepared = null.prepare(
            gene_sets,
            source.n_genes,
            stats,
            n_null=n_null,
            random_state=random_state,
            n_bins=n_bins,
            n_null_max=n_null_max,
        )
        start = 0
        for chunk in source.chunks(chunk_size, check_finite=False):  # checked by the stats pass
            stop = start + chunk.shape[0]
            names = source.obs_names[start:stop]
            pvalues[start:stop] = null.cell_pvalues(chunk, prepared, names)
            start = stop
    fdr = np.column_stack([null.benjamini_hochberg(p) for p in pvalues.T]) if gene_sets else pvalues
    columns = [gs.name for gs in gene_sets]
    missing = _report_missing(gene_sets)
    frames = []
    for values in (pvalues, fdr):
        frame = pd.DataFrame(values, index=source.obs_names, columns=columns)
        frame.attrs.update(
            {
                "n_null": n_null,
                "n_null_max": prepared.n_null_max,
                "random_state": random_state,
                "missing_genes": missing,
            }
        )
        frames.append(frame)
    return frames[0], frames[1]
