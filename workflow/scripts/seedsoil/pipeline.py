"""One function per workflow stage: what a rule script calls between reading and writing.

Each takes plain values (paths, sheet rows, config sections) and returns in-memory results, so
the stages can be run and tested without Snakemake.
"""

from __future__ import annotations

import logging
import os
from typing import TYPE_CHECKING

import anndata as ad
import pandas as pd

from .datasets import provenance as builtin_provenance
from .errors import InputError
from .fetch import sha256sum
from .harmonise import harmonise
from .io import read_matrix
from .names import MIXED_CONDITION, sample_condition
from .qc import apply_qc, kept_samples
from .sheet import source_kind

if TYPE_CHECKING:
    from .scoring.base import GeneStats

log = logging.getLogger(__name__)

_TRANSPOSE = {"": None, "true": True, "false": False}


def dataset_provenance(row: dict, path: str | os.PathLike) -> dict[str, str]:
    """Provenance of a sheet row's data: the built-in's record, or the source and file checksum."""
    if source_kind(row["source"]) == "builtin":
        return builtin_provenance(row["source"].removeprefix("builtin:"))
    # the sheet's description is the user's words, not a publication; a local path is no url
    return {
        "publication": "",
        "accession": "",
        "licence": "",
        "url": row["source"] if source_kind(row["source"]) == "url" else "",
        "sha256": sha256sum(path) if os.path.isfile(path) else "",
    }


def harmonise_options(row: dict, path: str | os.PathLike) -> dict:
    """:func:`seedsoil.harmonise.harmonise`'s keyword arguments for a dataset's sheet ``row``."""
    return {
        "dataset": row["id"],
        "sample_key": row["sample_column"] or None,
        "cell_type_key": row["cell_type_column"] or None,
        "condition_key": row["condition_column"] or None,
        "condition": row["condition"],
        "species": row["species"],
        "gene_id": row["gene_id"],
        "counts": row["counts"],
        "source_label": str(path),
        "fmt": row["format"],
        "provenance": dataset_provenance(row, path),
        "embedding": row.get("embedding") or None,
    }


def record_depth(adata: ad.AnnData) -> None:
    """``uns["seedsoil"]["depth"]`` of the QC-passed cells (genes detected per cell, in place)."""
    from .scoring.depth import depth_summary

    passed = adata.obs["qc_pass"].to_numpy(dtype=bool)
    n_genes = adata.obs["n_genes"].to_numpy()[passed]
    adata.uns["seedsoil"]["depth"] = depth_summary(n_genes, adata.n_vars)


def record_source(adata: ad.AnnData, row: dict) -> None:
    """The sheet's ``source`` and ``description`` into ``uns["seedsoil"]`` (in place)."""
    adata.uns["seedsoil"]["source"] = row["source"]
    adata.uns["seedsoil"]["description"] = row.get("description", "")


def sample_table(adata: ad.AnnData, row: dict, qc: dict) -> pd.DataFrame:
    """The ingest checkpoint's table of a QC-flagged dataset (``obs`` and ``uns`` suffice): one
    row per sample kept (``sample``, ``condition``, ``n_cells``, ``n_cells_total``)."""
    kept = kept_samples(adata)
    obs = adata.obs
    totals = obs["sample"].astype(str).value_counts()
    passed = obs.loc[obs["qc_pass"].to_numpy(dtype=bool)]
    passed_samples = passed["sample"].astype(str)
    conditions = {name: passed.loc[passed_samples == name, "condition"] for name in kept}
    for name, values in conditions.items():
        if sample_condition(values) == MIXED_CONDITION:
            message = (
                f"sample {name} spans conditions {', '.join(sorted(set(values.astype(str))))}: its "
                f"condition is '{MIXED_CONDITION}' and it joins no condition comparison; to compare "
                "them, give each sample one condition (a sample column combining e.g. patient and "
                "tissue)"
            )
            adata.uns["seedsoil"].setdefault("warnings", []).append(message)
    samples = pd.DataFrame(
        {
            "sample": kept,
            "condition": [sample_condition(conditions[name]) for name in kept],
            "n_cells": [int((passed_samples == name).sum()) for name in kept],
            "n_cells_total": [int(totals[name]) for name in kept],
        }
    )
    dropped = sorted(set(totals.index) - set(kept))
    if dropped:
        log.warning(
            "dataset %s: sample(s) %s dropped: fewer than min_cells_per_sample=%s cells passed QC",
            row["id"], ", ".join(dropped), qc.get("min_cells_per_sample"),
        )  # fmt: skip
    return samples


