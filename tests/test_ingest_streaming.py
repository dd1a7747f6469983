"""The streamed ingest of an .h5ad writes the same ingested file as the in-memory ingest."""

from __future__ import annotations

import anndata as ad
import numpy as np
import pandas as pd
import pytest
import scipy.sparse as sp
from workflow_helpers import sheet_row, synthetic_tumour

import seedsoil.embedding as embedding_module
from seedsoil.errors import InputError
from seedsoil.ingest import ingest, ingest_h5ad, sub_blocks
from seedsoil.pipeline import ingest_dataset

QC = {"min_genes": 20, "max_mito_fraction": 0.5, "min_cells_per_sample": 5}
BLOCK = 7  # cells per block: small, so every input spans many blocks


def tumour(seed: int = 3) -> ad.AnnData:
    raw = synthetic_tumour(n_per_type=12, n_filler=80, seed=seed)
    return raw[np.random.default_rng(seed).permutation(raw.n_obs)].copy()  # interleaved


def both_ways(tmp_path, adata: ad.AnnData, **columns) -> tuple[ad.AnnData, ad.AnnData]:
    """(in-memory ingest, streamed ingest read back) of ``adata`` written as an .h5ad."""
    source = tmp_path / "input.h5ad"
    adata.write_h5ad(source)
    row = sheet_row(tmp_path, source, **columns)
    expected, expected_samples = ingest_dataset(source, row, QC)
    expected.write_h5ad(tmp_path / "expected.h5ad")  # both read back: uns lists become arrays
    samples = ingest_h5ad(source, row, QC, tmp_path / "ingested.h5ad", block_cells=BLOCK)
    pd.testing.assert_frame_equal(samples, expected_samples)
    return ad.read_h5ad(tmp_path / "expected.h5ad"), ad.read_h5ad(tmp_path / "ingested.h5ad")


def assert_same_matrix(written, expected):
    assert isinstance(written, sp.csr_matrix) and written.dtype == expected.dtype == np.float32
    np.testing.assert_array_equal(written.indptr, expected.indptr)
    np.testing.assert_array_equal(written.indices, expected.indices)
    np.testing.assert_array_equal(written.data, expected.data)  # bit for bit


def assert_same_annotations(written: ad.AnnData, expected: ad.AnnData):
    pd.testing.assert_frame_equal(written.obs, expected.obs, check_exact=True)
    pd.testing.assert_index_equal(written.var_names, expected.var_names)
    np.testing.assert_array_equal(written.obsm["X_embedding"], expected.obsm["X_embedding"])
    assert_same_tree(written.uns["seedsoil"], expected.uns["seedsoil"])


def assert_same_tree(a, b, where="uns"):
    if isinstance(a, dict):
        assert sorted(a) == sorted(b), where
        for key in a:
            assert_same_tree(a[key], b[key], f"{where}/{key}")
    else:
        np.testing.assert_array_equal(np.asarray(a), np.asarray(b), err_msg=where)


COLUMNS = {"sample_column": "patient", "cell_type_column": "label", "condition_column": "site"}


def test_counts_input_gives_the_in_memory_file(tmp_path):
    adata = tumour()
    adata.obsm["X_umap"] = np.random.default_rng(0).normal(size=(adata.n_obs, 2))
    expected, written = both_ways(tmp_path, adata, **COLUMNS)
    assert_same_matrix(written.X, expected.X)
    assert_same_matrix(written.layers["counts"], expected.layers["counts"])
    assert_same_annotations(written, expected)


def test_log_normalised_input_gives_the_in_memory_file(tmp_path):
    adata = tumour()
    adata.X = sp.csr_matrix(np.log1p(adata.X.toarray() * 1.5), dtype=np.float32)
    adata.obsm["X_umap"] = np.zeros((adata.n_obs, 2))
    expected, written = both_ways(tmp_path, adata, **COLUMNS)
    assert written.uns["seedsoil"]["input_scale"] == "log-normalised"
    assert "counts" not in written.layers
    assert_same_matrix(written.X, expected.X)
    assert_same_annotations(written, expected)


def test_a_scale_the_first_block_misjudges_is_corrected(tmp_path):
    """The first block holds integers only; later ones do not: the input is not counts."""
    adata = tumour()
    values = adata.X.toarray() * 37.0  # TPM-like but integer ...
    values[BLOCK + 3] += 0.25  # ... except in the second block
    adata.X = sp.csr_matrix(values)
    adata.obsm["X_umap"] = np.zeros((adata.n_obs, 2))
    expected, written = both_ways(tmp_path, adata, **COLUMNS)
    assert written.uns["seedsoil"]["input_scale"] == expected.uns["seedsoil"]["input_scale"]
    assert written.uns["seedsoil"]["input_scale"] == "normalised"
    assert_same_matrix(written.X, expected.X)


