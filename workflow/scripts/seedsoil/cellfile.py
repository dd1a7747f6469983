"""Parts of a cell file (``cells.h5ad``, ``ingested.h5ad``) read without its whole matrices.

An atlas-size sample does not fit in one job's memory as an AnnData. The stages after scoring
need its per-cell annotations (``obs``, ``obsm``), gene names and ``uns``, plus the columns of a
few genes: these readers give them with one block of rows in memory at a time.
"""

from __future__ import annotations

import os
from collections.abc import Iterator

import anndata as ad
import numpy as np
import pandas as pd
import scipy.sparse as sp

from .errors import InputError
from .util import return_freed_memory

#: Rows read per block when streaming a matrix (about 100 MB of a 2,000-genes-per-cell sample).
BLOCK_CELLS = 20_000


def read_annotations(path: str | os.PathLike) -> ad.AnnData:
    """The AnnData of ``path`` without matrices: ``obs``, ``var``, ``obsm`` and ``uns``; ``X`` is
    None. ``obs``' string columns hold one object per distinct string (:func:`share_strings`)."""
    import h5py
    from anndata.io import read_elem

    try:
        check_sources(path)
        with h5py.File(path, "r") as f:
            parts = {key: read_elem(f[key]) for key in ("obs", "var", "obsm", "uns") if key in f}
    except OSError as error:
        raise InputError(f"cannot read {path} as h5ad ({error}); delete it and re-run") from None
    if "obs" in parts:
        share_strings(parts["obs"])
    return ad.AnnData(**parts)


def read_obs_names(path: str | os.PathLike) -> pd.Index:
    """The cell names of the h5ad at ``path`` (``obs_names``, as :func:`read_annotations`
    gives them) without the rest of ``obs`` or anything else: what a step that only aligns
    per-cell tables to the file's cells needs (a million names, ~70 MB)."""
    import h5py
    from anndata.io import read_elem

    try:
        with h5py.File(path, "r") as f:
            key = f["obs"].attrs["_index"]
            names = read_elem(f["obs"][key])
    except OSError as error:
        raise InputError(f"cannot read {path} as h5ad ({error}); delete it and re-run") from None
    return pd.Index(names, name=None if key == "_index" else key)


def share_strings(frame: pd.DataFrame) -> None:
    """Make each object column of ``frame`` whose values are all strings hold one object per
    distinct string, in place: the same values (equal strings), but an h5ad string array is
    read with a string object per cell — ~50 bytes each, 150 MB for a million cells' three
    constant columns (sample, condition, QC reason) of the interpret job."""
    for name in frame.columns:
        column = frame[name]
        if column.dtype != object or not len(column):
            continue
        codes, uniques = pd.factorize(column.to_numpy())
        # only strings: factorize would also merge 1, 1.0 and True, which are different values
        if codes.min() >= 0 and all(type(u) is str for u in uniques):
            frame[name] = np.asarray(uniques, dtype=object)[codes]


def read_genes(
    path: str | os.PathLike,
    genes,
    *,
    layer: str | None = None,
    block_cells: int = BLOCK_CELLS,
) -> ad.AnnData:
    """:func:`read_annotations` with ``X`` holding the columns of ``genes`` (of ``X``, or of
    ``layers[layer]``) as CSR; ``var`` is restricted to those of ``genes`` the file has, in
    file order. Genes the file lacks are left out (check ``var_names``)."""
    from .scoring._input import open_source

    annotations = read_annotations(path)
    source = open_source(os.fspath(path), layer=layer)
    columns = np.flatnonzero(source.var_names.isin(list(genes)))
    # pieces of a few million stored values, each cut to the genes: no block's full rows held
    blocks = [block for _, block in source.selected_chunks(block_cells, columns=columns)]
    matrix = (
        sp.vstack(blocks, format="csr")
        if blocks
        else sp.csr_matrix((annotations.n_obs, columns.size), dtype=np.float32)
    )
    del blocks
    adata = ad.AnnData(
        X=matrix,
        obs=annotations.obs,
        var=annotations.var.iloc[columns],
        obsm=dict(annotations.obsm),
        uns=annotations.uns,
    )
    return_freed_memory()  # the pass's freed temporaries, which the heap keeps mapped otherwise
    return adata


