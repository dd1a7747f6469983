"""One function per workflow stage: what a rule script calls between reading and writing.

Each takes plain values (paths, sheet rows, config sections) and returns in-memory results, so
the stages can be run and tested without Snakemake.
"""

from __future__ import annotations

import logging
import os

import anndata as ad
import pandas as pd

from .datasets import provenance as builtin_provenance
from .fetch import sha256sum
from .io import harmonise, read_matrix
from .qc import apply_qc, split_samples
from .sheet import source_kind

log = logging.getLogger(__name__)

_TRANSPOSE = {"": None, "true": True, "false": False}


def dataset_provenance(row: dict, path: str | os.PathLike) -> dict[str, str]:
    """Provenance of a sheet row's data: the built-in's record, or the source and file checksum."""
    if source_kind(row["source"]) == "builtin":
        return builtin_provenance(row["source"].removeprefix("builtin:"))
    return {
        "publication": row.get("description", ""),
        "accession": "",
        "licence": "",
        "url": row["source"],
        "sha256": sha256sum(path) if os.path.isfile(path) else "",
    }


def ingest_dataset(path: str | os.PathLike, row: dict, qc: dict) -> tuple[ad.AnnData, pd.DataFrame]:
    """Read a dataset in any supported format, harmonise it and flag QC failures.

    ``row`` is the dataset's sheet row (see ``workflow/schemas/datasets.schema.yaml``), ``qc``
    the thresholds (``min_genes``, ``max_mito_fraction``, ``min_cells_per_sample``). Returns
    the harmonised AnnData with every cell (QC flags in ``obs``) and the sample table: one
    row per sample kept (``sample``, ``condition``, ``n_cells``, ``n_cells_total``).
    """
    raw = read_matrix(path, row["format"], transpose=_TRANSPOSE[row.get("transpose", "").lower()])
    adata = harmonise(
        raw,
        dataset=row["id"],
        sample_key=row["sample_column"] or None,
        cell_type_key=row["cell_type_column"] or None,
        condition_key=row["condition_column"] or None,
        condition=row["condition"],
        species=row["species"],
        gene_id=row["gene_id"],
        counts=row["counts"],
        source_label=str(path),
        fmt=row["format"],
        provenance=dataset_provenance(row, path),
        embedding=row.get("embedding") or None,
    )
    adata.uns["seedsoil"]["source"] = row["source"]
    adata.uns["seedsoil"]["description"] = row.get("description", "")
    apply_qc(adata, **qc)
    kept = split_samples(adata)
    totals = adata.obs["sample"].astype(str).value_counts()
    samples = pd.DataFrame(
        {
            "sample": list(kept),
            "condition": [
                ", ".join(sorted(set(cells.obs["condition"].astype(str))))
                for cells in kept.values()
            ],
            "n_cells": [cells.n_obs for cells in kept.values()],
            "n_cells_total": [int(totals[name]) for name in kept],
        }
    )
    dropped = sorted(set(totals.index) - set(kept))
    if dropped:
        log.warning(
            "dataset %s: sample(s) %s dropped: fewer than min_cells_per_sample=%s cells passed QC",
            row["id"], ", ".join(dropped), qc.get("min_cells_per_sample"),
        )  # fmt: skip
    return adata, samples


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


def score_sample(
    cells: ad.AnnData,
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

    The library is mapped to the sample's species; signatures below ``min_coverage`` are
    skipped (and listed in the coverage table), and a sample on which none reaches it is an
    :class:`InputError`. Returns ``(scores, pvalues, fdr, coverage)``; with ``n_null = 0`` the
    p-value and FDR tables are empty (same index, no columns).
    """
    from .scoring import score, significance
    from .signatures import coverage, load_library, require_some_coverage, to_species

    meta = cells.uns["seedsoil"]
    signatures = load_library(library, gmt=gmt)
    if meta["species"] != "human":
        signatures = to_species(signatures, meta["species"])
    table = coverage(signatures, cells.var_names, min_coverage)
    require_some_coverage(
        table, f"dataset {meta['dataset']!r}, sample {meta.get('sample')!r}", cells.var_names
    )
    scored = {name: signatures[name] for name in table.loc[table["scored"], "signature"]}
    options = {"random_state": random_state} if method == "scanpy" else {}
    scores = score(cells, scored, method=method, n_threads=n_threads, **options)
    if n_null:
        pvalues, fdr = significance(
            cells, scored, n_null=n_null, random_state=random_state, n_threads=n_threads
        )
    else:
        pvalues = fdr = pd.DataFrame(index=scores.index)
    return scores, pvalues, fdr, table