#: Formats that hold a matrix and cell barcodes only: no column for sample, cell type or condition.
MATRIX_ONLY_FORMATS = ("mtx", "10x_h5", "csv", "tsv")


def _check_label_columns(obs: pd.DataFrame, row: dict, path) -> None:
    """:class:`InputError` when the sheet names a label column a matrix-only format cannot hold,
    with the fix the sheet can express: one row per library."""
    if row["format"] not in MATRIX_ONLY_FORMATS:
        return
    for role in ("sample", "cell_type", "condition"):
        column = row.get(f"{role}_column", "")
        if column and column not in obs.columns:
            raise InputError(
                f"{path}: {role}_column is {column!r}, but format {row['format']} holds only a "
                "matrix and cell barcodes, no cell metadata. Leave the column empty and give each "
                "library its own sheet row (its id becomes the sample; set its condition in the "
                "condition column), or convert the data to .h5ad with these obs columns."
            )


def ingest_dataset(path: str | os.PathLike, row: dict, qc: dict) -> tuple[ad.AnnData, pd.DataFrame]:
    """Read a dataset in any supported format into memory, harmonise it and flag QC failures.

    ``row`` is the dataset's sheet row (see ``workflow/schemas/datasets.schema.yaml``), ``qc``
    the thresholds (``min_genes``, ``max_mito_fraction``, ``min_cells_per_sample``). Returns
    the harmonised AnnData with every cell (QC flags in ``obs``) and :func:`sample_table`.
    :func:`seedsoil.ingest.ingest` writes the same to a file, streaming ``.h5ad`` inputs.
    """
    raw = read_matrix(path, row["format"], transpose=_TRANSPOSE[row.get("transpose", "").lower()])
    _check_label_columns(raw.obs, row, path)
    adata = harmonise(raw, **harmonise_options(row, path))
    record_source(adata, row)
    apply_qc(adata, **qc)
    record_depth(adata)
    return adata, sample_table(adata, row, qc)


def sample_cells(adata: ad.AnnData, sample: str) -> ad.AnnData:
    """The QC-passed cells of one sample, with that sample's QC record in ``uns``."""
    keep = (adata.obs["sample"].astype(str) == sample).to_numpy() & adata.obs["qc_pass"].to_numpy()
    cells = adata[keep].copy()
    in_sample = adata.obs["sample"].astype(str) == sample
    cells.uns["seedsoil"]["sample"] = sample
    cells.uns["seedsoil"]["qc"]["sample_metrics"] = {
        name: adata.obs.loc[in_sample, name].to_numpy().tolist()
        for name in ("n_counts", "n_genes", "mito_fraction")
    }
    reasons = adata.obs.loc[in_sample, "qc_reason"].astype(str).replace("", "kept")
    cells.uns["seedsoil"]["qc"]["sample_reasons"] = reasons.value_counts().to_dict()
    record_depth(cells)  # the sample's own depth, which scoring chooses rank windows from
    return cells


