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
    return cells


def _method_options(method: str, random_state: int) -> dict:
    """Options the pipeline gives a scoring method: scanpy's control draws take the seed."""
    return {"random_state": random_state} if method == "scanpy" else {}


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

    from .scoring._input import open_source

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
    n_threads: int | None = None,
) -> tuple[pd.DataFrame, pd.DataFrame, pd.DataFrame, pd.DataFrame]:
    """Score one sample against the signature library.

    The library is mapped to the sample's species; signatures below ``min_coverage`` whose
    core rule does not hold are skipped (and listed in the coverage table), and a sample on which none reaches it is an
    :class:`InputError`. ``cells`` is an AnnData or the path of the sample's ``.h5ad``; a
    path is streamed (one block of cells in memory, the file read once for the statistics
    and once for scores and p-values together). Returns ``(scores, pvalues, fdr, coverage)``;
    with ``n_null = 0`` the p-value and FDR tables are empty (same index, no columns).
    """
    if isinstance(cells, str | os.PathLike):
        from .scoring.chunked import gather, needs_gene_stats, score_rows

        meta, var_names, n_cells = sample_header(cells)
        scored, table = signatures_to_score(
            var_names, meta, library=library, gmt=gmt, min_coverage=min_coverage
        )
        stats = (
            sample_gene_stats(cells, 0, 1, None, n_threads=n_threads)
            if needs_gene_stats(method, n_null, **_method_options(method, random_state))
            else None
        )
        scores, pvalues = score_rows(
            cells, scored, method, start=0, stop=n_cells, stats=stats, n_null=n_null,
            random_state=random_state, n_threads=n_threads, options=_method_options(method, random_state),
        )  # fmt: skip
        return (*gather([scores], [pvalues]), table)

    from .scoring import score, significance

    scored, table = signatures_to_score(
        cells.var_names, cells.uns["seedsoil"], library=library, gmt=gmt, min_coverage=min_coverage
    )
    options = _method_options(method, random_state)
    scores = score(cells, scored, method=method, n_threads=n_threads, **options)
    if n_null:
        pvalues, fdr = significance(
            cells, scored, n_null=n_null, random_state=random_state, n_threads=n_threads
        )
    else:
        pvalues = fdr = pd.DataFrame(index=scores.index)
    return scores, pvalues, fdr, table


# Atlas-size samples: the same results from separate jobs over cell ranges
# (seedsoil.scoring.chunked explains why the statistics pass is a chain).


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
    return score_rows(
        path, scored, method, start=start, stop=stop, stats=stats, n_null=n_null,
        random_state=random_state, n_threads=n_threads, options=_method_options(method, random_state),
    )  # fmt: skip


def gather_sample_scores(
    path: str | os.PathLike,
    scores: list,
    pvalues: list,
    *,
    library: list[str],
    gmt: list[str],
    min_coverage: float,
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
    return all_scores, all_pvalues, fdr, table
