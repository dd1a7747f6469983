"""The ingest stage: a dataset harmonised and QC-flagged into ``ingested.h5ad``.

An ``.h5ad`` input in the current AnnData layout is streamed: its matrix is read, harmonised
(:func:`seedsoil.harmonise.harmonise_rows`) and written one block of cells at a time, so a job's
memory does not grow with the dataset. Other formats (10x, delimited, pre-0.7 ``.h5ad``) are
read whole (:func:`seedsoil.pipeline.ingest_dataset`). Both give the same file.

Ingest also gives each kept sample's :class:`~seedsoil.scoring.base.GeneStats` (its QC-passed
rows of ``X``, in file order: the rows and values of the sample's ``cells.h5ad``), accumulated
while the rows are written, so scoring a sample in cell ranges needs no statistics pass of its
own (:mod:`seedsoil.scoring.chunked`).
"""

from __future__ import annotations

import logging
import os
from collections.abc import Iterable, Iterator
from pathlib import Path

import anndata as ad
import numpy as np
import pandas as pd
import scipy.sparse as sp

from .cellfile import COMPRESSION, CsrWriter, write_annotations
from .embedding import embedding_subsample
from .errors import InputError
from .harmonise import (
    counts_not_found,
    embedding_of,
    harmonise_rows,
    harmonised_metadata,
    plan_harmonisation,
)
from .pipeline import (
    harmonise_options,
    ingest_dataset,
    record_depth,
    record_source,
    sample_table,
)
from .qc import apply_qc, cell_filter_fails
from .scoring.base import GeneStats
from .scoring.chunked import save_sample_gene_stats
from .scoring.stats import GeneStatsBySample, gene_stats
from .util import return_freed_memory

log = logging.getLogger(__name__)

#: Cells harmonised per block. Each block makes a dozen temporaries of its stored values
#: (float64 copies, row factors, the float32 results); at 2,000 cells of ~1,500 values they stay
#: below the C library's 32 MB threshold for fresh memory maps, so the same memory is reused
#: block after block. Blocks of 10,000 cells took 3.8x as long to harmonise (measured at 200,000
#: cells, benchmarks/README.md), and held an estimated ~1 GB of temporaries.
BLOCK_CELLS = 2_000
#: Cells read from the input per HDF5 read (then harmonised :data:`BLOCK_CELLS` at a time): an
#: HDF5 chunk that a read boundary cuts is decoded twice, so a read spans many chunks (~60 of
#: 262,144 values at 1,500 values per cell), and it holds ~120 MB of values and indices.
READ_CELLS = 10_000


def ingest(
    path: str | os.PathLike,
    row: dict,
    qc: dict,
    out_path: str | os.PathLike,
    *,
    stats_path: str | os.PathLike | None = None,
    block_cells: int = BLOCK_CELLS,
    random_state: int = 0,
) -> pd.DataFrame:
    """Write the harmonised, QC-flagged dataset of sheet ``row`` to ``out_path``; return the
    sample table (:func:`seedsoil.pipeline.sample_table`). ``qc`` holds the thresholds.
    ``stats_path``: where to write every kept sample's gene statistics
    (:func:`kept_gene_stats`; :func:`seedsoil.scoring.chunked.save_sample_gene_stats`)."""
    if is_streamed(path, row):
        return ingest_h5ad(
            path, row, qc, out_path, stats_path=stats_path, block_cells=block_cells,
            random_state=random_state,
        )  # fmt: skip
    adata, samples = ingest_dataset(path, row, qc)
    log_warnings(adata.uns["seedsoil"])
    adata.write_h5ad(out_path, **COMPRESSION)
    if stats_path is not None:
        stats = {name: kept_gene_stats(adata, name) for name in samples["sample"]}
        save_sample_gene_stats(stats, stats_path)
    return samples


def kept_gene_stats(adata: ad.AnnData, sample: str) -> GeneStats:
    """:class:`GeneStats` of ``X`` over the QC-passed cells of ``sample`` (``obs["sample"]``), in
    row order: the cells of the sample's ``cells.h5ad`` (:func:`seedsoil.split.write_sample_cells`)."""
    keep = (adata.obs["sample"].astype(str) == sample).to_numpy()
    keep &= adata.obs["qc_pass"].to_numpy(dtype=bool)
    return gene_stats([sp.csr_matrix(adata.X[np.flatnonzero(keep)])], adata.n_vars)