def _method_options(method: str, random_state: int, max_rank: int | None = None) -> dict:
    """Options the pipeline gives a scoring method: scanpy's control draws take the seed,
    ucell its ``max_rank`` (a number, resolved by :func:`resolve_max_rank`), aucell
    ``tmin=1``: the coverage rule (fraction or core markers) has already decided which
    signatures are scored, and decoupler's default of 5 genes would turn a core-scored
    signature on a targeted panel into NaN in every cell."""
    if method == "scanpy":
        return {"random_state": random_state}
    if method == "aucell":
        return {"tmin": 1}
    if method == "ucell" and max_rank is not None:
        return {"max_rank": max_rank}
    return {}


def sample_depth(cells: ad.AnnData | str | os.PathLike) -> dict:
    """The depth record of a sample: its ``uns["seedsoil"]["depth"]`` (written at the split),
    else computed from ``obs["n_genes"]``, else from the matrix."""
    from .scoring.depth import depth_summary, source_depth

    if isinstance(cells, ad.AnnData):
        meta, obs_genes, n_vars = cells.uns.get("seedsoil", {}), None, cells.n_vars
        if "n_genes" in cells.obs:
            obs_genes = cells.obs["n_genes"].to_numpy()
    else:
        import h5py
        from anndata.io import read_elem

        meta, var_names, _ = sample_header(cells)
        n_vars = len(var_names)
        with h5py.File(cells, "r") as f:
            obs_genes = read_elem(f["obs"]["n_genes"]) if "n_genes" in f["obs"] else None
    recorded = meta.get("depth")
    if isinstance(recorded, dict) and "q25_genes_detected" in recorded:
        return {key: int(value) for key, value in recorded.items()}
    if obs_genes is not None:
        return depth_summary(obs_genes, n_vars)
    from .scoring._input import open_source

    return source_depth(open_source(cells if isinstance(cells, ad.AnnData) else os.fspath(cells)))


def resolve_max_rank(
    cells: ad.AnnData | str | os.PathLike, method: str, max_rank: int | str
) -> tuple[int | None, dict]:
    """``(max_rank, record)``: config ``scoring.max_rank`` resolved for ``cells`` (``"auto"``:
    from the sample's depth, :func:`seedsoil.scoring.depth.resolve_max_rank`), and the record
    of the choice that goes with the scores (``scores.attrs["scoring"]``)."""
    from .scoring.depth import resolve_max_rank as from_depth

    record = {"method": method}
    if method != "ucell":
        return None, record
    depth = sample_depth(cells)
    chosen = from_depth(depth) if max_rank == "auto" else int(max_rank)
    record.update(
        max_rank=chosen,
        max_rank_rule="auto: lower quartile of genes detected per cell"
        if max_rank == "auto"
        else "config",
        **depth,
    )
    return chosen, record


def check_scores(scores: pd.DataFrame, method: str, meta: dict) -> None:
    """Warn for every signature scored all zero or all NaN in the sample (see
    :func:`seedsoil.scoring.degenerate_scores`)."""
    from .scoring import degenerate_scores

    context = f"dataset {meta.get('dataset')!r}, sample {meta.get('sample')!r}: "
    degenerate_scores(scores, method, context=context)


def signatures_to_score(
    var_names, meta: dict, *, library: list[str], gmt: list[str], min_coverage: float
) -> tuple[dict, pd.DataFrame]:
    """The library mapped to the sample's species, restricted to signatures that reach
    ``min_coverage`` on ``var_names`` or hold their core rule (``seedsoil.signatures.coverage``),
    and the coverage table of every signature.

    A sample on which none reaches it is an :class:`InputError`.
    """
    from .signatures import coverage, load_library, require_some_coverage, to_species

    signatures = load_library(library, gmt=gmt)
    if meta["species"] != "human":
        signatures = to_species(signatures, meta["species"])
    table = coverage(signatures, var_names, min_coverage)
    require_some_coverage(
        table, f"dataset {meta['dataset']!r}, sample {meta.get('sample')!r}", var_names
    )
    scored = {name: signatures[name] for name in table.loc[table["scored"], "signature"]}
    return scored, table


