"""scored.h5ad streamed from cells.h5ad reads back as the AnnData built in memory and written."""

from __future__ import annotations

import anndata as ad
import h5py
import numpy as np
import pandas as pd
import pytest
import scipy.sparse as sp
from synthetic import cell_names, gene_names, log_normalise, umi_counts

from seedsoil.annotate import scanpy_obs, write_scored_cells
from seedsoil.errors import InputError
from seedsoil.util import atomic_path

N_CELLS, N_GENES = 120, 300
SIGNATURES = ["EMT_bidirectional", "NETs", "CTC_identity"]


def _cells(with_counts: bool) -> ad.AnnData:
    """A small sample as split writes it: CSR X, optional counts, categorical and plain obs."""
    rng = np.random.default_rng(3)
    counts = umi_counts(N_CELLS, N_GENES, 40, seed=3)
    adata = ad.AnnData(
        X=log_normalise(counts),
        obs=pd.DataFrame(
            {
                "sample": pd.Categorical(["P1"] * N_CELLS),
                "cell_type": pd.Categorical(rng.choice(["T cell", "Epithelial"], N_CELLS)),
                "n_counts": np.asarray(counts.sum(axis=1)).ravel().astype(np.float64),
                "qc_pass": np.ones(N_CELLS, dtype=bool),
            },
            index=cell_names(N_CELLS),
        ),
        var=pd.DataFrame(index=gene_names(N_GENES)),
        obsm={"X_embedding": rng.normal(size=(N_CELLS, 2)).astype(np.float32)},
        uns={"seedsoil": {"dataset": "tumour", "warnings": ["w1"], "qc": {"min_genes": 5}}},
    )
    if with_counts:
        adata.layers["counts"] = counts
    return adata


def _tables() -> dict[str, pd.DataFrame]:
    """Result tables in another cell order; the score tables miss one cell (it gets NaN)."""
    rng = np.random.default_rng(4)
    order = rng.permutation(cell_names(N_CELLS))
    scored = order[1:]
    tables = {
        name: pd.DataFrame(rng.uniform(size=(scored.size, len(SIGNATURES))),
                           index=scored, columns=SIGNATURES)
        for name in ("scores", "pvalues", "fdr")
    }  # fmt: skip
    tables["calls"] = pd.DataFrame(
        {
            "cell_type_assigned": rng.choice(["CD8 T", "unassigned"], order.size).astype(object),
            "ctc_candidate": rng.uniform(size=order.size) < 0.2,
            "ctc_confidence": rng.uniform(size=order.size),
            "heterotypic_cluster": [f"cluster{i}" for i in range(order.size)],  # all distinct
        },
        index=order,
    )
    return tables


def _annotated_in_memory(cells: ad.AnnData, tables: dict[str, pd.DataFrame], path) -> ad.AnnData:
    """The reference: load the whole sample, add the results, write with anndata, read back."""
    annotated = cells.copy()
    annotated.obs = scanpy_obs(
        annotated.obs.join(tables["scores"].reindex(cells.obs_names)).join(
            tables["calls"].reindex(cells.obs_names)
        )
    )
    for name in ("pvalues", "fdr"):
        annotated.obsm[name] = tables[name].reindex(cells.obs_names)
    annotated.write_h5ad(path, compression="gzip")
    return ad.read_h5ad(path)


def _assert_same_uns(a, b, where="uns"):
    if isinstance(a, dict):
        assert sorted(a) == sorted(b), where
        for key in a:
            _assert_same_uns(a[key], b[key], f"{where}/{key}")
    else:
        np.testing.assert_array_equal(np.asarray(a), np.asarray(b), err_msg=where)


def _write_cells(tmp_path, with_counts: bool):
    cells = _cells(with_counts)
    path = tmp_path / "cells.h5ad"
    cells.write_h5ad(path, compression="gzip")
    return cells, path