def log_warnings(meta: dict) -> None:
    """Each of a dataset's ``uns["seedsoil"]["warnings"]`` as a logged warning, so the job's
    log and the terminal say what the report says (log-normalised input, no MT genes, …)."""
    for warning in meta.get("warnings", []):
        log.warning("dataset %s: %s", meta.get("dataset", ""), warning)


def is_streamed(path: str | os.PathLike, row: dict) -> bool:
    """Whether :func:`ingest` streams the input of sheet ``row`` at ``path``: an ``.h5ad`` in
    the AnnData ≥ 0.7 layout whose counts matrix is stored by rows (CSR or dense). Older files,
    CSC matrices and other formats are read whole (and any problem is named there)."""
    import h5py

    path, counts = Path(path), row["counts"]
    if row["format"] != "h5ad" or not path.is_file():
        return False
    try:
        with h5py.File(path, "r") as f:
            if f.attrs.get("encoding-type") != "anndata":
                return False
            node = f[_matrix_location(f, counts, str(path))[0]]
            return isinstance(node, h5py.Dataset) or node.attrs.get("encoding-type") == "csr_matrix"
    except (OSError, KeyError, InputError):
        return False


def _matrix_location(f, counts: str, label: str) -> tuple[str, str]:
    """``(matrix key, var group)`` of the sheet's ``counts`` choice in the open file ``f``."""
    layers = list(f["layers"].keys()) if "layers" in f else []
    if counts == "X":
        return "X", "var"
    if counts == "raw" and "raw" in f:
        return "raw/X", "raw/var"
    if counts.startswith("layer:") and counts[6:] in layers:
        return f"layers/{counts[6:]}", "var"
    raise counts_not_found(counts, label, "raw" in f, layers)


def ingest_h5ad(
    path: str | os.PathLike,
    row: dict,
    qc: dict,
    out_path: str | os.PathLike,
    *,
    stats_path: str | os.PathLike | None = None,
    block_cells: int = BLOCK_CELLS,
    read_cells: int = READ_CELLS,
    random_state: int = 0,
) -> pd.DataFrame:
    """:func:`ingest` for an ``.h5ad`` input, read ``read_cells`` cells at a time and harmonised
    ``block_cells`` at a time (:func:`sub_blocks`): one read block in memory. Each kept
    sample's :func:`kept_gene_stats` are accumulated block by block, as the rows are written.

    The embedding, when the input brings none, is computed on at most
    :data:`seedsoil.embedding.MAX_EMBEDDING_CELLS` cells, as in memory.
    """
    import h5py
    from anndata.io import read_elem

    from .scoring._input import open_h5ad

    options = harmonise_options(row, path)
    label = options["source_label"]
    try:
        with h5py.File(path, "r") as f:
            key, var_group = _matrix_location(f, options["counts"], label)
            obs, var = read_elem(f["obs"]), read_elem(f["var"])
            obsm = read_elem(f["obsm"]) if "obsm" in f else {}
            has_raw, layers = "raw" in f, list(f["layers"].keys()) if "layers" in f else []
    except (OSError, KeyError) as error:
        raise InputError(
            f"cannot read {path} as h5ad ({type(error).__name__}: {error}): the file is truncated "
            "or not an h5ad; re-download it or fix the format column."
        ) from error
    source = open_h5ad(Path(path), key, var_group)
    if len(obs) != source.n_cells:
        raise InputError(
            f"{label}: /obs has {len(obs)} cells but /{key} has {source.n_cells} rows; the file "
            "is inconsistent: re-save it with anndata (adata.write_h5ad) or re-download it."
        )
    plan = plan_harmonisation(
        obs, var, obsm, input_genes=source.var_names, has_raw=has_raw, layers=layers,
        **{k: v for k, v in options.items() if k not in ("fmt", "provenance")},
    )  # fmt: skip
    subsample = embedding_subsample(source.n_cells, random_state)
    read_cells = max(read_cells, block_cells)

    def read_blocks():
        starts = range(0, source.n_cells, read_cells)
        reads = zip(starts, source.chunks(read_cells, check_finite=False), strict=True)
        return sub_blocks(reads, block_cells)

    names = pd.Categorical(plan.obs["sample"].astype(str))
    with h5py.File(out_path, "w") as out:
        sink = _FileSink(out, len(plan.symbols), np.asarray(names.codes, dtype=np.int64), qc)
        values = harmonise_rows(read_blocks, plan, sink, embedding_cells=subsample)
        sink.close()
        return_freed_memory()  # the blocks' temporaries, before the embedding's own
        adata = ad.AnnData(obs=plan.obs, var=plan.var)
        for column, metric in values.metrics.items():
            adata.obs[column] = metric
        coordinates, how = embedding_of(plan, values, subsample, random_state)
        adata.obsm["X_embedding"] = coordinates
        adata.uns["seedsoil"] = harmonised_metadata(
            plan, values, dataset=options["dataset"], fmt=options["fmt"],
            species=options["species"], gene_id=options["gene_id"],
            provenance=options["provenance"], embedding=how,
        )  # fmt: skip
        record_source(adata, row)
        apply_qc(adata, **qc)
        record_depth(adata)
        samples = sample_table(adata, row, qc)
        log_warnings(adata.uns["seedsoil"])
        write_annotations(out, adata, COMPRESSION)
    stats = {}
    for name, n_cells in zip(samples["sample"], samples["n_cells"], strict=True):
        stats[name] = sink.stats.result(names.categories.get_loc(name))
        if stats[name].n_cells != n_cells:  # the per-cell filters disagree with apply_qc's
            raise RuntimeError(f"sample {name}: gene statistics of {stats[name].n_cells} cells, "
                               f"{n_cells} passed QC")  # fmt: skip
    if stats_path is not None:
        save_sample_gene_stats(stats, stats_path)
    return samples


