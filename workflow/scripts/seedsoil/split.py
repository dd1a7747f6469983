"""One sample's QC-passed cells from the ingested ``.h5ad``, without copying its matrices.

:func:`seedsoil.pipeline.sample_cells` does the same on an AnnData in memory; this writes a
file that reads back identical (same matrices, obs, var, obsm and uns). Its matrices' values
and column indices are HDF5 virtual datasets mapping the sample's rows of the ingested file,
one mapping per run of consecutive QC-passed rows, and only the row pointers are rewritten:
each matrix is stored once, in ``ingested.h5ad``, and the split takes seconds at any size.
A sample scattered in more than :data:`seedsoil.cellfile.MAX_VIRTUAL_RUNS` runs, or any
sample with ``standalone=True``, is copied instead, block by block of rows, so a split job's
memory does not grow with the dataset (all its samples are split in parallel).
"""

from __future__ import annotations

import os

import numpy as np
import pandas as pd
import scipy.sparse as sp

from .cellfile import (
    COMPRESSION,
    MAX_VIRTUAL_RUNS,
    CsrWriter,
    copy_objects,
    row_runs,
    virtual_ranges,
)
from .errors import InputError
from .scoring.depth import depth_summary

#: Sparse matrices copied row block by row block (everything else is per-cell metadata).
_MATRICES = ("X", "layers/counts")


def _csr_node(source, key: str):
    node = source[key]
    if node.attrs.get("encoding-type") != "csr_matrix":
        raise InputError(
            f"{source.filename}: /{key} is {node.attrs.get('encoding-type')!r}, not a CSR matrix; "
            "re-run ingest"
        )
    return node


def _copy_rows(source, target, keys, keep: np.ndarray, block_size: int, compression) -> None:
    """Rows ``keep`` (boolean) of the CSR matrices ``source[key]`` into new ``target[key]``.

    A matrix sharing another's ``indices`` (the counts layer ingest writes with ``X``'s
    structure) shares them in ``target`` too, and they are read once.
    """
    import h5py

    nodes = {key: _csr_node(source, key) for key in keys}
    address = {key: h5py.h5o.get_info(node["indices"].id).addr for key, node in nodes.items()}
    twin = {key: next((k for k in keys[:i] if address[k] == address[key]), None)
            for i, key in enumerate(keys)}  # fmt: skip
    writers = {}
    for key, node in nodes.items():
        writers[key] = CsrWriter(
            target, key, int(node.attrs["shape"][1]), node["data"].dtype, compression,
            same_structure_as=writers.get(twin[key]),
        )  # fmt: skip
    indptr = {key: node["indptr"][...] for key, node in nodes.items()}
    for lo in range(0, keep.size, block_size):
        hi = min(lo + block_size, keep.size)
        rows = keep[lo:hi]
        if not rows.any():
            continue
        indices = {}
        for key, node in nodes.items():
            first, last = int(indptr[key][lo]), int(indptr[key][hi])
            indices[key] = indices[twin[key]] if twin[key] else node["indices"][first:last]
            block = sp.csr_matrix(
                (node["data"][first:last], indices[key], indptr[key][lo : hi + 1] - first),
                shape=(hi - lo, writers[key].n_cols),
            )
            writers[key].append(block[rows])
    for writer in writers.values():
        writer.close()


def _link_rows(source, target, keys, keep: np.ndarray) -> None:
    """Rows ``keep`` (boolean) of the CSR matrices ``source[key]`` as new ``target[key]``
    whose values and column indices are virtual datasets over ``source``'s (one mapping per
    run of consecutive kept rows, nothing copied) and whose row pointers are rewritten. Parts
    ``source`` shares between matrices (hard links) are shared in ``target`` too."""
    import h5py

    runs = row_runs(keep)  # one mapping per run of consecutive kept rows
    made: dict[int, str] = {}  # address in source -> path in target
    for key in keys:
        node = _csr_node(source, key)
        group = target.create_group(key)
        indptr = node["indptr"][...]
        lengths = np.diff(indptr)[keep]
        n_values = int(lengths.sum())
        for part in ("data", "indices", "indptr"):
            address = h5py.h5o.get_info(node[part].id).addr
            if address in made:
                group[part] = target[made[address]]
            elif part == "indptr":
                pointers = np.concatenate(([0], np.cumsum(lengths, dtype=np.int64)))
                # int32 pointers while they fit, as CsrWriter writes them
                if n_values < np.iinfo(np.int32).max:
                    pointers = pointers.astype(np.int32)
                group.create_dataset(part, data=pointers)
            else:
                starts, stops = indptr[runs[:, 0]], indptr[runs[:, 1]]
                virtual_ranges(group, part, node[part], source.filename, starts, stops)
            made[address] = group[part].name
        for name in node.attrs:
            group.attrs.create(name, node.attrs[name], dtype=node.attrs.get_id(name).dtype)
        group.attrs["shape"] = (int(lengths.size), int(node.attrs["shape"][1]))


