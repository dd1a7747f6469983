"""seedsoil.io.read_matrix: every format, both orientations, and bad files."""

from __future__ import annotations

import gzip

import anndata as ad
import h5py
import numpy as np
import pandas as pd
import pytest
import scipy.io
import scipy.sparse as sp

from seedsoil.errors import InputError
from seedsoil.io import gene_label_fraction, read_matrix

GENES = ["CD3E", "CD8A", "MS4A1", "LYZ", "NKG7", "EPCAM", "VIM", "MT-CO1"]
CELLS = ["AAACCTGAGAAGGCCT-1", "AAACCTGAGACAGACC-1", "AAACCTGAGGCATGTG-1"]


@pytest.fixture
def counts() -> np.ndarray:
    """3 cells × 8 genes of small integer counts, a few zeros."""
    rng = np.random.default_rng(0)
    values = rng.integers(0, 6, size=(len(CELLS), len(GENES))).astype(np.float32)
    values[0, 0] = 0
    return values


def write_mtx_dir(folder, counts, *, gz: bool, v3: bool):
    folder.mkdir()
    opener = gzip.open if gz else open
    suffix = ".gz" if gz else ""
    features = pd.DataFrame({"id": [f"ENSG{i:011d}" for i in range(len(GENES))], "name": GENES})
    matrix = counts.T
    if v3:
        features["type"] = "Gene Expression"
        # an antibody-capture feature that the reader must drop
        features.loc[len(features)] = ["CD3_TotalSeqB", "CD3", "Antibody Capture"]
        matrix = np.vstack([matrix, np.full((1, len(CELLS)), 99.0)])
    with opener(folder / f"matrix.mtx{suffix}", "wb") as handle:
        scipy.io.mmwrite(handle, sp.coo_matrix(matrix))
    name = "features.tsv" if v3 else "genes.tsv"
    with opener(folder / f"{name}{suffix}", "wt") as handle:
        features.to_csv(handle, sep="\t", header=False, index=False)
    with opener(folder / f"barcodes.tsv{suffix}", "wt") as handle:
        handle.write("\n".join(CELLS) + "\n")


def test_h5ad_round_trip(tmp_path, counts):
    path = tmp_path / "x.h5ad"
    ad.AnnData(
        sp.csr_matrix(counts), obs=pd.DataFrame(index=CELLS), var=pd.DataFrame(index=GENES)
    ).write_h5ad(path)
    adata = read_matrix(path, "h5ad")
    np.testing.assert_array_equal(adata.X.toarray(), counts)
    assert list(adata.var_names) == GENES


@pytest.mark.parametrize(("gz", "v3"), [(True, True), (False, False), (False, True)])
def test_mtx_folder(tmp_path, counts, gz, v3):
    write_mtx_dir(tmp_path / "mtx", counts, gz=gz, v3=v3)
    adata = read_matrix(tmp_path / "mtx", "mtx")
    assert list(adata.obs_names) == CELLS
    assert list(adata.var_names) == GENES  # symbols; the antibody feature is dropped
    assert adata.var["gene_ids"].iloc[0] == "ENSG00000000000"
    np.testing.assert_array_equal(adata.X.toarray(), counts)


def test_mtx_folder_missing_barcodes_is_named(tmp_path, counts):
    write_mtx_dir(tmp_path / "mtx", counts, gz=True, v3=True)
    (tmp_path / "mtx" / "barcodes.tsv.gz").unlink()
    with pytest.raises(InputError, match=r"lacks barcodes\.tsv"):
        read_matrix(tmp_path / "mtx", "mtx")


def test_10x_h5_v3_layout(tmp_path, counts):
    path = tmp_path / "filtered_feature_bc_matrix.h5"
    matrix = sp.csc_matrix(counts.T)  # 10x stores features × barcodes in CSC
    with h5py.File(path, "w") as f:
        group = f.create_group("matrix")
        group["barcodes"] = np.array(CELLS, dtype="S")
        group["data"] = matrix.data.astype(np.int32)
        group["indices"] = matrix.indices.astype(np.int64)
        group["indptr"] = matrix.indptr.astype(np.int64)
        group["shape"] = np.array(matrix.shape, dtype=np.int32)
        features = group.create_group("features")
        features["id"] = np.array([f"ENSG{i:011d}" for i in range(len(GENES))], dtype="S")
        features["name"] = np.array(GENES, dtype="S")
        features["feature_type"] = np.array(["Gene Expression"] * len(GENES), dtype="S")
        features["genome"] = np.array(["GRCh38"] * len(GENES), dtype="S")
        features["_all_tag_keys"] = np.array([b"genome"])
    adata = read_matrix(path, "10x_h5")
    assert list(adata.obs_names) == CELLS
    assert list(adata.var_names) == GENES
    np.testing.assert_array_equal(adata.X.toarray(), counts)


