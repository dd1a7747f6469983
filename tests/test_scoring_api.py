"""The public scoring API: inputs, streaming, determinism, coverage, no densification, CLI."""

from __future__ import annotations

import anndata as ad
import h5py
import numpy as np
import pandas as pd
import pytest
import scipy.sparse as sp
from synthetic import cell_names, gene_names, log_normalise, umi_counts, write_umi_h5ad

import seedsoil
from seedsoil.cli import main
from seedsoil.errors import InputError
from seedsoil.scoring import _input, resolve_gene_sets, score, significance

VAR = gene_names(2000)
SIGNATURES = {
    "alpha": VAR[5:45],
    "beta": {"up": VAR[100:130], "down": VAR[1500:1510]},
    "gamma": VAR[700:712] + ["NOT_A_GENE"],
}
CASES = [("scanpy", {}), ("mean", {}), ("mean", {"zscore": True})]


@pytest.fixture(scope="module")
def h5ad_path(tmp_path_factory, umi_adata):
    path = tmp_path_factory.mktemp("h5ad") / "cells.h5ad"
    umi_adata.write_h5ad(path)
    return path


@pytest.mark.parametrize(("method", "options"), CASES)
def test_anndata_matrix_and_h5ad_give_identical_scores(umi_adata, h5ad_path, method, options):
    from_adata = score(umi_adata, SIGNATURES, method, **options)
    from_matrix = score(
        umi_adata.X, SIGNATURES, method, var_names=VAR, obs_names=umi_adata.obs_names, **options
    )
    from_file = score(h5ad_path, SIGNATURES, method, chunk_size=97, **options)
    assert from_adata.equals(from_matrix)
    assert from_adata.equals(from_file)


def test_result_is_cells_by_signatures_in_input_order(umi_adata):
    result = score(umi_adata, SIGNATURES, "mean")
    assert list(result.columns) == ["alpha", "beta", "gamma"]
    assert result.index.equals(umi_adata.obs_names)
    assert result.dtypes.eq(np.float64).all()


def test_layer_is_scored_instead_of_x(umi_adata, h5ad_path):
    counts = umi_adata.layers["counts"]
    expected = score(counts, SIGNATURES, "scanpy", var_names=VAR, obs_names=umi_adata.obs_names)
    assert score(umi_adata, SIGNATURES, "scanpy", layer="counts").equals(expected)
    assert score(h5ad_path, SIGNATURES, "scanpy", layer="counts", chunk_size=128).equals(expected)


def test_dense_x_on_disk_is_read_in_chunks(umi_adata, tmp_path):
    dense = ad.AnnData(umi_adata.X.toarray(), obs=umi_adata.obs, var=umi_adata.var)
    path = tmp_path / "dense.h5ad"
    dense.write_h5ad(path)
    assert score(path, SIGNATURES, "scanpy", chunk_size=50).equals(
        score(umi_adata, SIGNATURES, "scanpy")
    )


def test_csc_on_disk_is_refused_with_advice(umi_adata, tmp_path):
    path = tmp_path / "csc.h5ad"
    ad.AnnData(sp.csc_matrix(umi_adata.X), obs=umi_adata.obs, var=umi_adata.var).write_h5ad(path)
    with pytest.raises(InputError, match="CSC.*tocsr"):
        score(path, SIGNATURES, "mean")


def test_h5ad_is_read_in_bounded_chunks(h5ad_path, monkeypatch):
    seen = []
    original = _input._read_h5_rows

    def spy(node, indptr, start, stop, n_genes):
        chunk = original(node, indptr, start, stop, n_genes)
        seen.append(chunk.shape[0])
        return chunk

    monkeypatch.setattr(_input, "_read_h5_rows", spy)
    score(h5ad_path, SIGNATURES, "scanpy", chunk_size=128)
    # two passes (statistics, then scores) of ceil(600 / 128) = 5 chunks each
    assert seen == [128, 128, 128, 128, 88] * 2


def test_streamed_generator_file_matches_in_memory(tmp_path):
    path = tmp_path / "generated.h5ad"
    write_umi_h5ad(path, 1000, 800, 80, seed=2, chunk_size=300)
    adata = ad.read_h5ad(path)
    sigs = {"a": gene_names(800)[:30], "b": gene_names(800)[400:420]}
    assert score(path, sigs, "scanpy", chunk_size=333).equals(score(adata, sigs, "scanpy"))


