"""Reading a cells file in pieces bounded by stored values (issue 13: no job above 2 GB at a
million cells): the blocks the interpret job's steps read, and so their results, do not depend
on the pieces (``MatrixSource.selected_chunks``, ``embedding.column_means``)."""

import anndata as ad
import numpy as np
import pandas as pd
import pytest
import scipy.sparse as sp
from synthetic import separable_populations

from seedsoil.cellfile import read_genes
from seedsoil.embedding import column_means, most_variable_genes
from seedsoil.interpret import communication
from seedsoil.interpret.communication import load_pairs, pair_genes, score_communication
from seedsoil.interpret.transfer import transfer_labels
from seedsoil.scoring import _input
from seedsoil.scoring._input import open_source

PIECES = [1, 7, 100, None]  # one row at a time, a few rows, many, the default


def _matrix(n_cells=53, n_genes=40, seed=0):
    """A canonical float32 CSR with rows of varied lengths, some empty."""
    rng = np.random.default_rng(seed)
    dense = rng.gamma(2.0, 0.5, size=(n_cells, n_genes)) * (rng.random((n_cells, n_genes)) < 0.3)
    dense[[4, 5, 30]] = 0.0
    return sp.csr_matrix(dense.astype(np.float32))


def _file(tmp_path, matrix, obs=None, genes=None):
    genes = genes or [f"G{j}" for j in range(matrix.shape[1])]
    obs = obs if obs is not None else pd.DataFrame(index=[f"c{i}" for i in range(matrix.shape[0])])
    path = tmp_path / "cells.h5ad"
    ad.AnnData(matrix, obs=obs, var=pd.DataFrame(index=genes)).write_h5ad(path)
    return path


def _same(a, b):
    assert a.shape == b.shape
    np.testing.assert_array_equal(a.indptr, b.indptr)
    np.testing.assert_array_equal(a.indices, b.indices)
    np.testing.assert_array_equal(a.data, b.data)


@pytest.mark.parametrize("pieces", PIECES)
@pytest.mark.parametrize("on_disk", [True, False])
@pytest.mark.parametrize(
    "rows, columns",
    [(None, None), (np.array([0, 3, 4, 17, 18, 19, 40, 52]), None),
     (None, np.array([7, 2, 39, 0])), (np.array([1, 2, 25, 51]), np.array([5, 6, 1]))],
)  # fmt: skip
def test_selected_chunks_equal_the_chunks_rows_and_columns(
    tmp_path, pieces, on_disk, rows, columns
):
    matrix = _matrix()
    names = [f"G{j}" for j in range(matrix.shape[1])]
    source = (
        open_source(_file(tmp_path, matrix)) if on_disk else open_source(matrix, var_names=names)
    )
    chunk_size = 10
    expected = []
    for number, chunk in enumerate(source.chunks(chunk_size)):
        first = number * chunk_size
        cells = np.arange(first, first + chunk.shape[0])
        if rows is not None:
            cells = rows[(rows >= first) & (rows < first + chunk.shape[0])]
            chunk = chunk[cells - first]
        if columns is not None:
            chunk = chunk[:, columns]
        if cells.size:
            expected.append((cells, chunk))
    found = list(
        source.selected_chunks(chunk_size, rows=rows, columns=columns, piece_values=pieces)
    )
    assert len(found) == len(expected)
    for (cells, block), (want_cells, want) in zip(found, expected, strict=True):
        np.testing.assert_array_equal(cells, want_cells)
        _same(sp.csr_matrix(block), sp.csr_matrix(want))


def test_pieces_cover_the_rows_within_the_budget_and_at_least_one_row_each():
    indptr = np.array([0, 3, 3, 10, 11, 12, 20])
    assert list(_input._pieces(indptr, 0, 6, 4)) == [(0, 2), (2, 3), (3, 5), (5, 6)]
    assert list(_input._pieces(indptr, 1, 5, 100)) == [(1, 5)]
    assert list(_input._pieces(None, 0, 6, 1)) == [(0, 6)]


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_column_means_are_scipys_to_the_bit(monkeypatch, seed):
    matrix = _matrix(n_cells=301, n_genes=57, seed=seed)
    matrix.data = np.log1p(matrix.data * 37.0).astype(np.float32)
    want_mean = np.asarray(matrix.mean(axis=0)).ravel()
    want_square = np.asarray(matrix.multiply(matrix).mean(axis=0)).ravel()
    for piece in (5, 10**6):
        monkeypatch.setattr("seedsoil.embedding.MEANS_PIECE_VALUES", piece)
        mean, square = column_means(matrix)
        assert mean.tobytes() == want_mean.astype(np.float32).tobytes()
        assert square.tobytes() == want_square.astype(np.float32).tobytes()