def test_csv_cells_by_genes(tmp_path, counts):
    path = tmp_path / "m.csv"
    pd.DataFrame(counts, index=CELLS, columns=GENES).to_csv(path)
    adata = read_matrix(path, "csv")
    assert adata.shape == (3, 8) and list(adata.var_names) == GENES
    np.testing.assert_array_equal(adata.X.toarray(), counts)


def test_gzipped_tsv_genes_by_cells_is_transposed(tmp_path, counts):
    path = tmp_path / "m.tsv.gz"
    pd.DataFrame(counts.T, index=GENES, columns=CELLS).to_csv(path, sep="\t")
    adata = read_matrix(path, "tsv")
    assert list(adata.obs_names) == CELLS and list(adata.var_names) == GENES
    np.testing.assert_array_equal(adata.X.toarray(), counts)


def test_transpose_override_wins_over_detection(tmp_path, counts):
    path = tmp_path / "m.csv"
    pd.DataFrame(counts, index=CELLS, columns=GENES).to_csv(path)
    adata = read_matrix(path, "csv", transpose=True)
    assert list(adata.obs_names) == GENES


def test_ambiguous_orientation_asks_for_transpose(tmp_path):
    path = tmp_path / "m.csv"
    pd.DataFrame(np.ones((3, 3)), index=["A1", "B2", "C3"], columns=["X", "Y", "Z"]).to_csv(path)
    with pytest.raises(InputError, match="transpose"):
        read_matrix(path, "csv")


def test_gene_label_fraction_tells_cells_from_genes():
    assert gene_label_fraction(GENES + ["ENSG00000141510.12"]) == 1.0
    assert gene_label_fraction(CELLS) == 0.0
    assert gene_label_fraction([f"Cell_{i}" for i in range(1, 50)]) == 0.0
    assert gene_label_fraction(["MGH54_P2_C12", "MGH36_P6_F03"]) == 0.0


def test_non_numeric_column_is_named(tmp_path, counts):
    path = tmp_path / "m.csv"
    frame = pd.DataFrame(counts, index=CELLS, columns=GENES)
    frame["donor"] = "d1"
    frame.to_csv(path)
    with pytest.raises(InputError, match="donor"):
        read_matrix(path, "csv")


def test_unknown_format_lists_known_ones(tmp_path):
    with pytest.raises(InputError, match="known formats: h5ad, mtx, 10x_h5, csv, tsv"):
        read_matrix(tmp_path / "x.loom", "loom")


def test_missing_file_is_named(tmp_path):
    with pytest.raises(InputError, match=r"missing\.h5ad does not exist"):
        read_matrix(tmp_path / "missing.h5ad", "h5ad")


def test_truncated_h5ad_says_re_download(tmp_path, counts):
    path = tmp_path / "x.h5ad"
    ad.AnnData(sp.csr_matrix(counts)).write_h5ad(path)
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])
    with pytest.raises(InputError, match="truncated or not an h5ad; re-download") as error:
        read_matrix(path, "h5ad")
    assert str(path) in str(error.value)


def test_text_file_declared_h5ad_is_refused(tmp_path):
    path = tmp_path / "x.h5ad"
    path.write_text("cell,CD3E\nc1,1\n")
    with pytest.raises(InputError, match="not an h5ad"):
        read_matrix(path, "h5ad")


def test_corrupt_10x_h5_is_refused(tmp_path):
    path = tmp_path / "x.h5"
    path.write_bytes(b"\x89HDF\r\n\x1a\n" + b"\0" * 100)
    with pytest.raises(InputError, match="10x h5"):
        read_matrix(path, "10x_h5")