def shares_structure(path: str | os.PathLike, key: str, other: str) -> bool:
    """Whether the CSR matrices ``key`` and ``other`` of ``path`` (e.g. ``"X"`` and
    ``"layers/counts"``) store their ``indices`` and ``indptr`` once: the same HDF5 objects,
    hard-linked under both names, as :class:`CsrWriter` and the split write a counts layer."""
    import h5py

    with h5py.File(path, "r") as f:
        if not (key in f and other in f):
            return False
        a, b = f[key], f[other]
        if not (isinstance(a, h5py.Group) and isinstance(b, h5py.Group)):
            return False
        return all(
            part in a
            and part in b
            and h5py.h5o.get_info(a[part].id).addr == h5py.h5o.get_info(b[part].id).addr
            for part in ("indices", "indptr")
        )


def block_pairs(
    path: str | os.PathLike, key: str, other: str, block_cells: int = BLOCK_CELLS
) -> Iterator[tuple[sp.csr_matrix, sp.csr_matrix]]:
    """The same rows of the CSR matrices ``key`` and ``other`` of ``path``, ``block_cells`` at
    a time, each block as ``open_source(path, ...).chunks(block_cells, check_finite=False)``
    gives it; the two must share their structure (:func:`shares_structure`), whose
    ``indices`` are then read once per block instead of once per matrix."""
    import h5py

    if block_cells < 1:
        raise InputError(f"block_cells must be a positive number of cells, got {block_cells}")
    if not shares_structure(path, key, other):
        raise InputError(f"{path}: /{key} and /{other} do not share indices and indptr")
    with h5py.File(path, "r") as f:
        first, second = f[key], f[other]
        n_rows, n_cols = (int(n) for n in first.attrs["shape"])
        indptr = first["indptr"][...]
        for start in range(0, n_rows, block_cells):
            stop = min(start + block_cells, n_rows)
            lo, hi = int(indptr[start]), int(indptr[stop])
            indices = first["indices"][lo:hi]
            pointers = indptr[start : stop + 1] - lo
            yield tuple(
                sp.csr_matrix(
                    (
                        node["data"][lo:hi],
                        *(
                            (indices, pointers)
                            if node is first
                            else (indices.copy(), pointers.copy())
                        ),
                    ),
                    shape=(stop - start, n_cols),
                )
                for node in (first, second)
            )


#: Filter of the matrices the workflow writes. LZF (bundled with h5py, so read by every
#: anndata) writes ~3x faster than gzip level 1 and ~8x faster than level 4, which decides
#: whether an atlas of a million cells gets through ingest and split in minutes. Files are
#: ~1.5x gzip's size; R readers without the LZF filter need a gzip copy (docs/cluster.md).
COMPRESSION = {"compression": "lzf"}


def index_filters(compression: dict | None) -> dict | None:
    """The filters of a CSR matrix's column indices written with ``compression``: HDF5's byte
    shuffle (built into every HDF5 library) before it. Column numbers below 65,536 leave the
    two high bytes of every int32 zero, and grouped by byte LZF stores the indices in ~31 % of
    their size instead of ~88 %, ~25 % faster (benchmarks/README.md, ingest). None stays None."""
    return {**compression, "shuffle": True} if compression else compression


def copy_objects(source, target, names, *, references: bool = False) -> None:
    """HDF5 object copies of ``source[name]`` into ``target[name]`` for each of ``names``.

    Datasets keep their chunks and filters, which are copied without being decompressed; a
    virtual dataset of ``source`` is copied as the values it reads (:func:`_materialise`), so
    the copy stands alone. With ``references``, every dataset becomes instead a virtual dataset
    reading the same values where they are stored (:func:`reference_dataset`): nothing is
    copied. An object linked under several names (the ``indices`` and ``indptr`` a counts layer
    shares with ``X``) is copied once and hard-linked in ``target`` as in ``source``: one HDF5
    object copy per name would store it twice.
    """
    import h5py

    copied: dict[int, str] = {}  # address in source -> path in target

    def copy(node, parent, name: str) -> None:
        address = h5py.h5o.get_info(node.id).addr
        if address in copied:
            parent[name] = target[copied[address]]
            return
        if isinstance(node, h5py.Dataset):
            if references:
                reference_dataset(node, parent, name)
            elif node.is_virtual:
                _materialise(node, parent, name)
            else:
                node.parent.copy(node, parent, name)
        else:
            group = parent.create_group(name)
            for key in node.attrs:
                group.attrs.create(key, node.attrs[key], dtype=node.attrs.get_id(key).dtype)
            for key in node:
                copy(node[key], group, key)
        copied[address] = parent[name].name

    for name in names:
        copy(source[name], target, name)


