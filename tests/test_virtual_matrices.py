"""Matrices stored once: cells.h5ad and scored.h5ad reference ingested.h5ad (HDF5 virtual
datasets) and read back as the standalone copies, in memory and backed, after a move too."""

from __future__ import annotations

import shutil

import anndata as ad
import h5py
import numpy as np
import pandas as pd
import pytest
import scipy.sparse as sp
from workflow_helpers import synthetic_tumour

from seedsoil import split
from seedsoil.annotate import write_scored_cells
from seedsoil.cellfile import check_sources, read_annotations, stored_bytes, virtual_sources
from seedsoil.errors import InputError
from seedsoil.harmonise import harmonise
from seedsoil.qc import apply_qc
from seedsoil.split import write_sample_cells

SAMPLE = "P1"


def _ingested(layout: str) -> ad.AnnData:
    """An ingested dataset of two patients whose rows are ``layout``: ``contiguous`` (sorted by
    sample, every cell passes QC), ``gapped`` (sorted, every 4th cell fails QC) or
    ``interleaved`` (samples shuffled together, cells failing QC among them)."""
    raw = synthetic_tumour(n_per_type=15, n_filler=200, seed=11)
    order = (
        np.random.default_rng(1).permutation(raw.n_obs)
        if layout == "interleaved"
        else np.argsort(raw.obs["patient"].to_numpy(), kind="stable")
    )
    adata = harmonise(
        raw[order].copy(), dataset="tumour", sample_key="patient", cell_type_key="label",
        source_label="synthetic",
    )  # fmt: skip
    apply_qc(adata, min_genes=1, max_mito_fraction=1.0)
    if layout != "contiguous":
        failing = np.arange(adata.n_obs) % 4 == 3
        adata.obs["qc_pass"] = ~failing
        adata.obs["qc_reason"] = np.where(failing, "min_genes", "")
    return adata


def _results(tmp_path, layout: str):
    """``results/tumour/ingested.h5ad`` of ``layout`` and the sample's folder."""
    folder = tmp_path / "results" / "tumour"
    (folder / SAMPLE).mkdir(parents=True)
    _ingested(layout).write_h5ad(folder / "ingested.h5ad", compression="gzip")
    return folder / "ingested.h5ad", folder / SAMPLE


def _tables(cells: str) -> dict[str, pd.DataFrame]:
    names = read_annotations(cells).obs_names
    rng = np.random.default_rng(2)
    scores = {
        name: pd.DataFrame(rng.uniform(size=(names.size, 2)), index=names, columns=["A", "B"])
        for name in ("scores", "pvalues", "fdr")
    }
    return {**scores, "calls": pd.DataFrame({"ctc_candidate": names.str.len() > 0}, index=names)}


def _write_sample(ingested, folder, *, standalone: bool) -> tuple:
    """cells.h5ad and scored.h5ad of the sample, standalone or by reference, in ``folder``."""
    suffix = "standalone" if standalone else "virtual"
    cells, scored = folder / f"cells.{suffix}.h5ad", folder / f"scored.{suffix}.h5ad"
    write_sample_cells(ingested, SAMPLE, cells, block_size=7, standalone=standalone)
    write_scored_cells(cells, **_tables(cells), path=scored, standalone=standalone)
    return cells, scored


def _virtual_datasets(path) -> dict[str, int]:
    """Path -> number of mappings of every virtual dataset of the h5ad file ``path``."""
    found = {}
    with h5py.File(path, "r") as f:
        f.visititems(
            lambda name, node: (
                found.update({name: len(node.virtual_sources())})
                if isinstance(node, h5py.Dataset) and node.is_virtual
                else None
            )
        )
    return found


def _assert_same_anndata(got: ad.AnnData, want: ad.AnnData) -> None:
    for matrix, reference in [(got.X, want.X)] + [
        (got.layers[key], want.layers[key]) for key in want.layers
    ]:
        matrix = matrix[...] if not sp.issparse(matrix) else matrix  # backed: a sparse dataset
        matrix = matrix if sp.issparse(matrix) else sp.csr_matrix(matrix)
        assert matrix.dtype == reference.dtype
        np.testing.assert_array_equal(matrix.indptr, reference.indptr)
        np.testing.assert_array_equal(matrix.indices, reference.indices)
        np.testing.assert_array_equal(matrix.data, reference.data)
    assert sorted(got.layers) == sorted(want.layers)
    pd.testing.assert_frame_equal(got.obs, want.obs, check_exact=True)
    pd.testing.assert_frame_equal(got.var, want.var)
    assert sorted(got.obsm) == sorted(want.obsm)
    for key in want.obsm:
        got_part, want_part = got.obsm[key], want.obsm[key]
        if isinstance(want_part, pd.DataFrame):
            pd.testing.assert_frame_equal(got_part, want_part, check_exact=True)
        else:
            np.testing.assert_array_equal(got_part, want_part)


def _read_backed(path) -> ad.AnnData:
    """``path`` opened ``backed="r"`` with its matrices read through the backed datasets."""
    backed = ad.read_h5ad(path, backed="r")
    matrices = ad.AnnData(
        X=backed.X[:, :], obs=backed.obs, var=backed.var, obsm=dict(backed.obsm),
        layers={key: backed.layers[key][...] for key in backed.layers},
    )  # fmt: skip
    backed.file.close()
    return matrices


