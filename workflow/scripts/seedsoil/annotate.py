"""A sample's results added to its cell file: ``scored.h5ad`` written without loading matrices.

``scored.h5ad`` is ``cells.h5ad`` plus one ``obs`` column per signature score and per call, and
``obsm["pvalues"]``/``obsm["fdr"]`` as cells × signatures frames. At atlas size the matrices
(``X``, ``layers``) are tens of GB uncompressed, so they are not written again: they are HDF5
virtual datasets reading the values where they are stored (or, for a standalone file, HDF5
object copies: stored chunks copied as they are, never decompressed). Every other part of
``cells.h5ad`` but ``obs``, ``obsm`` and the small ``var`` is an object copy. The job holds
only per-cell tables. ``anndata.read_h5ad`` reads the result as the AnnData that
loading ``cells.h5ad``, adding the columns and frames and writing it with ``write_h5ad`` gives.
"""

from __future__ import annotations

import os

import pandas as pd

from .cellfile import COMPRESSION, MATRIX_GROUPS, copy_objects
from .errors import InputError

#: Groups of the cell file rewritten; every other part is copied unchanged.
_REWRITTEN = ("obs", "var", "obsm")
#: ``obsm`` keys of the cells × signatures significance tables, in the order they are written.
_SIGNIFICANCE = ("pvalues", "fdr")


def _aligned(table: pd.DataFrame, index: pd.Index) -> pd.DataFrame:
    """``table`` with rows in ``index`` order (missing cells NaN); no copy when already so."""
    return table if table.index.equals(index) else table.reindex(index)


def _as_written(frame: pd.DataFrame) -> pd.DataFrame:
    """``frame`` with string columns as ``AnnData.write_h5ad`` stores them (in place): those with
    fewer distinct values than rows become categoricals, categories in natural sort order."""
    import anndata as ad

    ad.AnnData().strings_to_categoricals(frame)
    return frame


#: scanpy's ``calculate_qc_metrics`` names of the convention's QC columns, with the factor from
#: ours to theirs (``pct_counts_mt`` is a percentage, ``mito_fraction`` a fraction).
SCANPY_QC_NAMES = {
    "n_counts": ("total_counts", 1.0),
    "n_genes": ("n_genes_by_counts", 1.0),
    "mito_fraction": ("pct_counts_mt", 100.0),
}


def scanpy_obs(obs: pd.DataFrame) -> pd.DataFrame:
    """``obs`` as scanpy users expect it (in place; returned): the QC columns also under
    :data:`SCANPY_QC_NAMES`, and empty strings in text columns (e.g. ``emt_state`` of a
    non-candidate, ``qc_reason`` of a kept cell) as missing values, so no ``""`` category
    appears in legends."""
    for ours, (theirs, factor) in SCANPY_QC_NAMES.items():
        if ours in obs and theirs not in obs:
            obs[theirs] = obs[ours].to_numpy() * factor
    for column in obs.columns:
        values = obs[column]
        if isinstance(values.dtype, pd.CategoricalDtype):
            if "" in values.cat.categories:
                obs[column] = values.cat.remove_categories([""])
        elif pd.api.types.is_string_dtype(values) and values.eq("").any():
            obs[column] = values.astype("string").replace("", pd.NA)
    return obs


def scored_obs(obs: pd.DataFrame, scores: pd.DataFrame, calls: pd.DataFrame) -> pd.DataFrame:
    """``obs`` joined with ``scores`` (one column per signature) and ``calls``, rows as in ``obs``.

    Cells absent from a table get missing values. String columns become categoricals as
    ``AnnData.write_h5ad`` stores them (those with fewer distinct values than cells,
    categories in natural sort order). Raises :class:`InputError` when a signature or call
    name is already an ``obs`` column or both a signature and a call. Columns share memory
    with the given frames (nothing is copied): do not modify those afterwards.
    """
    clashes = sorted(set(obs.columns) & set(scores.columns))
    if clashes:
        raise InputError(
            f"signature names clash with obs columns of the cell file: {clashes}; rename "
            "the signatures in the library or the columns in the dataset, and re-run"
        )
    clashes = sorted((set(obs.columns) | set(scores.columns)) & set(calls.columns))
    if clashes:
        raise InputError(
            f"call names clash with obs columns or signature names: {clashes}; rename "
            "the signatures in the library or the columns in the dataset, and re-run"
        )
    # obs.join(scores).join(calls) on aligned rows; join and concat would copy every column
    parts = [obs, _aligned(scores, obs.index), _aligned(calls, obs.index)]
    columns = {name: part[name].array for part in parts for name in part.columns}
    return _as_written(scanpy_obs(pd.DataFrame(columns, index=obs.index, copy=False)))


def _read_table(table: str | os.PathLike | pd.DataFrame) -> pd.DataFrame:
    return table if isinstance(table, pd.DataFrame) else pd.read_parquet(table)