class CsrWriter:
    """A CSR matrix written into ``parent[key]`` (anndata's ``csr_matrix`` encoding) one block
    of rows at a time, so a job never holds more than a block of it.

    A matrix with the sparsity structure of another (``same_structure_as``, e.g. the counts
    of a log-normalised ``X``) stores only its values and hard-links the other's ``indices``
    and ``indptr``: HDF5 keeps one copy, every reader sees two complete matrices.
    ``compression`` is the filter of the values and of the column indices, which are
    byte-shuffled before it (:func:`index_filters`) unless ``shuffle_indices`` is False.
    """

    def __init__(
        self,
        parent,
        key: str,
        n_cols: int,
        dtype,
        compression: dict | None = None,
        same_structure_as: CsrWriter | None = None,
        shuffle_indices: bool = True,
    ):
        storage = {"maxshape": (None,), "chunks": (1 << 18,)}
        index_compression = index_filters(compression) if shuffle_indices else compression
        self.group = parent.create_group(key)
        self.n_cols = n_cols
        self.twin = same_structure_as
        self.data = self.group.create_dataset(
            "data", shape=(0,), dtype=dtype, **storage, **(compression or {})
        )
        self.indices = (
            None
            if self.twin
            else self.group.create_dataset(
                "indices", shape=(0,), dtype=np.int32, **storage, **(index_compression or {})
            )
        )
        self.indptr = [np.zeros(1, dtype=np.int64)]
        self.nnz = 0
        self.last_block = None

    def append(self, block: sp.csr_matrix) -> None:
        """Add ``block``'s rows after those written so far."""
        if block.shape[1] != self.n_cols:
            raise ValueError(f"block has {block.shape[1]} columns, the matrix {self.n_cols}")
        if self.twin is not None and not _same_structure(block, self.twin.last_block):
            raise ValueError("block's sparsity structure differs from the matrix it shares it with")
        end = self.nnz + block.nnz
        self.data.resize((end,))
        self.data[self.nnz :] = block.data
        if self.indices is not None:
            self.indices.resize((end,))
            self.indices[self.nnz :] = block.indices
        self.indptr.append(block.indptr[1:].astype(np.int64) + self.nnz)
        self.nnz = end
        self.last_block = block

    def close(self) -> int:
        """Write (or link) the row pointers and shape; returns the number of rows."""
        if self.twin is not None:
            self.group["indices"] = self.twin.group["indices"]
            self.group["indptr"] = self.twin.group["indptr"]
        else:
            indptr = np.concatenate(self.indptr)
            # int32 pointers while they fit: scipy casts indices and indptr to one dtype on reading
            if self.nnz < np.iinfo(np.int32).max:
                indptr = indptr.astype(np.int32)
            self.group.create_dataset("indptr", data=indptr)
        n_rows = sum(part.size for part in self.indptr) - 1
        self.group.attrs.update(
            {
                "encoding-type": "csr_matrix",
                "encoding-version": "0.1.0",
                "shape": (n_rows, self.n_cols),
            }
        )
        return n_rows


def _same_structure(a: sp.csr_matrix, b: sp.csr_matrix | None) -> bool:
    return (
        b is not None
        and a.shape == b.shape
        and np.array_equal(a.indptr, b.indptr)
        and np.array_equal(a.indices, b.indices)
    )


def write_annotations(f, adata: ad.AnnData, compression: dict | None = None) -> None:
    """Everything of ``adata`` but its matrices into the open h5ad file ``f`` (string columns
    become categoricals, in place, as ``write_h5ad`` makes them): the root's
    encoding, ``obs``, ``var``, ``obsm``, ``uns``, empty ``varm``/``obsp``/``varp``, and an
    empty ``layers`` unless the file has one."""
    from anndata.io import write_elem

    adata.strings_to_categoricals()  # as AnnData.write_h5ad does
    f.attrs.update({"encoding-type": "anndata", "encoding-version": "0.1.0"})
    kwargs = {"dataset_kwargs": compression} if compression else {}
    for key in ("obs", "var"):
        write_elem(f, key, getattr(adata, key), **kwargs)
    write_elem(f, "obsm", dict(adata.obsm), **kwargs)
    write_elem(f, "uns", dict(adata.uns), **kwargs)
    for key in ("varm", "obsp", "varp"):
        write_elem(f, key, {})
    if "layers" in f:
        f["layers"].attrs.update({"encoding-type": "dict", "encoding-version": "0.1.0"})
    else:
        write_elem(f, "layers", {})


# ---- matrices stored once: virtual datasets (HDF5 VDS) instead of copies