@pytest.mark.parametrize("layout", ["contiguous", "gapped", "interleaved"])
def test_referencing_files_read_back_as_the_standalone_copies(tmp_path, layout):
    ingested, folder = _results(tmp_path, layout)
    copies = _write_sample(ingested, folder, standalone=True)
    references = _write_sample(ingested, folder, standalone=False)
    in_sample = ad.read_h5ad(ingested).obs.eval(f"sample == '{SAMPLE}' and qc_pass").to_numpy()
    runs = len(split.row_runs(in_sample))
    assert (runs == 1) == (layout == "contiguous")
    for copy, reference in zip(copies, references, strict=True):
        assert _virtual_datasets(copy) == {}
        mapped = _virtual_datasets(reference)
        # values and indices mapped run by run; counts share X's indices (and row pointers)
        assert {name: mapped[name] for name in ("X/data", "X/indices")} == {
            "X/data": runs,
            "X/indices": runs,
        }
        assert mapped["layers/counts/data"] == runs
        # references never chain: scored.h5ad reads the values from ingested.h5ad itself
        # (only the row pointers, written by the split, from cells.h5ad)
        sources = virtual_sources(reference)
        assert str(ingested) in sources and set(sources) <= {str(ingested), str(references[0])}
        want = ad.read_h5ad(copy)
        _assert_same_anndata(ad.read_h5ad(reference), want)
        _assert_same_anndata(_read_backed(reference), want)


def test_file_size_counts_the_referenced_values(tmp_path):
    ingested, folder = _results(tmp_path, "gapped")
    cells, _ = _write_sample(ingested, folder, standalone=False)
    copy, _ = _write_sample(ingested, folder, standalone=True)
    assert stored_bytes(copy) == copy.stat().st_size
    # each referenced array counts its stored size times the share of its values the sample has
    with h5py.File(cells, "r") as f:
        share = f["X/data"].shape[0] / ad.read_h5ad(ingested).X.nnz
        n_mappings = sum(len(f[name].virtual_sources()) for name in _virtual_datasets(cells))
    with h5py.File(ingested, "r") as f:
        arrays = ("X/data", "X/indices", "layers/counts/data", "layers/counts/indices")
        expected = share * sum(f[name].id.get_storage_size() for name in arrays)
    referenced = stored_bytes(cells) - cells.stat().st_size
    assert abs(referenced - expected) <= n_mappings  # rounded down per mapping


def test_a_sample_in_more_runs_than_the_limit_is_copied(tmp_path, monkeypatch):
    ingested, folder = _results(tmp_path, "interleaved")
    monkeypatch.setattr(split, "MAX_VIRTUAL_RUNS", 2)
    cells, scored = _write_sample(ingested, folder, standalone=False)
    assert _virtual_datasets(cells) == {}
    # scored.h5ad then references the copy in cells.h5ad, one mapping per array
    assert set(virtual_sources(scored)) == {str(cells)}
    assert set(_virtual_datasets(scored).values()) == {1}
    copy, scored_copy = _write_sample(ingested, folder, standalone=True)
    _assert_same_anndata(ad.read_h5ad(scored), ad.read_h5ad(scored_copy))


def test_standalone_files_need_no_ingested_file(tmp_path):
    ingested, folder = _results(tmp_path, "gapped")
    copies = _write_sample(ingested, folder, standalone=True)
    before = [ad.read_h5ad(path) for path in copies]
    ingested.unlink()
    for path, want in zip(copies, before, strict=True):
        check_sources(path)
        _assert_same_anndata(ad.read_h5ad(path), want)


def test_standalone_scored_file_from_a_referencing_cell_file_holds_real_copies(tmp_path):
    ingested, folder = _results(tmp_path, "interleaved")
    cells, scored = _write_sample(ingested, folder, standalone=False)
    standalone = folder / "scored.copied.h5ad"
    write_scored_cells(cells, **_tables(cells), path=standalone, standalone=True)
    assert _virtual_datasets(standalone) == {}
    want = ad.read_h5ad(scored)
    ingested.unlink()
    _assert_same_anndata(ad.read_h5ad(standalone), want)


def test_standalone_copy_of_a_referencing_file_shuffles_the_column_indices(tmp_path):
    # materialised from virtual datasets, the copy's indices get the filters CsrWriter gives
    # them (shuffle + LZF), its values LZF alone
    ingested, folder = _results(tmp_path, "gapped")
    cells, _ = _write_sample(ingested, folder, standalone=False)
    copy = folder / "scored.copied.h5ad"
    write_scored_cells(cells, **_tables(cells), path=copy, standalone=True)
    with h5py.File(copy, "r") as f:
        assert (f["X/indices"].shuffle, f["X/indices"].compression) == (True, "lzf")
        assert (f["X/data"].shuffle, f["X/data"].compression) == (False, "lzf")


def test_results_moved_as_a_whole_stay_readable(tmp_path, monkeypatch):
    ingested, folder = _results(tmp_path, "interleaved")
    written = _write_sample(ingested, folder, standalone=False)
    want = [ad.read_h5ad(path) for path in written]
    moved = tmp_path / "elsewhere" / "project"
    moved.parent.mkdir()
    shutil.move(tmp_path / "results", moved)
    monkeypatch.chdir(moved.parent)  # relative sources resolve from the file, not the cwd
    for path, expected in zip(written, want, strict=True):
        new_path = moved / "tumour" / SAMPLE / path.name
        check_sources(new_path)
        _assert_same_anndata(ad.read_h5ad(new_path), expected)
        _assert_same_anndata(_read_backed(new_path), expected)


def test_a_missing_ingested_file_is_an_input_error_not_silent_zeros(tmp_path):
    ingested, folder = _results(tmp_path, "gapped")
    cells, scored = _write_sample(ingested, folder, standalone=False)
    ingested.unlink()
    for path in (cells, scored):
        with pytest.raises(InputError, match="ingested.h5ad, which is missing"):
            check_sources(path)
        with pytest.raises(InputError, match="which is missing"):
            read_annotations(path)
        # other readers see NaN where values were, never a plausible matrix of zeros
        assert np.isnan(ad.read_h5ad(path).X.data).all()
