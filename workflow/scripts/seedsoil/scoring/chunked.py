"""Scoring one ``.h5ad`` as independent jobs over row ranges, identical to one pass.

A sample too large for one job is cut into ``n_chunks`` consecutive row ranges
(:func:`chunk_bounds`). Three kinds of step then give exactly what :func:`seedsoil.score`
and :func:`seedsoil.significance` give on the whole file:

1. The dataset-wide :class:`GeneStats`. Its float sums accumulate gene by gene in row order
   (``sum_native`` must, to match scipy's ``X.sum(axis=0)`` bit for bit), and floating-point
   addition is not associative: per-range partial sums added afterwards would differ in the
   last bits. :func:`continue_gene_stats` therefore *continues* the running accumulators of
   the previous range (a fixed reduction order: a scan, not a tree), which makes the last
   range's result bit-identical to a single pass; each step reads its rows, one range after
   another. The workflow runs no such chain: ingest, which writes every row of the dataset in
   order, accumulates each sample's statistics on the way
   (:class:`seedsoil.scoring.stats.GeneStatsBySample`, same kernel, same order per gene) and
   saves them (:func:`save_sample_gene_stats`), so the ranges' scoring jobs start at once.
2. :func:`score_rows` — every signature's score and empirical p-value for one range,
   reading only those rows (``score_chunk`` gives a cell the same row whatever block it
   falls in; see :mod:`seedsoil.scoring.base`). Ranges are independent.
3. :func:`gather` — the ranges concatenated in row order, and the Benjamini–Hochberg FDR
   computed across *all* cells of each signature (never per range).
"""

from __future__ import annotations

import math
import os
from collections.abc import Iterator, Mapping
from pathlib import Path

import numba
import numpy as np
import pandas as pd
import scipy.sparse as sp

from ..errors import InputError
from ..util import numba_threads
from . import _check_options, _method_module, _report_missing, resolve_gene_sets
from ._input import MatrixSource, _read_h5_rows, open_source
from ._kernels import accumulate_gene_stats
from .base import GeneStats
from .stats import sum_dtype

__all__ = [
    "chunk_bounds",
    "continue_gene_stats",
    "gather",
    "load_gene_stats",
    "load_sample_gene_stats",
    "n_chunks_for",
    "needs_gene_stats",
    "save_gene_stats",
    "save_sample_gene_stats",
    "score_rows",
]


def n_chunks_for(n_cells: int, chunk_cells: int) -> int:
    """Number of row ranges for ``n_cells`` cells when no range may exceed ``chunk_cells``."""
    if chunk_cells < 1:
        raise InputError(f"chunk_cells must be a positive number of cells, got {chunk_cells}")
    return max(1, math.ceil(n_cells / chunk_cells))