#: Most runs of consecutive rows a sample's cell file maps from the ingested file. Every read of
#: a virtual dataset walks all its mappings (measured: 20 block reads of 1 M values take 0.16 s
#: with 1,000 mappings, 0.5 s with 10,000, 5 s with 100,000; writing the mappings 0.2 / 2 / 27 s
#: per array), so a sample scattered in more runs is copied instead (seedsoil.split).
MAX_VIRTUAL_RUNS = 10_000

#: Parts of a cell file holding matrices, referenced or copied as a whole (everything else is
#: per-cell or per-gene metadata, always written into the file itself).
MATRIX_GROUPS = ("X", "layers")


def row_runs(keep: np.ndarray) -> np.ndarray:
    """``(k, 2)`` array of ``[start, stop)`` row ranges: the maximal runs of True in ``keep``."""
    edges = np.flatnonzero(np.diff(np.concatenate(([0], keep.astype(np.int8), [0]))))
    return edges.reshape(-1, 2)


def _fill_value(dtype) -> np.ndarray:
    """What a virtual dataset reads where its source file is missing: NaN for floats, -1 for
    signed integers (never silently zero, which would look like a valid matrix), else 0."""
    dtype = np.dtype(dtype)
    if dtype.kind == "f":
        return np.array(np.nan, dtype=dtype)
    return np.array(-1 if dtype.kind == "i" else 0, dtype=dtype)


def _source_name(source_file: str, target_file: str) -> str:
    """``source_file`` as a virtual dataset in ``target_file`` names it: relative to the target's
    folder (HDF5 resolves a relative source name against the folder of the file holding the
    virtual dataset, so a results folder moved as a whole keeps working), ``%`` escaped as HDF5
    asks."""
    relative = os.path.relpath(
        os.path.abspath(source_file), os.path.dirname(os.path.abspath(target_file))
    )
    return relative.replace("%", "%%")


def create_virtual(parent, name: str, shape, dtype, mappings) -> None:
    """A virtual dataset ``parent[name]`` of ``shape`` and ``dtype`` made of ``mappings``:
    ``(virtual selection, source file name, source dataset path, source selection)`` tuples
    (h5py ``SpaceID`` selections; file names as HDF5 stores them, see :func:`_source_name`)."""
    import h5py

    dcpl = h5py.h5p.create(h5py.h5p.DATASET_CREATE)
    dcpl.set_fill_value(_fill_value(dtype))
    for virtual, file_name, dataset, selection in mappings:
        dcpl.set_virtual(virtual, file_name.encode(), dataset.encode(), selection)
    space = h5py.h5s.create_simple(tuple(shape), tuple(shape))
    h5py.h5d.create(parent.id, name.encode(), h5py.h5t.py_create(np.dtype(dtype), logical=1),
                    space, dcpl=dcpl).close()  # fmt: skip


def virtual_ranges(parent, name: str, source, source_file: str, starts, stops) -> None:
    """``parent[name]``: the 1-D ``source`` dataset's ranges ``[starts[i], stops[i])`` one after
    another, as a virtual dataset (nothing copied). ``source_file`` is the path of the file
    holding ``source``. Empty ranges are skipped; no value at all gives an empty real dataset."""
    import h5py

    lengths = np.asarray(stops) - np.asarray(starts)
    total = int(lengths.sum())
    if total == 0:
        parent.create_dataset(name, shape=(0,), dtype=source.dtype)
        return
    file_name = _source_name(source_file, parent.file.filename)
    offsets = np.concatenate(([0], np.cumsum(lengths)))
    mappings = []
    for start, length, offset in zip(starts, lengths, offsets[:-1], strict=True):
        if length == 0:
            continue
        virtual = h5py.h5s.create_simple((total,), (total,))
        virtual.select_hyperslab((int(offset),), (1,), block=(int(length),))
        selection = h5py.h5s.create_simple(source.shape, source.shape)
        selection.select_hyperslab((int(start),), (1,), block=(int(length),))
        mappings.append((virtual, file_name, source.name, selection))
    create_virtual(parent, name, (total,), source.dtype, mappings)


def _resolved(file_name: str, holder: str) -> str:
    """The path of a virtual dataset's source file ``file_name`` (as stored) held in ``holder``."""
    name = file_name.replace("%%", "%")
    if name == ".":
        return holder
    return os.path.normpath(os.path.join(os.path.dirname(holder), name))


