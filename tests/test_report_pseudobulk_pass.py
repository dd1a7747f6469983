"""The report's one pass over a cell file: the pseudobulk of the counts and a few genes'
columns of X, equal to reading each on its own."""

from __future__ import annotations

import anndata as ad
import h5py
import numpy as np
import pandas as pd
import pytest
import scipy.sparse as sp

from seedsoil.cellfile import (
    CsrWriter,
    block_pairs,
    read_genes,
    shares_structure,
    write_annotations,
)
from seedsoil.errors import InputError
from seedsoil.report.cohort import pseudobulk, pseudobulk_with_columns

N_CELLS, N_GENES = 50, 30
GENES = [f"G{j}" for j in range(N_GENES)]
WANTED = ["G3", "G17", "G29", "NOT_IN_FILE"]


def _cells() -> ad.AnnData:
    """Counts of 50 cells × 30 genes (about a third non-zero), X = log1p(CP10k), 3 cell types."""
    rng = np.random.default_rng(4)
    counts = sp.random(N_CELLS, N_GENES, density=0.35, random_state=rng, format="csr",
                       data_rvs=lambda n: rng.integers(1, 9, n)).astype(np.float32)  # fmt: skip
    totals = np.asarray(counts.sum(axis=1)).ravel()
    x = counts.copy()  # same structure, values log1p(CP10k)
    x.data = np.log1p(x.data * np.repeat(1e4 / np.maximum(totals, 1), np.diff(x.indptr)))
    x.data = x.data.astype(np.float32)
    obs = pd.DataFrame(
        {"cell_type": rng.choice(["B cell", "T cell", "monocyte"], N_CELLS)},
        index=[f"c{i}" for i in range(N_CELLS)],
    )
    return ad.AnnData(X=x, obs=obs, var=pd.DataFrame(index=GENES), layers={"counts": counts})


def _write_shared(adata: ad.AnnData, path) -> None:
    """A cell file as ingest writes it: the counts layer hard-links X's indices and indptr."""
    with h5py.File(path, "w") as f:
        x = CsrWriter(f, "X", N_GENES, np.float32)
        counts = CsrWriter(f.create_group("layers"), "counts", N_GENES, np.float32,
                           same_structure_as=x)  # fmt: skip
        for lo in range(0, N_CELLS, 16):
            x.append(adata.X[lo : lo + 16])
            counts.append(adata.layers["counts"][lo : lo + 16])
        x.close()
        counts.close()
        write_annotations(f, adata.copy())


@pytest.fixture(params=["shared", "separate"])
def cell_file(request, tmp_path):
    path = tmp_path / f"cells.{request.param}.h5ad"
    if request.param == "shared":
        _write_shared(_cells(), path)
    else:  # anndata's own writer: the layer has its own indices and indptr
        _cells().write_h5ad(path)
    return path, request.param


def test_one_pass_equals_the_pseudobulk_and_the_columns_read_separately(cell_file):
    path, layout = cell_file
    assert shares_structure(path, "layers/counts", "X") == (layout == "shared")
    table, columns = pseudobulk_with_columns(path, WANTED, block_cells=7)
    pd.testing.assert_frame_equal(table, pseudobulk(path, block_cells=7), check_exact=True)
    assert table.attrs == pseudobulk(path).attrs
    alone = read_genes(path, WANTED)
    assert columns.columns.tolist() == ["G3", "G17", "G29"]  # file order, missing gene left out
    assert columns.index.tolist() == alone.obs_names.tolist()
    np.testing.assert_array_equal(columns.to_numpy(), alone.X.toarray())
    assert columns.dtypes.unique().tolist() == [np.dtype(np.float32)]


def test_paired_blocks_are_the_blocks_of_each_matrix(tmp_path):
    path = tmp_path / "cells.h5ad"
    adata = _cells()
    _write_shared(adata, path)
    pairs = list(block_pairs(path, "layers/counts", "X", block_cells=7))
    assert [counts.shape[0] for counts, _ in pairs] == [7] * 7 + [1]
    counts = sp.vstack([c for c, _ in pairs], format="csr")
    values = sp.vstack([x for _, x in pairs], format="csr")
    assert (counts != adata.layers["counts"]).nnz == 0 and (values != adata.X).nnz == 0


def test_paired_blocks_need_a_shared_structure(tmp_path):
    path = tmp_path / "cells.h5ad"
    _cells().write_h5ad(path)
    with pytest.raises(InputError, match="do not share"):
        next(block_pairs(path, "layers/counts", "X"))
