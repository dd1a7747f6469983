"""Parts of a cell file (``cells.h5ad``, ``ingested.h5ad``) read without its whole matrices.

An atlas-size sample does not fit in one job's memory as an AnnData. The stages after scoring
need its per-cell annotations (``obs``, ``obsm``), gene names and ``uns``, plus the columns of a
few genes: these readers give them with one block of rows in memory at a time.
"""

from __future__ import annotations

import os

import anndata as ad
import numpy as np
import scipy.sparse as sp

from .errors import InputError

#: Rows read per block when streaming a matrix (about 100 MB of a 2,000-genes-per-cell sample).
BLOCK_CELLS = 20_000


def read_annotations(path: str | os.PathLike) -> ad.AnnData:
    """The AnnData of ``path`` without matrices: ``obs``, ``var``, ``obsm`` and ``uns``; ``X`` is None."""
    import h5py
    from anndata.io import read_elem

    try:
        with h5py.File(path, "r") as f:
            parts = {key: read_elem(f[key]) for key in ("obs", "var", "obsm", "uns") if key in f}
    except OSError as error:
        raise InputError(f"cannot read {path} as h5ad ({error}); delete it and re-run") from None
    return ad.AnnData(**parts)


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
    blocks = [block[:, columns] for block in source.chunks(block_cells, check_finite=False)]
    matrix = (
        sp.vstack(blocks, format="csr")
        if blocks
        else sp.csr_matrix((annotations.n_obs, columns.size), dtype=np.float32)
    )
    return ad.AnnData(
        X=matrix,
        obs=annotations.obs,
        var=annotations.var.iloc[columns],
        obsm=dict(annotations.obsm),
        uns=annotations.uns,
    )


#: Filter of the matrices the workflow writes. LZF (bundled with h5py, so read by every
#: anndata) writes ~3x faster than gzip level 1 and ~8x faster than level 4, which decides
#: whether an atlas of a million cells gets through ingest and split in minutes. Files are
#: ~1.5x gzip's size; R readers without the LZF filter need a gzip copy (docs/cluster.md).
COMPRESSION = {"compression": "lzf"}


def copy_objects(source, target, names) -> None:
    """HDF5 object copies of ``source[name]`` into ``target[name]`` for each of ``names``.

    Datasets keep their chunks and filters, which are copied without being decompressed. An
    object linked under several names (the ``indices`` and ``indptr`` a counts layer shares with
    ``X``) is copied once and hard-linked in ``target`` as in ``source``: one HDF5 object copy
    per name would store it twice.
    """
    import h5py

    copied: dict[int, str] = {}  # address in source -> path in target

    def copy(node, parent, name: str) -> None:
        address = h5py.h5o.get_info(node.id).addr
        if address in copied:
            parent[name] = target[copied[address]]
            return
        if isinstance(node, h5py.Dataset):
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
    """

    def __init__(
        self,
        parent,
        key: str,
        n_cols: int,
        dtype,
        compression: dict | None = None,
        same_structure_as: CsrWriter | None = None,
    ):
        storage = {"maxshape": (None,), "chunks": (1 << 18,), **(compression or {})}
        self.group = parent.create_group(key)
        self.n_cols = n_cols
        self.twin = same_structure_as
        self.data = self.group.create_dataset("data", shape=(0,), dtype=dtype, **storage)
        self.indices = (
            None
            if self.twin
            else self.group.create_dataset("indices", shape=(0,), dtype=np.int32, **storage)
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
