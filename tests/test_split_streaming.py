"""The streamed split writes the same sample file as the in-memory split."""

from __future__ import annotations

import anndata as ad
import numpy as np
import pandas as pd
import pytest
import scipy.sparse as sp
from workflow_helpers import synthetic_tumour

from seedsoil.errors import InputError
from seedsoil.harmonise import harmonise
from seedsoil.pipeline import sample_cells
from seedsoil.qc import apply_qc
from seedsoil.split import write_sample_cells


@pytest.fixture(scope="module")
def ingested(tmp_path_factory):
    """An ingested file with two interleaved samples and cells failing QC in both."""
    raw = synthetic_tumour(n_per_type=20, n_filler=300, seed=5)
    order = np.random.default_rng(0).permutation(raw.n_obs)  # interleave the samples
    raw = raw[order].copy()
    adata = harmonise(
        raw, dataset="tumour", sample_key="patient", cell_type_key="label",
        condition_key="site", source_label="synthetic",
    )  # fmt: skip
    apply_qc(adata, min_genes=int(np.median(adata.obs["n_genes"])), max_mito_fraction=0.5)
    assert 0 < adata.obs["qc_pass"].sum() < adata.n_obs
    path = tmp_path_factory.mktemp("split") / "ingested.h5ad"
    adata.write_h5ad(path, compression="gzip")
    return path


def _assert_same(a, b, where="uns"):
    if isinstance(a, dict):
        assert sorted(a) == sorted(b), where
        for key in a:
            _assert_same(a[key], b[key], f"{where}/{key}")
    else:
        np.testing.assert_array_equal(np.asarray(a), np.asarray(b), err_msg=where)


@pytest.fixture(scope="module")
def one_sample(tmp_path_factory):
    """An ingested file whose one sample's cells all pass QC: the split copies it whole."""
    raw = synthetic_tumour(n_per_type=10, n_filler=100, seed=6)
    adata = harmonise(raw, dataset="tumour", source_label="synthetic")
    apply_qc(adata, min_genes=1, max_mito_fraction=1.0)
    assert adata.obs["qc_pass"].all()
    path = tmp_path_factory.mktemp("split") / "ingested.h5ad"
    adata.write_h5ad(path, compression="gzip")
    return path


@pytest.mark.parametrize(("file", "sample"), [("ingested", "P1"), ("ingested", "P2"),
                                              ("one_sample", "tumour")])  # fmt: skip
def test_streamed_split_equals_in_memory_split(request, tmp_path, file, sample):
    ingested = request.getfixturevalue(file)
    expected_path = tmp_path / "expected.h5ad"
    sample_cells(ad.read_h5ad(ingested), sample).write_h5ad(expected_path, compression="gzip")
    n_cells = write_sample_cells(ingested, sample, tmp_path / "cells.h5ad", block_size=7)
    expected, written = ad.read_h5ad(expected_path), ad.read_h5ad(tmp_path / "cells.h5ad")
    assert n_cells == expected.n_obs == written.n_obs
    for matrix, reference in ((written.X, expected.X),
                              (written.layers["counts"], expected.layers["counts"])):  # fmt: skip
        assert isinstance(matrix, sp.csr_matrix) and matrix.dtype == reference.dtype
        assert matrix.indptr.dtype == reference.indptr.dtype
        assert matrix.indices.dtype == reference.indices.dtype
        np.testing.assert_array_equal(matrix.indptr, reference.indptr)
        np.testing.assert_array_equal(matrix.indices, reference.indices)
        np.testing.assert_array_equal(matrix.data, reference.data)
    pd.testing.assert_frame_equal(written.obs, expected.obs, check_exact=True)
    pd.testing.assert_frame_equal(written.var, expected.var)
    np.testing.assert_array_equal(written.obsm["X_embedding"], expected.obsm["X_embedding"])
    _assert_same(written.uns, expected.uns)


def test_sample_without_passing_cells_is_an_input_error(ingested, tmp_path):
    with pytest.raises(InputError, match="no QC-passed cell"):
        write_sample_cells(ingested, "P9", tmp_path / "cells.h5ad")


def test_counts_sharing_the_structure_of_x_still_share_it_after_the_split(tmp_path):
    import h5py

    from seedsoil.ingest import ingest_h5ad

    raw = synthetic_tumour(n_per_type=10, n_filler=100, seed=7)
    raw.obsm["X_umap"] = np.zeros((raw.n_obs, 2))
    raw.write_h5ad(tmp_path / "input.h5ad")
    row = {"id": "tumour", "source": "input.h5ad", "format": "h5ad", "species": "human",
           "gene_id": "symbol", "counts": "X", "sample_column": "patient",
           "cell_type_column": "", "condition_column": "", "condition": "NA",
           "embedding": "", "description": ""}  # fmt: skip
    ingested = tmp_path / "ingested.h5ad"
    ingest_h5ad(tmp_path / "input.h5ad", row, {"min_genes": 0}, ingested, block_cells=9)
    median = int(np.median(ad.read_h5ad(ingested).obs["n_genes"]))  # half the cells fail
    ingest_h5ad(tmp_path / "input.h5ad", row, {"min_genes": median}, ingested, block_cells=9)
    kept = ad.read_h5ad(ingested).obs.query("sample == 'P1'")["qc_pass"]
    assert 0 < kept.sum() < kept.size  # rows are copied, not the whole file

    write_sample_cells(ingested, "P1", tmp_path / "cells.h5ad", block_size=7)
    with h5py.File(tmp_path / "cells.h5ad") as f:
        address = {key: h5py.h5o.get_info(f[f"{key}/indices"].id).addr
                   for key in ("X", "layers/counts")}  # fmt: skip
    assert address["X"] == address["layers/counts"]
    expected = sample_cells(ad.read_h5ad(ingested), "P1")
    written = ad.read_h5ad(tmp_path / "cells.h5ad")
    for key in ("X", "counts"):
        got = written.X if key == "X" else written.layers[key]
        want = expected.X if key == "X" else expected.layers[key]
        np.testing.assert_array_equal(got.toarray(), want.toarray())