def write_scored_cells(
    cells: str | os.PathLike,
    scores: str | os.PathLike | pd.DataFrame,
    pvalues: str | os.PathLike | pd.DataFrame,
    fdr: str | os.PathLike | pd.DataFrame,
    calls: str | os.PathLike | pd.DataFrame,
    path: str | os.PathLike,
    *,
    compression: dict | None = COMPRESSION,
    standalone: bool = False,
) -> None:
    """Write ``scored.h5ad`` to ``path``: the ``cells`` file with the sample's results.

    ``obs`` is :func:`scored_obs` of the cell file's ``obs``; ``obsm`` keeps the cell file's
    frames and gains ``"pvalues"`` and ``"fdr"`` (cells × signatures, rows in ``obs`` order).
    Tables are cells × columns frames or paths of parquet files; a path is read only when its
    part is written and dropped after it, so the job holds at most two cells × signatures
    tables (the scores and ``obs`` joined with them) whatever the matrices' size.
    The matrices (``X``, ``layers``) are virtual datasets reading the values where the cell
    file reads them (``ingested.h5ad`` for a split by reference, else ``cells``), by paths
    relative to ``path``'s folder: nothing is copied. With ``standalone`` they are copied
    instead (HDF5 object copies; virtual ones as the values they read), so the file stands
    alone. ``compression`` (h5py dataset options) applies to the rewritten ``obs`` and
    ``obsm``; the copied parts keep the cell file's. Raises :class:`InputError` before ``path`` is created when names clash.
    Give a temporary name (:func:`seedsoil.util.atomic_path`): a later failure leaves ``path``
    incomplete.
    """
    import h5py
    from anndata.io import read_elem, write_elem

    kwargs = compression or {}
    with h5py.File(cells, "r") as source:
        try:
            score_table = _read_table(scores)
            obs = scored_obs(read_elem(source["obs"]), score_table, _read_table(calls))
        except InputError as error:
            raise InputError(f"{cells}: {error}") from None
        scoring = score_table.attrs.get("scoring")  # method and max_rank as resolved
        del score_table
        with h5py.File(path, "w") as target:
            target.attrs.update(source.attrs)
            copied = [key for key in source if key not in _REWRITTEN]
            matrices = [key for key in copied if key in MATRIX_GROUPS]
            copy_objects(source, target, matrices, references=not standalone)
            copy_objects(source, target, [key for key in copied if key not in matrices])
            if scoring and "uns/seedsoil" in target:
                write_elem(target["uns/seedsoil"], "scoring", scoring)
            write_elem(target, "obs", obs, dataset_kwargs=kwargs)
            var = _as_written(read_elem(source["var"]))
            write_elem(target, "var", var, dataset_kwargs=kwargs)
            index = obs.index
            del obs  # the joined table is the job's largest; free it before the next one
            write_elem(target, "obsm", {}, dataset_kwargs=kwargs)
            kept = [f"obsm/{key}" for key in source.get("obsm", {}) if key not in _SIGNIFICANCE]
            copy_objects(source, target, kept)
            _add_scanpy_embedding(source, target, kwargs)
            for key, table in zip(_SIGNIFICANCE, (pvalues, fdr), strict=True):
                frame = _aligned(_read_table(table), index)
                write_elem(target["obsm"], key, frame, dataset_kwargs=kwargs)
                del frame  # before the next table is read


def _add_scanpy_embedding(source, target, kwargs: dict) -> None:
    """``obsm["X_embedding"]`` also under the key scanpy's plotting functions read for what it
    is (:func:`seedsoil.embedding.scanpy_key`), so ``sc.pl.umap`` works on the file."""
    from anndata.io import read_elem, write_elem

    from .embedding import scanpy_key

    if "obsm/X_embedding" not in source or "uns/seedsoil/embedding" not in source:
        return
    key = scanpy_key(str(read_elem(source["uns/seedsoil/embedding"])))
    if key is not None and key not in target["obsm"]:
        write_elem(target["obsm"], key, source["obsm/X_embedding"][...], dataset_kwargs=kwargs)


#: ``obs`` columns of a sample's cell file kept in the cohort AnnData (besides scores and calls).
COHORT_OBS = ("sample", "cell_type", "condition", "n_counts", "n_genes", "mito_fraction")


def cohort_cells(samples) -> ad.AnnData:
    """Every sample's cells with their scores and calls in one AnnData without a matrix, for
    cross-sample plots (``sc.pl.violin(adata, signature, groupby="condition")``).

    ``samples`` yields ``(dataset, cells.h5ad, scores.parquet, calls.parquet)``; only ``obs``
    of each cell file is read (:data:`COHORT_OBS`). ``obs`` is :func:`scored_obs` of each
    sample plus ``dataset`` and ``cell`` (the cell's id in its sample file); the index is
    ``dataset:cell``, unique across datasets. Signatures not scored in a sample are NaN there.
    ``X`` is absent and ``var`` empty: the expression stays in the sample files.
    """
    import anndata as ad
    import h5py
    from anndata.io import read_elem

    parts = []
    for dataset, cells, scores, calls in samples:
        with h5py.File(cells, "r") as f:
            obs = read_elem(f["obs"])
        obs = obs[[c for c in COHORT_OBS if c in obs]]
        part = scored_obs(obs, pd.read_parquet(scores), pd.read_parquet(calls))
        part.insert(0, "cell", part.index.astype(str))
        part.insert(0, "dataset", str(dataset))
        part.index = pd.Index((str(dataset) + ":" + part["cell"]).to_numpy(dtype=str))
        parts.append(part)
    obs = pd.concat(parts, axis=0) if parts else pd.DataFrame()
    # text columns (categories differ between samples, some all missing) as categoricals of
    # their strings, missing values kept missing: h5ad cannot store object columns with NaN
    for column in obs.columns:
        if obs[column].dtype == object or isinstance(obs[column].dtype, pd.CategoricalDtype):
            obs[column] = obs[column].astype("string").astype("category")
    return ad.AnnData(obs=obs)