@pytest.mark.parametrize("with_counts", [True, False], ids=["counts", "no-counts"])
def test_streamed_scored_file_equals_in_memory_annotation(tmp_path, with_counts):
    cells, cells_path = _write_cells(tmp_path, with_counts)
    tables = _tables()
    expected = _annotated_in_memory(ad.read_h5ad(cells_path), tables, tmp_path / "expected.h5ad")
    write_scored_cells(cells_path, **tables, path=tmp_path / "scored.h5ad")
    written = ad.read_h5ad(tmp_path / "scored.h5ad")

    assert sorted(written.layers) == sorted(expected.layers) == (["counts"] if with_counts else [])
    matrices = [(written.X, expected.X)] + [(written.layers[k], expected.layers[k]) for k in written.layers]  # fmt: skip
    for matrix, reference in matrices:
        assert isinstance(matrix, sp.csr_matrix) and matrix.dtype == reference.dtype
        for part in ("indptr", "indices", "data"):
            np.testing.assert_array_equal(getattr(matrix, part), getattr(reference, part))
            assert getattr(matrix, part).dtype == getattr(reference, part).dtype
    pd.testing.assert_frame_equal(written.obs, expected.obs, check_exact=True)
    assert written.obs["cell_type_assigned"].dtype == "category"  # as write_h5ad stores strings
    assert written.obs.loc[tables["calls"].index[0], SIGNATURES].isna().all()  # unscored cell
    pd.testing.assert_frame_equal(written.var, expected.var)
    assert sorted(written.obsm) == sorted(expected.obsm) == ["X_embedding", "fdr", "pvalues"]
    for name in ("pvalues", "fdr"):
        pd.testing.assert_frame_equal(written.obsm[name], expected.obsm[name], check_exact=True)
    np.testing.assert_array_equal(written.obsm["X_embedding"], expected.obsm["X_embedding"])
    _assert_same_uns(written.uns, expected.uns)


def test_tables_read_from_parquet_equal_tables_given_in_memory(tmp_path):
    _, cells_path = _write_cells(tmp_path, with_counts=False)
    tables = _tables()
    paths = {}
    for name, table in tables.items():
        paths[name] = tmp_path / f"{name}.parquet"
        table.to_parquet(paths[name])
    write_scored_cells(cells_path, **tables, path=tmp_path / "from_frames.h5ad")
    write_scored_cells(cells_path, **paths, path=tmp_path / "from_files.h5ad")
    from_frames = ad.read_h5ad(tmp_path / "from_frames.h5ad")
    from_files = ad.read_h5ad(tmp_path / "from_files.h5ad")
    pd.testing.assert_frame_equal(from_files.obs, from_frames.obs, check_exact=True)
    for name in ("pvalues", "fdr"):
        pd.testing.assert_frame_equal(from_files.obsm[name], from_frames.obsm[name])


def test_standalone_matrices_keep_the_cell_files_storage(tmp_path):
    """A standalone file's matrices are object copies: same chunk shape and filter, so nothing
    is recompressed."""
    _, cells_path = _write_cells(tmp_path, with_counts=True)
    write_scored_cells(cells_path, **_tables(), path=tmp_path / "scored.h5ad", compression=None,
                       standalone=True)  # fmt: skip
    with h5py.File(cells_path, "r") as source, h5py.File(tmp_path / "scored.h5ad", "r") as target:
        for key in ("X/data", "X/indices", "layers/counts/data"):
            assert source[key].compression == "gzip"
            assert target[key].chunks == source[key].chunks
            assert target[key].compression == source[key].compression
            assert target[key].compression_opts == source[key].compression_opts
        assert target["obsm/pvalues/EMT_bidirectional"].compression is None


def test_signature_named_like_an_obs_column_is_an_input_error(tmp_path):
    _, cells_path = _write_cells(tmp_path, with_counts=False)
    tables = _tables()
    tables["scores"] = tables["scores"].rename(columns={"NETs": "cell_type"})
    with pytest.raises(InputError, match=r"cells\.h5ad: signature names clash.*\['cell_type'\]"):
        write_scored_cells(cells_path, **tables, path=tmp_path / "scored.h5ad")
    assert not (tmp_path / "scored.h5ad").exists()


def test_call_named_like_a_signature_is_an_input_error(tmp_path):
    _, cells_path = _write_cells(tmp_path, with_counts=False)
    tables = _tables()
    tables["calls"] = tables["calls"].rename(columns={"ctc_confidence": "NETs"})
    with pytest.raises(InputError, match=r"call names clash.*\['NETs'\]"):
        write_scored_cells(cells_path, **tables, path=tmp_path / "scored.h5ad")
    assert not (tmp_path / "scored.h5ad").exists()


def test_failure_after_the_matrices_are_copied_leaves_no_file(tmp_path):
    _, cells_path = _write_cells(tmp_path, with_counts=True)
    tables = _tables()
    tables["fdr"] = tmp_path / "missing_fdr.parquet"  # read last, after everything else
    out = tmp_path / "out" / "scored.h5ad"
    with pytest.raises(FileNotFoundError), atomic_path(out) as path:
        write_scored_cells(cells_path, **tables, path=path)
    assert list(out.parent.iterdir()) == []