def sub_blocks(
    blocks: Iterable[tuple[int, sp.csr_matrix]], block_cells: int
) -> Iterator[tuple[int, sp.csr_matrix]]:
    """``(first row, CSR rows)`` of each run of at most ``block_cells`` rows of each of
    ``blocks`` (``(first row, CSR block)`` pairs), in order. The rows are views: they share the
    block's values and column indices."""
    from .scoring._input import _row_view

    for start, block in blocks:
        for lo in range(0, block.shape[0], block_cells):
            yield start + lo, _row_view(block, lo, min(lo + block_cells, block.shape[0]))


class _FileSink:
    """Harmonised blocks appended to ``X`` and ``layers/counts`` of an open h5ad file, and the
    rows of ``X`` that pass :func:`seedsoil.qc.cell_filter_fails` added to their sample's gene
    statistics (``sample_codes``: each row's sample; ``qc``: the thresholds)."""

    def __init__(self, f, n_genes: int, sample_codes: np.ndarray, qc: dict):
        self.f, self.n_genes, self.sample_codes = f, n_genes, sample_codes
        self.filters = {k: qc[k] for k in ("min_genes", "max_mito_fraction") if k in qc}

    def start(self) -> None:
        for key in ("X", "layers"):
            if key in self.f:
                del self.f[key]
        self.X = CsrWriter(self.f, "X", self.n_genes, np.float32, COMPRESSION)
        self.counts = None
        self.stats, self.n_rows = GeneStatsBySample(self.n_genes, np.float32), 0

    def append(self, X, counts, metrics) -> None:
        self.X.append(X)
        codes = self.sample_codes[self.n_rows : self.n_rows + X.shape[0]].copy()
        fails = cell_filter_fails(metrics["n_genes"], metrics["mito_fraction"], **self.filters)
        codes[fails["min_genes"] | fails["max_mito_fraction"]] = -1
        self.stats.add(X, codes)
        self.n_rows += X.shape[0]
        if counts is not None:
            if self.counts is None:
                layers = self.f.require_group("layers")
                # harmonise_block gives X the structure of the counts: stored once
                self.counts = CsrWriter(
                    layers,
                    "counts",
                    self.n_genes,
                    np.float32,
                    COMPRESSION,
                    same_structure_as=self.X,
                )
            self.counts.append(counts)

    def close(self) -> None:
        self.X.close()
        if self.counts is not None:
            self.counts.close()