def write_sample_cells(
    ingested: str | os.PathLike,
    sample: str,
    path: str | os.PathLike,
    *,
    block_size: int = 20_000,
    compression: dict | None = COMPRESSION,
    standalone: bool = False,
) -> int:
    """Write the QC-passed cells of ``sample`` from the ``ingested`` file to ``path``.

    The result reads back as ``sample_cells(anndata.read_h5ad(ingested), sample)`` written
    with ``write_h5ad``: rows in file order, unused categories dropped from categorical obs
    columns, and ``uns["seedsoil"]`` given ``sample`` and the sample's QC record (per-cell
    metrics of all its cells, and the count of each QC reason). Returns the number of cells.

    The matrices refer to ``ingested`` by its path relative to ``path``'s folder (virtual
    datasets, see the module), unless ``standalone`` or the sample's kept rows form more than
    :data:`~seedsoil.cellfile.MAX_VIRTUAL_RUNS` runs: then they are copied. ``ingested`` must
    stay where it is relative to ``path`` (a folder holding both may move as a whole).
    """
    import h5py
    from anndata.io import read_elem, write_elem

    with h5py.File(ingested, "r") as source:
        obs = read_elem(source["obs"])
        in_sample = (obs["sample"].astype(str) == sample).to_numpy()
        keep = in_sample & obs["qc_pass"].to_numpy(dtype=bool)
        if not keep.any():
            raise InputError(f"{ingested}: sample {sample!r} has no QC-passed cell to write")
        uns = read_elem(source["uns"])
        meta = uns["seedsoil"]
        meta["sample"] = sample
        meta["qc"]["sample_metrics"] = {
            name: obs.loc[in_sample, name].to_numpy().tolist()
            for name in ("n_counts", "n_genes", "mito_fraction")
        }
        reasons = obs.loc[in_sample, "qc_reason"].astype(str).replace("", "kept")
        meta["qc"]["sample_reasons"] = reasons.value_counts().to_dict()
        n_vars = len(read_elem(source["var"]).index)
        meta["depth"] = depth_summary(obs.loc[keep, "n_genes"].to_numpy(), n_vars)
        kept = obs.loc[keep].copy()
        for column in kept.columns:
            if isinstance(kept[column].dtype, pd.CategoricalDtype):
                kept[column] = kept[column].cat.remove_unused_categories()
        obsm = {name: np.asarray(array)[keep] for name, array in read_elem(source["obsm"]).items()}
        with h5py.File(path, "w") as target:
            target.attrs.update({"encoding-type": "anndata", "encoding-version": "0.1.0"})
            kwargs = compression or {}
            keys = [key for key in _MATRICES if key in source]
            runs = row_runs(keep)
            if not standalone and len(runs) <= MAX_VIRTUAL_RUNS:
                # each matrix stored once: the sample's rows stay in the ingested file
                _link_rows(source, target, keys, keep)
            elif keep.all():
                # the matrices as stored (chunks not decompressed): a one-sample atlas splits
                # at disk speed
                copy_objects(source, target, [key for key in ("X", "layers") if key in source])
            else:
                _copy_rows(source, target, keys, keep, block_size, compression)
            if "layers" not in target:
                write_elem(target, "layers", {})
            else:
                target["layers"].attrs.update(
                    {"encoding-type": "dict", "encoding-version": "0.1.0"}
                )
            write_elem(target, "obs", kept, dataset_kwargs=kwargs)
            write_elem(target, "var", read_elem(source["var"]), dataset_kwargs=kwargs)
            write_elem(target, "obsm", obsm, dataset_kwargs=kwargs)
            for key in ("varm", "obsp", "varp"):
                write_elem(target, key, {})
            write_elem(target, "uns", uns, dataset_kwargs=kwargs)
    return int(keep.sum())