def sample_header(path: str | os.PathLike) -> tuple[dict, pd.Index, int]:
    """``(uns["seedsoil"], var_names, n_cells)`` of a sample's ``.h5ad``, without reading ``X``."""
    import h5py
    from anndata.io import read_elem

    from .cellfile import check_sources
    from .scoring._input import open_source

    check_sources(path)  # a missing ingested.h5ad would read as NaN
    source = open_source(os.fspath(path))
    with h5py.File(path, "r") as f:
        meta = read_elem(f["uns"]["seedsoil"])
    return meta, source.var_names, source.n_cells


def score_sample(
    cells: ad.AnnData | str | os.PathLike,
    *,
    library: list[str],
    gmt: list[str],
    min_coverage: float,
    method: str,
    n_null: int,
    random_state: int,
    max_rank: int | str = "auto",
    n_threads: int | None = None,
    stats: GeneStats | None = None,
) -> tuple[pd.DataFrame, pd.DataFrame, pd.DataFrame, pd.DataFrame]:
    """Score one sample against the signature library.

    The library is mapped to the sample's species; signatures below ``min_coverage`` whose
    core rule does not hold are skipped (and listed in the coverage table), and a sample on which none reaches it is an
    :class:`InputError`. ``cells`` is an AnnData or the path of the sample's ``.h5ad``; a
    path is streamed (one block of cells in memory, the file read once for the statistics
    and once for scores and p-values together; once only when ``stats``, the sample's
    :class:`GeneStats` as ingest gathered them, are given). Returns ``(scores, pvalues, fdr, coverage)``;
    with ``n_null = 0`` the p-value and FDR tables are empty (same index, no columns).
    ``max_rank`` is ucell's window (``"auto"``: from the sample's depth); the resolved choice
    is in ``scores.attrs["scoring"]``. A signature scored all zero or all NaN is warned about.
    """
    chosen, record = resolve_max_rank(cells, method, max_rank)
    options = _method_options(method, random_state, chosen)
    if isinstance(cells, str | os.PathLike):
        from .scoring.chunked import gather, needs_gene_stats, score_rows

        meta, var_names, n_cells = sample_header(cells)
        scored, table = signatures_to_score(
            var_names, meta, library=library, gmt=gmt, min_coverage=min_coverage
        )
        if stats is None and needs_gene_stats(method, n_null, **options):
            stats = sample_gene_stats(cells, 0, 1, None, n_threads=n_threads)
        scores, pvalues = score_rows(
            cells, scored, method, start=0, stop=n_cells, stats=stats, n_null=n_null,
            random_state=random_state, n_threads=n_threads, options=options,
        )  # fmt: skip
        scores, pvalues, fdr = gather([scores], [pvalues])
    else:
        from .scoring import score, significance

        meta = cells.uns["seedsoil"]
        scored, table = signatures_to_score(
            cells.var_names, meta, library=library, gmt=gmt, min_coverage=min_coverage
        )
        scores = score(cells, scored, method=method, n_threads=n_threads, **options)
        if n_null:
            pvalues, fdr = significance(
                cells, scored, n_null=n_null, random_state=random_state, n_threads=n_threads
            )
        else:
            pvalues = fdr = pd.DataFrame(index=scores.index)
    scores.attrs = {"scoring": record}
    check_scores(scores, method, meta)
    return scores, pvalues, fdr, table


# Atlas-size samples: the same results from separate jobs over cell ranges
# (seedsoil.scoring.chunked explains why the statistics follow the row order; the workflow
# takes them from ingest, sample_gene_stats is the same pass over a cell file).