def chunk_bounds(n_cells: int, n_chunks: int) -> list[tuple[int, int]]:
    """``n_chunks`` consecutive ``(start, stop)`` row ranges covering ``n_cells``, sizes within one."""
    if n_chunks < 1:
        raise InputError(f"n_chunks must be at least 1, got {n_chunks}")
    edges = [k * n_cells // n_chunks for k in range(n_chunks + 1)]
    return list(zip(edges[:-1], edges[1:], strict=True))


def _h5ad_source(path: str | os.PathLike, layer: str | None) -> MatrixSource:
    source = open_source(Path(path), layer=layer)
    if source._path is None:  # pragma: no cover - open_source of a path is always on disk
        raise InputError(f"{path}: expected an on-disk .h5ad")
    return source


def _blocks(
    source: MatrixSource, start: int, stop: int, block_size: int
) -> Iterator[sp.csr_matrix]:
    """Rows ``start:stop`` of an on-disk source, ``block_size`` at a time, checked as by ``score``."""
    import h5py

    if not 0 <= start <= stop <= source.n_cells:
        raise InputError(
            f"{source.label}: row range {start}:{stop} outside the file's {source.n_cells} cells"
        )
    if block_size < 1:
        raise InputError(f"block_size must be a positive number of cells, got {block_size}")
    with h5py.File(source._path, "r") as f:
        node = f[source._key]
        # Only this range's slice of indptr: a chunk job never reads the whole index.
        indptr = node["indptr"][start : stop + 1] if isinstance(node, h5py.Group) else None
        for lo in range(start, stop, block_size):
            hi = min(lo + block_size, stop)
            if indptr is None:
                block = _read_h5_rows(node, None, lo, hi, source.n_genes)
            else:
                block = _read_h5_rows(node, indptr, lo - start, hi - start, source.n_genes)
            yield source._checked(block, lo)


def continue_gene_stats(
    path: str | os.PathLike,
    start: int,
    stop: int,
    previous: GeneStats | None = None,
    *,
    layer: str | None = None,
    block_size: int = 20_000,
    n_threads: int | None = None,
) -> GeneStats:
    """:class:`GeneStats` of rows ``0:stop``, given ``previous`` = those of rows ``0:start``.

    ``previous`` is ``None`` for ``start = 0``. Every field is accumulated exactly as
    :func:`seedsoil.scoring.stats.gene_stats` does over all rows in order, so the result for
    ``stop = n_cells`` equals its result bit for bit, whatever the ranges were.
    """
    source = _h5ad_source(path, layer)
    n_genes = source.n_genes
    if (previous is None) != (start == 0) or (previous is not None and previous.n_cells != start):
        raise InputError(
            f"{source.label}: statistics of rows {start}:{stop} must continue those of rows "
            f"0:{start} (got {'none' if previous is None else previous.n_cells} cells)"
        )
    if previous is not None and previous.sum.size != n_genes:
        raise InputError(
            f"{source.label}: previous statistics cover {previous.sum.size} genes, the file {n_genes}"
        )
    if previous is None:
        n_cells, sum_native = 0, None
        total, total_sq = np.zeros(n_genes), np.zeros(n_genes)
        nnz = np.zeros(n_genes, dtype=np.int64)
    else:
        n_cells, sum_native = previous.n_cells, previous.sum_native.copy()
        total, total_sq, nnz = previous.sum.copy(), previous.sum_sq.copy(), previous.nnz.copy()
    with numba_threads(n_threads):
        for block in _blocks(source, start, stop, block_size):
            if sum_native is None:
                sum_native = np.zeros(n_genes, dtype=sum_dtype(block.dtype))
            data = block.data.astype(sum_native.dtype, copy=False)
            accumulate_gene_stats(
                block.indptr, block.indices, data, sum_native, total, total_sq, nnz,
                numba.get_num_threads(),
            )  # fmt: skip
            n_cells += block.shape[0]
    if sum_native is None:
        sum_native = np.zeros(n_genes, dtype=np.float32)
    return GeneStats(n_cells=n_cells, sum=total, sum_native=sum_native, sum_sq=total_sq, nnz=nnz)


#: Fields of a :class:`GeneStats` as stored in an ``.npz``.
_FIELDS = ("n_cells", "sum", "sum_native", "sum_sq", "nnz")


def _stats_arrays(stats: GeneStats, prefix: str = "") -> dict[str, np.ndarray]:
    return {
        f"{prefix}{field}": np.int64(stats.n_cells) if field == "n_cells" else getattr(stats, field)
        for field in _FIELDS
    }


def _stats_from(arrays, prefix: str = "") -> GeneStats:
    values = {field: arrays[f"{prefix}{field}"] for field in _FIELDS}
    values["n_cells"] = int(values["n_cells"])
    return GeneStats(**values)


def save_gene_stats(stats: GeneStats, path: str | os.PathLike) -> None:
    """Write ``stats`` to an ``.npz`` (exact values, dtypes kept)."""
    np.savez(path, **_stats_arrays(stats))


def load_gene_stats(path: str | os.PathLike) -> GeneStats:
    """Read what :func:`save_gene_stats` wrote."""
    with np.load(path) as f:
        return _stats_from(f)


def save_sample_gene_stats(stats: Mapping[str, GeneStats], path: str | os.PathLike) -> None:
    """Write each sample's ``stats`` to one ``.npz`` (arrays ``"{sample}:{field}"``; exact
    values, dtypes kept). Sample names are folder names (no ``:``; seedsoil.names)."""
    arrays = {}
    for sample, one in stats.items():
        arrays.update(_stats_arrays(one, f"{sample}:"))
    with open(path, "wb") as f:  # a file object: np.savez would add ".npz" to a bare name
        np.savez(f, **arrays)


def load_sample_gene_stats(path: str | os.PathLike, sample: str) -> GeneStats:
    """Sample ``sample``'s statistics from what :func:`save_sample_gene_stats` wrote."""
    with np.load(path) as f:
        if f"{sample}:n_cells" not in f.files:
            raise InputError(
                f"{path} holds no gene statistics of sample {sample!r}; re-run ingest "
                "(snakemake --forcerun ingest)"
            )
        return _stats_from(f, f"{sample}:")


def needs_gene_stats(method: str, n_null: int, **options) -> bool:
    """Whether scoring with ``method`` (and p-values when ``n_null > 0``) needs :class:`GeneStats`."""
    module = _method_module(method)
    needs = module.needs_stats(**options) if hasattr(module, "needs_stats") else module.NEEDS_STATS
    return bool(needs or n_null > 0)


def score_rows(
    path: str | os.PathLike,
    signatures: Mapping,
    method: str,
    *,
    start: int,
    stop: int,
    stats: GeneStats | None,
    options: Mapping | None = None,
    n_null: int = 0,
    random_state: int = 0,
    n_bins: int = 25,
    layer: str | None = None,
    block_size: int = 20_000,
    n_threads: int | None = None,
    n_null_max: int | None = None,
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Scores and empirical p-values of rows ``start:stop`` of an ``.h5ad``, read block by block.

    ``stats`` are the whole file's (``None`` only when :func:`needs_gene_stats` says so);
    ``options`` go to the method as ``**options`` of :func:`seedsoil.score`; ``n_null``,
    ``random_state`` (the null draws' seed), ``n_null_max`` and
    ``n_bins`` are :func:`seedsoil.significance`'s (``n_null = 0``: no p-values, the second
    frame has no columns). Each row equals that of ``score``/``significance`` on the whole
    file. Returns ``(scores, pvalues)``; the FDR needs every cell: see :func:`gather`.
    """
    from . import null

    options = dict(options or {})
    module = _method_module(method)
    _check_options(method, module.prepare, options)
    if n_null < 0:
        raise InputError(f"n_null must be at least 0, got {n_null}")
    source = _h5ad_source(path, layer)
    gene_sets = resolve_gene_sets(signatures, source.var_names)
    if stats is None and needs_gene_stats(method, n_null, **options):
        raise InputError(f"method {method!r} with n_null={n_null} needs the dataset's GeneStats")
    if stats is not None and stats.n_cells != source.n_cells:
        raise InputError(
            f"{source.label}: statistics cover {stats.n_cells} cells, the file has {source.n_cells}"
        )
    needs = module.needs_stats(**options) if hasattr(module, "needs_stats") else module.NEEDS_STATS
    n_rows = stop - start
    scores = np.empty((n_rows, len(gene_sets)), dtype=np.float64)
    pvalues = np.empty((n_rows, len(gene_sets) if n_null else 0), dtype=np.float64)
    with numba_threads(n_threads):
        prepared = module.prepare(gene_sets, source.n_genes, stats if needs else None, **options)
        nulls = (
            null.prepare(
                gene_sets,
                source.n_genes,
                stats,
                n_null=n_null,
                random_state=random_state,
                n_bins=n_bins,
                n_null_max=n_null_max,
            )  # fmt: skip
            if n_null
            else None
        )
        index = source.obs_slice(start, stop)
        at = 0
        for block in _blocks(source, start, stop, block_size):
            rows = slice(at, at + block.shape[0])
            scores[rows] = module.score_chunk(block, prepared)
            if nulls is not None:
                names = index[rows]
                pvalues[rows] = null.cell_pvalues(block, nulls, names)
            at += block.shape[0]
    _report_missing(gene_sets)
    names = [gs.name for gs in gene_sets]
    return (
        pd.DataFrame(scores, index=index, columns=names),
        pd.DataFrame(pvalues, index=index, columns=names if n_null else []),
    )


def gather(
    scores: list[pd.DataFrame], pvalues: list[pd.DataFrame]
) -> tuple[pd.DataFrame, pd.DataFrame, pd.DataFrame]:
    """Concatenate per-range results (given in row order) and add the FDR across all cells.

    Returns ``(scores, pvalues, fdr)``; ``fdr`` is the Benjamini–Hochberg adjustment of each
    signature's p-values over every cell, as :func:`seedsoil.significance` computes it.
    """
    from .null import benjamini_hochberg

    if not scores or len(scores) != len(pvalues):
        raise InputError(
            f"gather needs one p-value table per score table, got {len(scores)} and {len(pvalues)}"
        )
    all_scores = pd.concat(scores, axis=0) if len(scores) > 1 else scores[0]
    all_pvalues = pd.concat(pvalues, axis=0) if len(pvalues) > 1 else pvalues[0]
    if not all_scores.index.equals(all_pvalues.index):
        raise InputError("score and p-value tables cover different cells; re-run the chunk jobs")
    if all_pvalues.shape[1] == 0:  # no p-values: both tables as score_sample leaves them
        empty = pd.DataFrame(index=all_scores.index)
        return all_scores, empty, empty
    values = all_pvalues.to_numpy(dtype=np.float64)
    fdr_values = np.empty_like(values)  # filled column by column: no second cells × signatures copy
    for j in range(values.shape[1]):
        fdr_values[:, j] = benjamini_hochberg(values[:, j])
    fdr = pd.DataFrame(fdr_values, index=all_pvalues.index, columns=all_pvalues.columns)
    return all_scores, all_pvalues, fdr