@pytest.mark.parametrize(("method", "options"), CASES)
def test_bit_identical_across_threads_and_chunk_sizes(umi_lognorm, method, options):
    runs = [
        score(
            umi_lognorm,
            SIGNATURES,
            method,
            var_names=VAR,
            n_threads=threads,
            chunk_size=chunk,
            **options,
        )
        for threads, chunk in [(1, 20_000), (2, 20_000), (2, 7), (1, 256), (2, 20_000)]
    ]
    for run in runs[1:]:
        assert run.equals(runs[0])


def test_significance_bit_identical_across_threads_and_chunk_sizes(umi_lognorm):
    runs = [
        significance(
            umi_lognorm, SIGNATURES, var_names=VAR, n_null=50, n_threads=threads, chunk_size=chunk
        )
        for threads, chunk in [(1, 20_000), (2, 33), (2, 20_000)]
    ]
    for pvalues, fdr in runs[1:]:
        assert pvalues.equals(runs[0][0]) and fdr.equals(runs[0][1])


@pytest.mark.parametrize("method", ["mean", "ucell"])
def test_per_cell_scores_do_not_depend_on_other_cells(umi_lognorm, method):
    # Methods without a dataset-wide statistics pass score each cell on its own. (aucell is
    # not one: decoupler's definition drops genes that are zero in every cell of the dataset.)
    if method != "mean":
        pytest.importorskip(f"seedsoil.scoring.{method}")
    full = score(umi_lognorm, SIGNATURES, method, var_names=VAR)
    keep = np.arange(0, 600, 7)
    subset = score(umi_lognorm[keep], SIGNATURES, method, var_names=VAR, obs_names=full.index[keep])
    assert subset.equals(full.iloc[keep])


def test_missing_genes_are_reported(umi_lognorm, caplog):
    result = score(umi_lognorm, SIGNATURES, "mean", var_names=VAR)
    assert result.attrs["missing_genes"] == {"gamma": ["NOT_A_GENE"]}
    assert "NOT_A_GENE" in caplog.text
    gamma = resolve_gene_sets(SIGNATURES, VAR)[2]
    assert gamma.size == 12 and gamma.missing == ("NOT_A_GENE",)


def test_signature_without_any_present_gene_is_refused(umi_lognorm):
    with pytest.raises(InputError, match="'ghost'"):
        score(umi_lognorm, {"ok": VAR[:5], "ghost": ["X1", "X2"]}, "mean", var_names=VAR)


def test_signature_forms_are_equivalent(umi_lognorm):
    class Signature:
        def __init__(self, up, down=(), weights=None):
            self.up, self.down, self.weights = list(up), list(down), weights or {}

    as_list = score(umi_lognorm, {"s": VAR[:20]}, "mean", var_names=VAR)
    as_dict = score(umi_lognorm, {"s": {"up": VAR[:20]}}, "mean", var_names=VAR)
    as_object = score(umi_lognorm, {"s": Signature(VAR[:20])}, "mean", var_names=VAR)
    as_array = score(umi_lognorm, {"s": {"up": np.array(VAR[:20])}}, "mean", var_names=VAR)
    assert as_list.equals(as_dict) and as_list.equals(as_object) and as_list.equals(as_array)


@pytest.mark.parametrize(("method", "options"), CASES)
def test_sparse_input_is_never_densified(umi_lognorm, monkeypatch, method, options):
    def refuse(*args, **kwargs):
        raise AssertionError("sparse matrix densified")

    for name in ("toarray", "todense", "__array__"):
        monkeypatch.setattr(sp._base._spbase, name, refuse, raising=False)
    score(umi_lognorm, SIGNATURES, method, var_names=VAR, chunk_size=100, **options)
    significance(umi_lognorm, SIGNATURES, var_names=VAR, n_null=20, chunk_size=100)