def test_raw_counts_and_duplicate_genes(tmp_path):
    adata = tumour()
    genes = list(adata.var_names)
    genes[-1] = genes[0]  # a duplicated symbol, summed
    adata.var_names = genes
    adata.raw = adata.copy()
    adata.X = sp.csr_matrix(np.log1p(adata.X.toarray()))
    adata.obsm["X_umap"] = np.zeros((adata.n_obs, 2))
    expected, written = both_ways(tmp_path, adata, counts="raw", **COLUMNS)
    assert written.n_vars == len(genes) - 1
    assert_same_matrix(written.layers["counts"], expected.layers["counts"])
    assert_same_annotations(written, expected)


def test_embedding_above_the_limit_is_a_seeded_subsample(tmp_path, monkeypatch):
    monkeypatch.setattr(embedding_module, "MAX_EMBEDDING_CELLS", 30)
    monkeypatch.setattr(
        embedding_module.embedding_subsample, "__defaults__", (0, 30)
    )  # the default max_cells is bound at definition
    expected, written = both_ways(tmp_path, tumour(), **COLUMNS)
    coordinates = written.obsm["X_embedding"]
    assert np.isfinite(coordinates).all(axis=1).sum() == 30
    assert "on a random 30 of 72 cells" in written.uns["seedsoil"]["embedding"]
    np.testing.assert_array_equal(coordinates, expected.obsm["X_embedding"])


def test_nan_is_named_with_its_row_in_the_file(tmp_path):
    adata = tumour()
    values = adata.X.toarray()
    values[2 * BLOCK + 1, 4] = np.nan
    adata.X = sp.csr_matrix(values)
    source = tmp_path / "input.h5ad"
    adata.write_h5ad(source)
    row = sheet_row(tmp_path, source, **COLUMNS)
    name = adata.obs_names[2 * BLOCK + 1]
    with pytest.raises(InputError, match=rf"first: cell '{name}' \(row {2 * BLOCK + 2}\)"):
        ingest_h5ad(source, row, QC, tmp_path / "ingested.h5ad", block_cells=BLOCK)


def test_negative_values_in_a_later_block_are_refused(tmp_path):
    adata = tumour()
    values = adata.X.toarray() - 0.5  # z-scored-like values: negative everywhere
    values[:BLOCK] = np.abs(values[:BLOCK])  # but not in the first block
    adata.X = sp.csr_matrix(values)
    source = tmp_path / "input.h5ad"
    adata.write_h5ad(source)
    row = sheet_row(tmp_path, source, **COLUMNS)
    with pytest.raises(InputError, match="scaled"):
        ingest_h5ad(source, row, QC, tmp_path / "ingested.h5ad", block_cells=BLOCK)


def test_a_missing_layer_is_named(tmp_path):
    source = tmp_path / "input.h5ad"
    tumour().write_h5ad(source)
    row = sheet_row(tmp_path, source, counts="layer:spliced", **COLUMNS)
    with pytest.raises(InputError, match=r"counts 'layer:spliced' not found.*layer:NAME"):
        ingest(source, row, QC, tmp_path / "ingested.h5ad")


def test_other_formats_are_ingested_in_memory_into_the_same_layout(tmp_path):
    adata = tumour()
    source = tmp_path / "input.csv"
    pd.DataFrame(adata.X.toarray(), index=adata.obs_names, columns=adata.var_names).to_csv(source)
    row = sheet_row(tmp_path, source, format="csv", transpose="false")
    samples = ingest(source, row, QC, tmp_path / "ingested.h5ad")
    written = ad.read_h5ad(tmp_path / "ingested.h5ad")
    assert list(samples["sample"]) == ["tumour"]
    assert written.uns["seedsoil"]["input_scale"] == "counts"
    assert written.layers["counts"].sum() == pytest.approx(adata.X.sum(), rel=1e-6)


def test_a_csc_matrix_is_ingested_in_memory(tmp_path):
    adata = tumour()
    adata.X = sp.csc_matrix(adata.X)
    source = tmp_path / "input.h5ad"
    adata.write_h5ad(source)
    row = sheet_row(tmp_path, source, **COLUMNS)
    ingest(source, row, QC, tmp_path / "ingested.h5ad")
    written = ad.read_h5ad(tmp_path / "ingested.h5ad")
    assert written.layers["counts"].sum() == pytest.approx(adata.X.sum(), rel=1e-6)


def test_dataset_warnings_reach_the_log_not_only_the_report(tmp_path, caplog):
    adata = tumour()
    adata.X = sp.csr_matrix(np.log1p(adata.X.toarray() * 1.5), dtype=np.float32)
    source = tmp_path / "input.h5ad"
    adata.write_h5ad(source)
    with caplog.at_level("WARNING", logger="seedsoil"):
        ingest(source, sheet_row(tmp_path, source), QC, tmp_path / "ingested.h5ad")
    assert any("already log-normalised" in r.getMessage() for r in caplog.records)