def test_most_variable_genes_rank_the_variance_of_the_columns(monkeypatch):
    monkeypatch.setattr("seedsoil.embedding.N_TOP_GENES", 5)
    matrix = _matrix(n_cells=200, n_genes=30, seed=3)
    dense = matrix.toarray().astype(np.float64)
    variance = (dense**2).mean(axis=0) - dense.mean(axis=0) ** 2
    top = most_variable_genes(matrix)
    assert set(top) == set(np.argsort(variance)[::-1][:5])


@pytest.mark.parametrize("max_reference", [60, 1000])  # a second pass over the file, or one
def test_transcriptome_neighbours_do_not_depend_on_the_pieces(tmp_path, monkeypatch, max_reference):
    monkeypatch.setattr("seedsoil.embedding.N_TOP_GENES", 30)  # a gene subset is searched
    monkeypatch.setattr("seedsoil.interpret.transfer.BLOCK_CELLS", 40)  # several blocks
    path = _file(tmp_path, sp.csr_matrix(separable_populations([100, 100])))
    codes = np.r_[np.zeros(100, int), np.ones(100, int)]
    candidates = np.r_[np.arange(0, 50), np.arange(100, 150)]
    codes[candidates] = -1
    results = []
    for piece in (1, 13, 10**9):
        monkeypatch.setattr(_input, "PIECE_VALUES", piece)
        results.append(transfer_labels(codes, candidates, str(path), max_reference=max_reference))
    for found, share in results[1:]:
        np.testing.assert_array_equal(found, results[0][0])
        np.testing.assert_array_equal(share, results[0][1])
    found = results[0][0]  # labels found, each its population's
    assert (found >= 0).sum() > 20 and (found[:50] != 1).all() and (found[50:] != 0).all()


def test_communication_streamed_from_a_file_does_not_depend_on_the_pieces(tmp_path, monkeypatch):
    pairs = load_pairs().iloc[:6].reset_index(drop=True)
    genes = pair_genes(pairs) + [f"F{i}" for i in range(10)]
    rng = np.random.default_rng(5)
    n = 120
    dense = rng.gamma(2.0, 0.5, size=(n, len(genes))) * (rng.random((n, len(genes))) < 0.5)
    types = np.repeat(["tumour", "neutrophil", "T"], n // 3)
    obs = pd.DataFrame({"cell_type": types}, index=[f"c{i}" for i in range(n)])
    path = _file(tmp_path, sp.csr_matrix(dense.astype(np.float32)), obs=obs, genes=genes)
    annotations = ad.AnnData(obs=obs)
    monkeypatch.setattr(communication, "BLOCK_CELLS", 25)
    options = {"n_perm": 40, "max_cells": 90, "expression": path}
    tables = []
    for piece in (1, 17, 10**9):
        monkeypatch.setattr(_input, "PIECE_VALUES", piece)
        tables.append(score_communication(annotations, obs["cell_type"], pairs, **options)[0])
    assert len(tables[0])
    for table in tables[1:]:
        pd.testing.assert_frame_equal(table, tables[0], check_exact=True)


def test_genes_read_in_pieces_equal_the_columns_of_the_whole_matrix(tmp_path, monkeypatch):
    matrix = _matrix()
    path = _file(tmp_path, matrix)
    wanted = ["G3", "G0", "G31", "G12"]
    monkeypatch.setattr(_input, "PIECE_VALUES", 5)
    adata = read_genes(path, wanted, block_cells=9)
    columns = [int(g[1:]) for g in adata.var_names]
    assert sorted(adata.var_names) == sorted(wanted)
    _same(sp.csr_matrix(adata.X), matrix[:, columns])


def test_evidence_scale_column_by_column_is_the_whole_array_formula():
    from seedsoil.interpret.celltypes import evidence_scale

    rng = np.random.default_rng(7)
    for values in (rng.random((1001, 9)), rng.normal(size=(400, 5)) ** 3):
        values[:, 2] = 0.25  # a constant column: MAD 0, left out
        mad = 1.4826 * np.median(np.abs(values - np.median(values, axis=0)), axis=0)
        assert evidence_scale(values) == float(np.median(mad[mad > 0]))
    assert evidence_scale(np.ones((10, 3))) == 1.0


@pytest.mark.parametrize("order", [["a", "b", "c"], ["c", "a", "b"], ["b", "c"]])
def test_finite_values_are_nan_to_num_of_the_columns_without_touching_the_table(order):
    from seedsoil.interpret.celltypes import finite_values

    rng = np.random.default_rng(2)
    finite = pd.DataFrame(rng.random((50, 3)), columns=["a", "b", "c"])
    holes = finite.copy()
    holes.iloc[[3, 7], [0, 2]] = np.nan
    holes.iloc[9, 1] = np.inf
    for table in (finite, holes):
        before = table.copy()
        for nan in (0.0, 1.0):
            want = np.nan_to_num(table[order].to_numpy(dtype=np.float64), nan=nan)
            found = finite_values(table, order, nan=nan)
            assert found.strides == want.strides
            assert found.tobytes(order="A") == want.tobytes(order="A")
        pd.testing.assert_frame_equal(table, before)
