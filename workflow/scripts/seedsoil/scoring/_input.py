"""Turn what the user gave (AnnData, CSR matrix + names, ``.h5ad`` path) into row chunks.

Scoring never needs more than one chunk of cells in memory: an ``.h5ad`` file is read
with h5py one block of rows at a time (CSR ``X``/layer, or dense ``X`` converted block by
block), and sparse input is never densified.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from functools import cached_property
from pathlib import Path

import numpy as np
import pandas as pd
import scipy.sparse as sp

from ..errors import InputError

#: Most stored values read from a file at once by :meth:`MatrixSource.selected_chunks` (one
#: piece: 4 M values, 32 MB of float32 values and int32 indices): a block of 20,000 droplet cells
#: of a 20,000-gene atlas holds ~31 M (250 MB), of which a caller usually keeps a few rows or
#: genes.
PIECE_VALUES = 4_000_000


@dataclass(frozen=True)
class MatrixSource:
    """Cells × genes data that can be read as CSR row chunks, as many times as needed.

    The cell names of an on-disk source are read when first asked for (``obs_names``), or only
    a range of them (:meth:`obs_slice`): a job that scores a fifth of a million cells needs a
    fifth of the names, and reading all of them costs ~1.5 s each time the file is opened."""

    label: str
    var_names: pd.Index
    n_cells: int
    _read_rows: Callable[[int, int], sp.csr_matrix] | None  # in-memory data
    _path: Path | None = None  # on-disk data: the .h5ad and the key of the matrix in it
    _key: str | None = None
    _obs_names: pd.Index | None = None  # in-memory data's cell names

    @cached_property
    def obs_names(self) -> pd.Index:
        return self._obs_names if self._obs_names is not None else self.obs_slice(0, self.n_cells)

    def obs_slice(self, start: int, stop: int) -> pd.Index:
        """The names of cells ``start:stop``, read from disk for an on-disk source."""
        if self._path is None or "obs_names" in self.__dict__:
            return self.obs_names[start:stop]
        import h5py

        with h5py.File(self._path, "r") as f:
            names = _h5_names(f, "obs", self._path, start, stop)
            if start == 0 and stop == self.n_cells and len(names) != self.n_cells:
                raise InputError(
                    f"{self._path}: /obs has {len(names)} cells but /{self._key} has "
                    f"{self.n_cells} rows"
                )
        return names

    @property
    def n_genes(self) -> int:
        return len(self.var_names)

    def chunks(self, chunk_size: int, *, check_finite: bool = True) -> Iterator[sp.csr_matrix]:
        """Yield consecutive CSR blocks of at most ``chunk_size`` rows, in row order.

        Each block is checked for NaN/inf unless ``check_finite=False`` (a pass over data an
        earlier pass already checked).
        """
        if chunk_size < 1:
            raise InputError(f"chunk_size must be a positive number of cells, got {chunk_size}")
        if self._path is not None:
            import h5py

            with h5py.File(self._path, "r") as f:
                node = f[self._key]
                indptr = node["indptr"][...] if isinstance(node, h5py.Group) else None
                for start in range(0, self.n_cells, chunk_size):
                    stop = min(start + chunk_size, self.n_cells)
                    chunk = _read_h5_rows(node, indptr, start, stop, self.n_genes)
                    yield self._checked(chunk, start) if check_finite else chunk
        else:
            for start in range(0, self.n_cells, chunk_size):
                stop = min(start + chunk_size, self.n_cells)
                chunk = self._read_rows(start, stop)
                yield self._checked(chunk, start) if check_finite else chunk

    def selected_chunks(
        self,
        chunk_size: int,
        *,
        rows: np.ndarray | None = None,
        columns: np.ndarray | None = None,
        piece_values: int | None = None,
    ) -> Iterator[tuple[np.ndarray, sp.csr_matrix]]:
        """Yield ``(cells, block)`` per block of :meth:`chunks` (``chunk_size`` consecutive
        cells, in order) that holds any of ``rows`` (sorted row numbers; None: every cell, every
        block): ``cells`` the block's rows among them, ``block`` their CSR rows restricted to
        ``columns`` (column numbers, in that order; None: every column) — equal, value for value
        and in the same order within each row, to ``chunk[cells - first][:, columns]``. No check
        for NaN/inf (the scoring pass checked the file).

        From a file, a block is read in pieces of consecutive rows holding at most
        ``piece_values`` (default :data:`PIECE_VALUES`) stored values (at least one row each),
        each piece cut to the rows and
        columns before the next is read: a block's full rows are never all in memory at once.
        Rows and columns are selected row by row, so the result does not depend on the pieces.
        """
        if chunk_size < 1:
            raise InputError(f"chunk_size must be a positive number of cells, got {chunk_size}")
        rows = None if rows is None else np.asarray(rows, dtype=np.int64)
        piece_values = piece_values or PIECE_VALUES
        if self._path is None:  # in memory: a block is a view of (or as large as) the data
            for number, chunk in enumerate(self.chunks(chunk_size, check_finite=False)):
                cells, chunk = _selected(chunk, number * chunk_size, rows, columns)
                if cells.size:
                    yield cells, chunk
            return
        import h5py

        with h5py.File(self._path, "r") as f:
            node = f[self._key]
            indptr = node["indptr"][...] if isinstance(node, h5py.Group) else None
            for start in range(0, self.n_cells, chunk_size):
                stop = min(start + chunk_size, self.n_cells)
                if rows is not None:
                    lo, hi = np.searchsorted(rows, [start, stop])
                    if hi == lo:
                        continue
                parts, chosen = [], []
                for a, b in _pieces(indptr, start, stop, piece_values):
                    if rows is not None and np.searchsorted(rows, a) == np.searchsorted(rows, b):
                        continue  # none of the rows: not read
                    piece = _read_h5_rows(node, indptr, a, b, self.n_genes)
                    cells, piece = _selected(piece, a, rows, columns)
                    parts.append(piece)
                    chosen.append(cells)
                    del piece
                yield np.concatenate(chosen), _stacked(parts)

    def _checked(self, chunk: sp.csr_matrix, start: int) -> sp.csr_matrix:
        # A sum propagates NaN/inf without a temporary of the chunk's size; only a
        # non-finite sum (rarely an overflow) pays for the element-wise check.
        if np.isfinite(chunk.data.sum()):
            return chunk
        bad_values = np.flatnonzero(~np.isfinite(chunk.data))
        if bad_values.size:
            row = start + int(np.searchsorted(chunk.indptr, bad_values[0], side="right")) - 1
            raise InputError(
                f"{self.label}: cell {self.obs_names[row]!r} (row {row}) holds a NaN or infinite "
                "value; scoring needs finite expression values — fix or drop those cells first"
            )
        return chunk


def _pieces(indptr, start: int, stop: int, piece_values: int):
    """``(a, b)`` row ranges covering ``start:stop`` in order, each holding at most
    ``piece_values`` stored values by ``indptr`` (a single row may hold more); the whole range
    for a dense matrix (``indptr`` None)."""
    if indptr is None:
        yield start, stop
        return
    a = start
    while a < stop:
        # the last row whose end stays within the budget, at least one row
        b = int(np.searchsorted(indptr, indptr[a] + piece_values, side="right")) - 1
        b = min(max(b, a + 1), stop)
        yield a, b
        a = b


def _selected(chunk: sp.csr_matrix, first: int, rows, columns) -> tuple[np.ndarray, sp.csr_matrix]:
    """The rows of ``chunk`` (whose first row is ``first``) among ``rows`` (None: all), their
    numbers, and the CSR of those rows restricted to ``columns`` (None: all)."""
    if rows is None:
        cells = np.arange(first, first + chunk.shape[0])
    else:
        lo, hi = np.searchsorted(rows, [first, first + chunk.shape[0]])
        cells = rows[lo:hi]
        chunk = chunk[cells - first]
    if columns is not None:
        chunk = chunk[:, columns]
    return cells, chunk


def _stacked(parts: list) -> sp.csr_matrix:
    """The CSR rows of ``parts`` one after another (the single part itself)."""
    return parts[0] if len(parts) == 1 else sp.vstack(parts, format="csr")


def _read_h5_rows(node, indptr, start: int, stop: int, n_genes: int) -> sp.csr_matrix:
    if indptr is None:  # dense dataset
        return sp.csr_matrix(node[start:stop, :])
    lo, hi = int(indptr[start]), int(indptr[stop])
    return sp.csr_matrix(
        (node["data"][lo:hi], node["indices"][lo:hi], indptr[start : stop + 1] - lo),
        shape=(stop - start, n_genes),
    )


def _row_view(matrix: sp.csr_matrix, start: int, stop: int) -> sp.csr_matrix:
    """Rows ``start:stop`` sharing ``data``/``indices`` with ``matrix`` (scipy's slicing copies them)."""
    lo, hi = matrix.indptr[start], matrix.indptr[stop]
    indptr = (matrix.indptr[start : stop + 1] - lo).astype(matrix.indices.dtype)
    # scipy's constructor copies the arrays, so fill an empty matrix of the right shape instead
    view = sp.csr_matrix((stop - start, matrix.shape[1]), dtype=matrix.dtype)
    view.data, view.indices, view.indptr = matrix.data[lo:hi], matrix.indices[lo:hi], indptr
    # rows of a canonical matrix are canonical; saying so spares the rank methods a re-check
    view.has_canonical_format = matrix.has_canonical_format
    return view


def _names(values, what: str, label: str) -> pd.Index:
    names = pd.Index(values).astype(str)
    if what == "var_names" and not names.is_unique:
        dup = names[names.duplicated()][:5].tolist()
        raise InputError(
            f"{label}: gene names (var_names) are not unique, e.g. {dup}; make them unique "
            "(e.g. AnnData.var_names_make_unique()) before scoring"
        )
    return names


def _from_matrix(matrix, var_names, obs_names, label: str) -> MatrixSource:
    if var_names is None:
        raise InputError(f"{label}: a bare matrix needs var_names= (one gene name per column)")
    if sp.issparse(matrix):
        # CSR input is used as it is (a csr_matrix keeps scipy's cached canonical-format flag
        # from call to call: checking it reads every index, ~20 ms per 10^8 values); other
        # sparse formats are converted (chunks need CSR)
        matrix = matrix if isinstance(matrix, sp.csr_matrix) else sp.csr_matrix(matrix)
    elif not isinstance(matrix, np.ndarray):
        raise InputError(
            f"{label}: expected a scipy sparse matrix or a numpy array, got {type(matrix).__name__}"
        )
    if matrix.ndim != 2:
        raise InputError(f"{label}: expected a 2-D cells × genes matrix, got shape {matrix.shape}")
    n_cells, n_genes = matrix.shape
    var = _names(var_names, "var_names", label)
    if len(var) != n_genes:
        raise InputError(f"{label}: {len(var)} var_names for a matrix with {n_genes} columns")
    obs = _names(range(n_cells) if obs_names is None else obs_names, "obs_names", label)
    if len(obs) != n_cells:
        raise InputError(f"{label}: {len(obs)} obs_names for a matrix with {n_cells} rows")
    if sp.issparse(matrix):
        return MatrixSource(
            label, var, n_cells, lambda a, b: _row_view(matrix, a, b), _obs_names=obs
        )
    return MatrixSource(
        label, var, n_cells, lambda a, b: sp.csr_matrix(matrix[a:b]), _obs_names=obs
    )


def _h5_names(f, group: str, path, start: int = 0, stop: int | None = None) -> pd.Index:
    """The index of ``group`` (``obs`` or ``var``) of an open ``.h5ad``, rows ``start:stop``."""
    import h5py

    node = f.get(group)
    if not isinstance(node, h5py.Group) or "_index" not in node.attrs:
        raise InputError(
            f"{path}: /{group} is not in the AnnData ≥ 0.7 layout; re-save the file with a current "
            "anndata (anndata.read_h5ad(path).write_h5ad(path))"
        )
    index = node[node.attrs["_index"]]
    rows = slice(start, stop)
    return pd.Index(index.asstr()[rows] if index.dtype.kind in "OS" else index[rows]).astype(str)


def _from_h5ad(path: Path, layer: str | None) -> MatrixSource:
    import h5py

    if not path.is_file():
        raise InputError(f"{path}: no such .h5ad file")
    key = "X" if layer is None else f"layers/{layer}"
    with h5py.File(path, "r") as f:
        if key not in f:
            have = sorted(f["layers"].keys()) if "layers" in f else []
            raise InputError(f"{path}: no layer {layer!r} (layers present: {have})")
    source = open_h5ad(path, key)
    _names(source.var_names, "var_names", str(path))  # scoring needs one column per gene
    return source


def open_h5ad(path: Path, key: str = "X", var_group: str = "var") -> MatrixSource:
    """The CSR or dense matrix ``key`` of the ``.h5ad`` at ``path`` (genes named by ``var_group``,
    e.g. ``raw/X`` with ``raw/var``), read block by block. Gene names may repeat."""
    import h5py

    with h5py.File(path, "r") as f:
        node = f[key]
        if isinstance(node, h5py.Group):
            encoding = node.attrs.get("encoding-type", node.attrs.get("h5sparse_format", ""))
            if encoding in ("csc_matrix", "csc"):
                raise InputError(
                    f"{path}: /{key} is stored as CSC (gene-major), which cannot be read cell by cell; "
                    "convert it once to CSR, e.g. adata.X = adata.X.tocsr(); adata.write_h5ad(...)"
                )
            if encoding not in ("csr_matrix", "csr"):
                raise InputError(
                    f"{path}: /{key} has unsupported encoding {encoding!r}; expected a CSR or dense matrix"
                )
            n_cells, n_genes = (
                int(n) for n in node.attrs.get("shape", node.attrs.get("h5sparse_shape"))
            )
        else:
            n_cells, n_genes = (int(n) for n in node.shape)
        var = _h5_names(f, var_group, path)
    if len(var) != n_genes:
        raise InputError(
            f"{path}: /{var_group} has {len(var)} genes but /{key} has {n_genes} columns"
        )
    return MatrixSource(str(path), var, n_cells, None, _path=path, _key=key)


def open_source(data, *, layer: str | None = None, var_names=None, obs_names=None) -> MatrixSource:
    """Wrap ``data`` (AnnData, CSR/ndarray with ``var_names``, or a path to an ``.h5ad``)."""
    if isinstance(data, str | os.PathLike):
        path = Path(data)
        if path.suffix != ".h5ad":
            raise InputError(f"{path}: expected an .h5ad file")
        return _from_h5ad(path, layer)
    if hasattr(data, "obs_names") and hasattr(data, "X"):  # AnnData, duck-typed
        if getattr(data, "isbacked", False):
            return _from_h5ad(Path(data.filename), layer)
        label = "AnnData" if layer is None else f"AnnData layer {layer!r}"
        if layer is None:
            matrix = data.X
        elif layer not in data.layers:
            raise InputError(
                f"AnnData has no layer {layer!r} (layers present: {sorted(data.layers.keys())})"
            )
        else:
            matrix = data.layers[layer]
        return _from_matrix(matrix, data.var_names, data.obs_names, label)
    if layer is not None:
        raise InputError("layer= applies only to AnnData or .h5ad input")
    return _from_matrix(data, var_names, obs_names, "matrix")