def test_bad_requests_raise_input_error(umi_lognorm):
    with pytest.raises(InputError, match="unknown scoring method"):
        score(umi_lognorm, SIGNATURES, "magic", var_names=VAR)
    with pytest.raises(InputError, match="no option"):
        score(umi_lognorm, SIGNATURES, "mean", var_names=VAR, ctrl_size=3)
    with pytest.raises(InputError, match="var_names"):
        score(umi_lognorm, SIGNATURES, "mean", var_names=VAR[:-1])
    with pytest.raises(InputError, match="var_names"):
        score(umi_lognorm, SIGNATURES, "mean")


def test_non_finite_values_are_refused_naming_the_cell():
    matrix = sp.csr_matrix(np.array([[1.0, 0.0], [np.nan, 2.0]], dtype=np.float32))
    with pytest.raises(InputError, match="'c1'.*row 1"):
        score(matrix, {"s": ["a"]}, "mean", var_names=["a", "b"], obs_names=["c0", "c1"])


def test_package_exports_score_and_significance():
    assert seedsoil.score is score and seedsoil.significance is significance


def test_umi_generator_is_deterministic_and_umi_like():
    counts = umi_counts(300, 5000, 600, seed=4)
    assert (counts != umi_counts(300, 5000, 600, seed=4)).nnz == 0
    per_cell = np.diff(counts.indptr)
    assert 400 < np.median(per_cell) < 800
    assert (counts.data == 1).mean() > 0.4  # many ties at count 1
    assert counts.has_canonical_format
    assert log_normalise(counts).dtype == np.float32


def test_cli_writes_scores_and_reports_bad_input(h5ad_path, tmp_path, capsys):
    gmt = tmp_path / "sets.gmt"
    gmt.write_text(f"alpha\tdescription\t{chr(9).join(VAR[5:45])}\n")
    out, fdr = tmp_path / "scores.parquet", tmp_path / "fdr.parquet"
    assert (
        main(
            [
                "score",
                str(h5ad_path),
                "--gmt",
                str(gmt),
                "--out",
                str(out),
                "--fdr",
                str(fdr),
                "--n-null",
                "20",
            ]
        )
        == 0
    )
    expected = score(h5ad_path, {"alpha": VAR[5:45]}, "scanpy")
    pd.testing.assert_frame_equal(
        pd.read_parquet(out), expected, check_like=False, check_freq=False
    )
    assert pd.read_parquet(fdr).shape == (600, 1)
    assert main(["score", str(tmp_path / "absent.h5ad"), "--gmt", str(gmt), "--out", str(out)]) == 2
    assert "absent.h5ad" in capsys.readouterr().err


def test_h5ad_names_come_from_the_file(h5ad_path):
    with h5py.File(h5ad_path) as f:
        assert f["X"].attrs["encoding-type"] == "csr_matrix"
    assert list(score(h5ad_path, {"a": VAR[:5]}, "mean").index[:2]) == cell_names(2)


def test_in_memory_chunks_share_the_matrix_arrays(umi_lognorm):
    source = _input.open_source(umi_lognorm, var_names=VAR)
    chunks = list(source.chunks(250))
    assert [c.shape[0] for c in chunks] == [250, 250, 100]
    assert all(np.shares_memory(c.data, umi_lognorm.data) for c in chunks)
    assert (sp.vstack(chunks) != umi_lognorm).nnz == 0


def test_an_on_disk_source_reads_only_the_cell_names_asked_for(h5ad_path, umi_adata):
    source = _input.open_source(h5ad_path)
    assert source.n_cells == umi_adata.n_obs
    assert "obs_names" not in source.__dict__  # opening reads no cell name
    assert source.obs_slice(100, 103).equals(umi_adata.obs_names[100:103])
    assert "obs_names" not in source.__dict__
    assert source.obs_names.equals(umi_adata.obs_names)


def test_an_h5ad_whose_obs_and_matrix_disagree_in_length_is_named(tmp_path, umi_adata):
    from anndata.io import write_elem

    path = tmp_path / "cells.h5ad"
    umi_adata.write_h5ad(path)
    with h5py.File(path, "a") as f:
        del f["obs"]
        write_elem(f, "obs", umi_adata.obs.iloc[:-5])
    with pytest.raises(InputError, match=r"cells\.h5ad: /obs has \d+ cells but /X has \d+ rows"):
        _input.open_source(path).obs_slice(0, umi_adata.n_obs)