def reference_dataset(node, parent, name: str) -> None:
    """``parent[name]``: a virtual dataset reading what the dataset ``node`` reads, without
    copying it. A real ``node`` is mapped whole; a virtual one's mappings are re-made in
    ``parent``'s file, pointing at the same sources (so references never chain)."""
    import h5py

    holder = node.file.filename
    if node.is_virtual:
        mappings = [
            (m.vspace, _source_name(_resolved(m.file_name, holder), parent.file.filename),
             m.dset_name, m.src_space)
            for m in node.virtual_sources()
        ]  # fmt: skip
    else:
        whole = h5py.h5s.create_simple(node.shape, node.shape)
        mappings = [(whole, _source_name(holder, parent.file.filename), node.name, whole)]
    if node.size == 0:
        parent.create_dataset(name, shape=node.shape, dtype=node.dtype)
        return
    create_virtual(parent, name, node.shape, node.dtype, mappings)
    for key in node.attrs:
        parent[name].attrs.create(key, node.attrs[key], dtype=node.attrs.get_id(key).dtype)


def _materialise(node, parent, name: str, block_values: int = 1 << 24) -> None:
    """``parent[name]``: a real, compressed copy of the (virtual) dataset ``node``, block by
    block; a CSR matrix's ``indices`` byte-shuffled before compression, as :class:`CsrWriter`
    stores them."""
    chunks = (min(1 << 18, max(node.shape[0], 1)),) + tuple(node.shape[1:]) if node.ndim else None
    filters = index_filters(COMPRESSION) if name == "indices" else COMPRESSION
    target = parent.create_dataset(name, shape=node.shape, dtype=node.dtype, chunks=chunks,
                                   **filters)  # fmt: skip
    rows = max(1, block_values // max(1, int(np.prod(node.shape[1:], dtype=np.int64))))
    for lo in range(0, node.shape[0] if node.ndim else 0, rows):
        target[lo : lo + rows] = node[lo : lo + rows]
    for key in node.attrs:
        target.attrs.create(key, node.attrs[key], dtype=node.attrs.get_id(key).dtype)


def virtual_sources(path: str | os.PathLike) -> dict[str, bool]:
    """Source files of the virtual datasets in ``path``'s matrices (:data:`MATRIX_GROUPS`),
    each mapped to whether it exists. Empty for a standalone file."""
    import h5py

    found: dict[str, bool] = {}
    holder = os.fspath(path)

    def visit(_, node) -> None:
        if isinstance(node, h5py.Dataset) and node.is_virtual:
            for name in {m.file_name for m in node.virtual_sources()}:
                source = _resolved(name, holder)
                found[source] = os.path.exists(source)

    with h5py.File(holder, "r") as f:
        for group in MATRIX_GROUPS:
            if group in f and isinstance(f[group], h5py.Group):
                f[group].visititems(visit)
    return found


def check_sources(path: str | os.PathLike) -> None:
    """Raise :class:`InputError` when ``path``'s matrices refer to a file that is missing (a
    virtual dataset would read NaN there): a deleted or moved ``ingested.h5ad``."""
    missing = sorted(name for name, exists in virtual_sources(path).items() if not exists)
    if missing:
        raise InputError(
            f"{path} stores its matrices as references to {', '.join(missing)}, which is "
            "missing: restore it (move the results folder as a whole), or delete the file and "
            "re-run the workflow (outputs.standalone_h5ad: true writes files without references)"
        )


def stored_bytes(path: str | os.PathLike) -> int:
    """Bytes of ``path`` on disk plus the bytes its virtual datasets read from other files:
    each mapping counts the share of its source dataset's stored (compressed) size that it
    selects. This is the size a job reading the whole file really reads, which the file's own
    size (a few MB of references) is not. Files that are not HDF5 count their size."""
    import h5py

    path = os.fspath(path)
    total = os.path.getsize(path)
    try:
        f = h5py.File(path, "r")
    except OSError:
        return total
    sources: dict[str, object] = {}
    virtual = []

    def visit(_, node) -> None:
        if isinstance(node, h5py.Dataset) and node.is_virtual:
            virtual.append(node)

    with f:
        f.visititems(visit)  # each object once, whatever its number of hard links
        for node in virtual:
            for mapping in node.virtual_sources():
                source_path = _resolved(mapping.file_name, path)
                if source_path not in sources:
                    sources[source_path] = (
                        h5py.File(source_path, "r") if os.path.exists(source_path) else None
                    )
                source = sources[source_path]
                if source is None or mapping.dset_name not in source:
                    continue
                dataset = source[mapping.dset_name]
                selected = mapping.src_space.get_select_npoints()
                total += dataset.id.get_storage_size() * selected // max(dataset.size, 1)
    for source in sources.values():
        if source is not None:
            source.close()
    return int(total)