def test_a_label_column_asked_of_a_matrix_only_format_names_the_one_row_per_library_fix(tmp_path):
    adata = tumour()
    source = tmp_path / "counts.csv"
    pd.DataFrame(adata.X.toarray(), index=adata.obs_names, columns=adata.var_names).to_csv(source)
    row = sheet_row(tmp_path, source, format="csv", sample_column="patient", transpose="false")
    with pytest.raises(InputError, match="give each library its own sheet row"):
        ingest_dataset(source, row, QC)


def test_how_the_matrix_is_read_and_harmonised_in_blocks_does_not_change_the_file(tmp_path):
    """Reads of ``read_cells`` rows harmonised ``block_cells`` at a time: any split of the rows,
    a block per read or several, blocks cut across reads or not, gives the same file."""
    adata = tumour()
    adata.obsm["X_umap"] = np.random.default_rng(1).normal(size=(adata.n_obs, 2))
    source = tmp_path / "input.h5ad"
    adata.write_h5ad(source)
    row = sheet_row(tmp_path, source, **COLUMNS)
    files = {}
    for block_cells, read_cells in [(1_000, 1_000), (7, 7), (5, 17), (9, 4)]:
        path = tmp_path / f"ingested_{block_cells}_{read_cells}.h5ad"
        ingest_h5ad(source, row, QC, path, block_cells=block_cells, read_cells=read_cells)
        files[block_cells, read_cells] = ad.read_h5ad(path)
    whole = files[1_000, 1_000]  # one block: every row at once
    for written in files.values():
        assert_same_matrix(written.X, whole.X)
        assert_same_matrix(written.layers["counts"], whole.layers["counts"])
        assert_same_annotations(written, whole)


def test_sub_blocks_are_views_covering_every_row_once_in_order():
    matrix = sp.random(23, 6, density=0.5, format="csr", random_state=0, dtype=np.float32)
    reads = [(0, matrix[:10]), (10, matrix[10:])]  # two reads of 10 and 13 rows
    blocks = list(sub_blocks(reads, 4))
    assert [start for start, _ in blocks] == [0, 4, 8, 10, 14, 18, 22]
    assert_same_matrix(sp.vstack([block for _, block in blocks], format="csr"), matrix)
    first_read = reads[0][1]
    assert np.shares_memory(blocks[1][1].data, first_read.data)  # rows 4-7 are not copied


def test_column_indices_are_stored_byte_shuffled_and_values_are_not(tmp_path):
    """Column numbers fit in the low bytes of their int32: HDF5's shuffle filter groups the
    bytes so LZF packs the indices well; the values (float32) are stored with LZF alone. The
    counts layer's hard-linked indices are the same dataset, and a sample's copied rows keep
    the filters."""
    import h5py

    from seedsoil.split import write_sample_cells

    adata = tumour()
    adata.obsm["X_umap"] = np.zeros((adata.n_obs, 2))
    source = tmp_path / "input.h5ad"
    adata.write_h5ad(source)
    ingested = tmp_path / "ingested.h5ad"
    ingest_h5ad(source, sheet_row(tmp_path, source, **COLUMNS), QC, ingested, block_cells=BLOCK)
    sample = str(ad.read_h5ad(ingested).obs["sample"].iloc[0])
    write_sample_cells(ingested, sample, tmp_path / "cells.h5ad", standalone=True)
    for path in (ingested, tmp_path / "cells.h5ad"):
        with h5py.File(path) as f:
            for key in ("X", "layers/counts"):
                indices, data = f[f"{key}/indices"], f[f"{key}/data"]
                assert (indices.compression, indices.shuffle) == ("lzf", True), (path.name, key)
                assert (data.compression, data.shuffle) == ("lzf", False), (path.name, key)


def test_returning_freed_memory_to_the_system_never_raises():
    """Ingest calls it after its pass; where the C library has no ``malloc_trim`` it does
    nothing."""
    from seedsoil.util import return_freed_memory

    kept = [np.ones(1_000) for _ in range(100)]
    del kept[::2]
    assert return_freed_memory() is None


def test_an_h5ad_whose_obs_and_matrix_disagree_in_length_is_refused(tmp_path):
    import h5py
    from anndata.io import write_elem

    adata = tumour()
    source = tmp_path / "input.h5ad"
    adata.write_h5ad(source)
    with h5py.File(source, "a") as f:
        del f["obs"]
        write_elem(f, "obs", adata.obs.iloc[:-3])
    row = sheet_row(tmp_path, source, **COLUMNS)
    with pytest.raises(InputError, match=r"/obs has \d+ cells but /X has \d+ rows"):
        ingest_h5ad(source, row, QC, tmp_path / "ingested.h5ad", block_cells=BLOCK)
    assert not (tmp_path / "ingested.h5ad").exists()