def sample_gene_stats(
    path: str | os.PathLike,
    chunk: int,
    n_chunks: int,
    previous: GeneStats | str | os.PathLike | None,
    *,
    n_threads: int | None = None,
) -> GeneStats:
    """Dataset-wide gene statistics of a sample's cells up to the end of range ``chunk``.

    ``previous`` (statistics, or the ``.npz`` they were saved to) are those up to the end of
    range ``chunk - 1``; ``None`` for the first range. The last range's result is the
    sample's :class:`GeneStats`, bit-identical to a single pass.
    """
    from .scoring.chunked import chunk_bounds, continue_gene_stats, load_gene_stats

    n_cells = sample_header(path)[2]
    start, stop = chunk_bounds(n_cells, n_chunks)[chunk]
    if isinstance(previous, str | os.PathLike):
        previous = load_gene_stats(previous)
    log.info("gene statistics of cells %d:%d of %d (range %d of %d)", start, stop, n_cells,
             chunk + 1, n_chunks)  # fmt: skip
    return continue_gene_stats(path, start, stop, previous, n_threads=n_threads)


def score_sample_chunk(
    path: str | os.PathLike,
    chunk: int,
    n_chunks: int,
    stats: GeneStats | str | os.PathLike | None,
    *,
    library: list[str],
    gmt: list[str],
    min_coverage: float,
    method: str,
    n_null: int,
    random_state: int,
    max_rank: int | str = "auto",
    n_threads: int | None = None,
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Scores and p-values (no FDR) of range ``chunk`` of ``n_chunks`` of a sample's cells.

    ``stats`` are the whole sample's gene statistics (or their ``.npz``), ``None`` when the
    method and ``n_null = 0`` need none. :func:`gather_sample_scores` assembles the ranges.
    """
    from .scoring.chunked import chunk_bounds, load_gene_stats, score_rows

    meta, var_names, n_cells = sample_header(path)
    scored, _ = signatures_to_score(
        var_names, meta, library=library, gmt=gmt, min_coverage=min_coverage
    )
    if isinstance(stats, str | os.PathLike):
        stats = load_gene_stats(stats)
    start, stop = chunk_bounds(n_cells, n_chunks)[chunk]
    log.info("scoring cells %d:%d of %d (range %d of %d)", start, stop, n_cells, chunk + 1,
             n_chunks)  # fmt: skip
    chosen, _ = resolve_max_rank(path, method, max_rank)  # the whole sample's depth
    return score_rows(
        path, scored, method, start=start, stop=stop, stats=stats, n_null=n_null,
        random_state=random_state, n_threads=n_threads,
        options=_method_options(method, random_state, chosen),
    )  # fmt: skip


def gather_sample_scores(
    path: str | os.PathLike,
    scores: list,
    pvalues: list,
    *,
    library: list[str],
    gmt: list[str],
    min_coverage: float,
    method: str = "ucell",
    max_rank: int | str = "auto",
) -> tuple[pd.DataFrame, pd.DataFrame, pd.DataFrame, pd.DataFrame]:
    """:func:`score_sample`'s four tables from the per-range tables (frames or parquet paths,
    in range order): scores and p-values concatenated, FDR across all cells, coverage."""
    from .scoring.chunked import gather

    meta, var_names, n_cells = sample_header(path)
    _, table = signatures_to_score(
        var_names, meta, library=library, gmt=gmt, min_coverage=min_coverage
    )
    # one table at a time, its parts freed once joined: peak memory about two tables
    all_scores, all_pvalues = (
        pd.concat(
            [part if isinstance(part, pd.DataFrame) else pd.read_parquet(part) for part in parts]
        )
        for parts in (scores, pvalues)
    )
    all_scores, all_pvalues, fdr = gather([all_scores], [all_pvalues])
    if len(all_scores) != n_cells:
        raise InputError(
            f"{path}: the chunk tables hold {len(all_scores)} cells, the sample {n_cells}; "
            "delete the sample's chunks/ folder and re-run"
        )
    all_scores.attrs = {"scoring": resolve_max_rank(path, method, max_rank)[1]}
    check_scores(all_scores, method, meta)
    return all_scores, all_pvalues, fdr, table