def test_structure_shared_by_x_and_counts_stays_shared(tmp_path):
    """Counts written with X's indices/indptr hard-linked (as ingest writes them) are copied
    once: the scored file links them again and reads back the same counts."""
    cells, cells_path = _write_cells(tmp_path, with_counts=True)
    with h5py.File(cells_path, "r+") as f:
        for part in ("indices", "indptr"):
            np.testing.assert_array_equal(f[f"X/{part}"][...], f[f"layers/counts/{part}"][...])
            del f[f"layers/counts/{part}"]
            f[f"layers/counts/{part}"] = f[f"X/{part}"]
    write_scored_cells(cells_path, **_tables(), path=tmp_path / "scored.h5ad")
    with h5py.File(tmp_path / "scored.h5ad", "r") as f:
        for part in ("indices", "indptr"):
            assert f[f"layers/counts/{part}"] == f[f"X/{part}"]  # one HDF5 object
    counts = ad.read_h5ad(tmp_path / "scored.h5ad").layers["counts"]
    assert (counts != cells.layers["counts"]).nnz == 0


def test_scored_file_follows_scanpy_conventions(tmp_path):
    import scanpy as sc

    cells = _cells(with_counts=True)
    cells.obs["mito_fraction"] = np.linspace(0.0, 0.2, N_CELLS)
    cells.uns["seedsoil"]["embedding"] = "computed: PCA 30 → UMAP"
    path = tmp_path / "cells.h5ad"
    cells.write_h5ad(path)
    tables = _tables()
    tables["calls"]["emt_state"] = np.where(tables["calls"]["ctc_candidate"], "hybrid", "")
    write_scored_cells(path, *(tables[k] for k in ("scores", "pvalues", "fdr", "calls")),
                       tmp_path / "scored.h5ad")  # fmt: skip
    scored = ad.read_h5ad(tmp_path / "scored.h5ad")
    np.testing.assert_array_equal(scored.obsm["X_umap"], cells.obsm["X_embedding"])
    np.testing.assert_allclose(scored.obs["pct_counts_mt"], 100 * cells.obs["mito_fraction"])
    np.testing.assert_array_equal(scored.obs["total_counts"], cells.obs["n_counts"])
    assert "" not in scored.obs["emt_state"].cat.categories
    assert scored.obs["emt_state"].isna().sum() == (~tables["calls"]["ctc_candidate"]).sum()
    sc.pl.umap(scored, color=SIGNATURES[0], show=False)  # raises if scanpy cannot find it


@pytest.mark.parametrize(
    ("description", "key"),
    [
        ("dataset: X_umap", "X_umap"),
        ("dataset: X_tsne", "X_tsne"),
        ("computed: PCA 30 of the 2,000 most variable genes → UMAP", "X_umap"),
        ("computed: PCA 3 (first two PCs) on a random 20,000 of 50,000 cells", "X_pca"),
        ("computed: none (too few cells or genes)", None),
        ("dataset: X_draw_graph_fa", None),
    ],
)
def test_embedding_is_named_for_scanpy_by_what_it_is(description, key):
    from seedsoil.embedding import scanpy_key

    assert scanpy_key(description) == key


def test_cell_tables_name_the_cell_id_column_and_carry_seeds(tmp_path):
    import pyarrow.parquet as pq

    from seedsoil import __version__
    from seedsoil.util import write_cell_table

    scores = _tables()["scores"]
    write_cell_table(scores, tmp_path / "scores.parquet", {"random_state": 7})
    assert pq.read_schema(tmp_path / "scores.parquet").names[-1] == "cell"
    back = pd.read_parquet(tmp_path / "scores.parquet")
    assert list(back.index) == list(scores.index)
    assert back.attrs == {"seedsoil_version": __version__, "random_state": 7}


def test_cohort_anndata_holds_every_samples_scores_and_calls_without_a_matrix(tmp_path):
    from seedsoil.annotate import cohort_cells

    tables = _tables()
    samples = []
    for dataset in ("a", "b"):  # same barcodes in both datasets
        folder = tmp_path / dataset
        folder.mkdir()
        _cells(with_counts=True).write_h5ad(folder / "cells.h5ad")
        # no candidate at all in "a": its emt_state column is all missing after scanpy_obs
        candidate = tables["calls"]["ctc_candidate"] & (dataset == "b")
        tables["calls"]["emt_state"] = np.where(candidate, "hybrid", "")
        for name in ("scores", "calls"):
            tables[name].to_parquet(folder / f"{name}.parquet")
        samples.append((dataset, folder / "cells.h5ad", folder / "scores.parquet",
                        folder / "calls.parquet"))  # fmt: skip
    cohort = cohort_cells(samples)
    assert cohort.n_obs == 2 * N_CELLS and cohort.obs_names.is_unique and cohort.X is None
    assert list(cohort.obs["dataset"].value_counts().sort_index()) == [N_CELLS, N_CELLS]
    cells = cohort.obs.loc[cohort.obs["dataset"] == "b"].set_index("cell")
    expected = tables["scores"].reindex(cells.index)
    np.testing.assert_array_equal(cells[SIGNATURES].to_numpy(), expected.to_numpy())
    cohort.write_h5ad(tmp_path / "scored_cells.h5ad")  # writable as is
