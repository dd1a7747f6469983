"""seedsoil.harmonise.harmonise: the AnnData convention, scale detection and bad inputs."""

from __future__ import annotations

import anndata as ad
import numpy as np
import pandas as pd
import pytest
import scipy.sparse as sp

import seedsoil.names as names_module
from seedsoil.embedding import compute_embedding
from seedsoil.errors import InputError
from seedsoil.harmonise import detect_scale, harmonise
from seedsoil.names import make_unique, safe_sample_name

HUMAN = [
    "CD3E",
    "CD8A",
    "MS4A1",
    "LYZ",
    "NKG7",
    "EPCAM",
    "VIM",
    "PTPRC",
    "KRT8",
    "GAPDH",
    "ACTB",
    "B2M",
]
MOUSE = [
    "Cd3e",
    "Cd8a",
    "Ms4a1",
    "Lyz2",
    "Nkg7",
    "Epcam",
    "Vim",
    "Ptprc",
    "Krt8",
    "Gapdh",
    "Actb",
    "B2m",
]
N_CELLS = 12


def make(values, genes=HUMAN, **obs_columns) -> ad.AnnData:
    obs = pd.DataFrame(obs_columns, index=[f"c{i}" for i in range(len(values))])
    adata = ad.AnnData(sp.csr_matrix(np.asarray(values, dtype=np.float32)), obs=obs)
    adata.var_names = genes
    adata.obsm["X_umap"] = np.zeros((len(values), 2))  # keeps these tests free of UMAP
    return adata


@pytest.fixture
def counts() -> np.ndarray:
    rng = np.random.default_rng(1)
    return rng.poisson(3.0, size=(N_CELLS, len(HUMAN))).astype(np.float64) + np.eye(
        N_CELLS, len(HUMAN)
    )


def test_counts_go_to_layer_and_x_is_log_cp10k(counts):
    out = harmonise(make(counts), dataset="d")
    np.testing.assert_array_equal(out.layers["counts"].toarray(), counts)
    expected = np.log1p(counts / counts.sum(1, keepdims=True) * 1e4)
    np.testing.assert_allclose(out.X.toarray(), expected, rtol=1e-6)
    assert out.X.dtype == np.float32 and sp.isspmatrix_csr(out.X)
    assert out.uns["seedsoil"]["input_scale"] == "counts"


def test_near_integer_floats_are_counts(counts):
    # a CSV written by floating-point code stores 3.00000000000001 for 3
    assert detect_scale(sp.csr_matrix(counts + 1e-11)) == "counts"


def test_tpm_like_values_are_rescaled_to_10k_without_counts_layer(counts):
    tpm = counts / counts.sum(1, keepdims=True) * 1e6 + 0.37
    out = harmonise(make(tpm), dataset="d")
    assert out.uns["seedsoil"]["input_scale"] == "normalised"
    assert "counts" not in out.layers
    np.testing.assert_allclose(np.expm1(out.X.toarray()).sum(1), 1e4, rtol=1e-4)
    assert any("normalised" in w for w in out.uns["seedsoil"]["warnings"])


def test_log_normalised_values_are_kept(counts):
    lognorm = np.log1p(counts / counts.sum(1, keepdims=True) * 1e4)
    out = harmonise(make(lognorm), dataset="d")
    assert out.uns["seedsoil"]["input_scale"] == "log-normalised"
    np.testing.assert_allclose(out.X.toarray(), lognorm, rtol=1e-6)
    assert "counts" not in out.layers


def test_counts_from_raw_and_layer(counts):
    adata = make(np.log1p(counts))
    adata.layers["umi"] = sp.csr_matrix(counts)
    out = harmonise(adata, dataset="d", counts="layer:umi")
    np.testing.assert_array_equal(out.layers["counts"].toarray(), counts)


def test_scaled_data_points_to_raw(counts):
    adata = make(counts)
    adata.raw = adata.copy()
    adata.X = sp.csr_matrix((counts - counts.mean(0)) / counts.std(0))
    with pytest.raises(InputError, match="scaled.*set the sheet's counts column to raw") as error:
        harmonise(adata, dataset="d", source_label="in.h5ad")
    assert "in.h5ad" in str(error.value)


def test_negative_counts_are_refused(counts):
    counts[3, 2] = -2
    with pytest.raises(InputError, match="counts must be ≥ 0") as error:
        harmonise(make(counts), dataset="d")
    assert "'c3'" in str(error.value) and "'MS4A1'" in str(error.value)


@pytest.mark.parametrize("bad", [np.nan, np.inf])
def test_nan_and_inf_are_named(counts, bad):
    counts[5, 1] = bad
    counts[7, 1] = bad
    with pytest.raises(InputError, match=r"2 NaN/Inf values in 2 cells \(first: cell 'c5'"):
        harmonise(make(counts), dataset="d")


def test_ensembl_declared_as_symbols_is_refused(counts):
    ids = [f"ENSG{i:011d}" for i in range(len(HUMAN))]
    with pytest.raises(InputError, match="Set the sheet's gene_id column to ensembl"):
        harmonise(make(counts, genes=ids), dataset="d")


def test_ensembl_ids_map_to_symbols_and_drop_versions(counts, monkeypatch):
    table = {f"ENSG{i:011d}": s for i, s in enumerate(HUMAN[:-1])}  # the last ID has no symbol
    monkeypatch.setattr(
        names_module, "ensembl_to_symbol", lambda ids, species: [table.get(i, i) for i in ids]
    )
    ids = [f"ENSG{i:011d}.{i + 1}" for i in range(len(HUMAN))]
    out = harmonise(make(counts, genes=ids), dataset="d", gene_id="ensembl")
    assert list(out.var_names) == HUMAN[:-1] + [f"ENSG{len(HUMAN) - 1:011d}"]
    assert any("have no symbol" in w for w in out.uns["seedsoil"]["warnings"])


def test_mouse_symbols_declared_human_are_refused(counts):
    with pytest.raises(InputError, match="set the sheet's species column to mouse"):
        harmonise(make(counts, genes=MOUSE), dataset="d", species="human")


def test_human_symbols_declared_mouse_are_refused(counts):
    with pytest.raises(InputError, match="set the sheet's species column to human"):
        harmonise(make(counts, genes=HUMAN), dataset="d", species="mouse")


def test_duplicated_symbols_are_summed_with_a_warning(counts):
    genes = HUMAN[:-1] + ["CD3E"]
    out = harmonise(make(counts, genes=genes), dataset="d")
    assert list(out.var_names) == HUMAN[:-1]
    np.testing.assert_array_equal(
        out.layers["counts"][:, 0].toarray().ravel(), counts[:, 0] + counts[:, -1]
    )
    assert any("1 gene symbols occur more than once" in w for w in out.uns["seedsoil"]["warnings"])


def test_outdated_symbols_in_the_data_become_current_and_keep_their_input_name(counts):
    genes = HUMAN[:-2] + ["IL8", "CD97"]  # previous HGNC symbols of CXCL8 and ADGRE5
    out = harmonise(make(counts, genes=genes), dataset="d")
    assert list(out.var_names[-2:]) == ["CXCL8", "ADGRE5"]
    assert list(out.var["input_name"]) == genes
    renamed = [w for w in out.uns["seedsoil"]["warnings"] if "outdated gene symbols" in w]
    assert renamed == [renamed[0]] and "CD97→ADGRE5, IL8→CXCL8" in renamed[0]


def test_current_symbols_are_not_renamed_and_raise_no_warning(counts):
    out = harmonise(make(counts), dataset="d")
    assert list(out.var_names) == HUMAN
    assert not any("outdated" in w for w in out.uns["seedsoil"]["warnings"])


def test_ensembl_input_keeps_its_ids_in_gene_ids(counts, monkeypatch):
    table = {f"ENSG{i:011d}": s for i, s in enumerate(HUMAN)}
    monkeypatch.setattr(
        names_module, "ensembl_to_symbol", lambda ids, species: [table.get(i, i) for i in ids]
    )
    ids = [f"ENSG{i:011d}.3" for i in range(len(HUMAN))]
    out = harmonise(make(counts, genes=ids), dataset="d", gene_id="ensembl")
    assert list(out.var["gene_ids"]) == [i[:-2] for i in ids]


def test_duplicated_barcodes_get_numbered_suffixes():
    names, warnings = make_unique(["a", "b", "a", "a", "a-1"])
    assert names == ["a", "b", "a-2", "a-3", "a-1"]
    assert len(set(names)) == 5 and "2 duplicated cell barcodes" in warnings[0]


def test_missing_sample_column_names_file_column_and_alternatives(counts):
    adata = make(counts, patient=["p1"] * N_CELLS)
    with pytest.raises(InputError) as error:
        harmonise(adata, dataset="d", sample_key="donor", source_label="data/x.h5ad")
    assert "data/x.h5ad" in str(error.value) and "'donor'" in str(error.value)
    assert "patient" in str(error.value)


@pytest.mark.parametrize("unsafe", ["..", "../x", "a/b", "a\\b", ".hidden", "", "samples.tsv"])
def test_unsafe_sample_names_are_refused(counts, unsafe):
    adata = make(counts, sample=["ok"] * 5 + [unsafe] * (N_CELLS - 5))
    with pytest.raises(InputError, match="row 6, cell 'c5'"):
        harmonise(adata, dataset="d", sample_key="sample")


def test_other_characters_are_made_safe(counts):
    assert safe_sample_name("patient 1 (tumour)") == "patient_1_tumour_"
    adata = make(counts, s=["patient 1"] * 6 + ["patient_1"] * 6)
    with pytest.raises(InputError, match="become 'patient_1'"):
        harmonise(adata, dataset="d", sample_key="s")


def test_obs_columns_follow_the_convention(counts):
    adata = make(counts, ct=["T"] * 11 + [None], sample=["x"] * N_CELLS)
    out = harmonise(adata, dataset="d", cell_type_key="ct", condition="blood")
    assert set(out.obs["sample"]) == {"d"}
    assert out.obs["cell_type"].iloc[-1] == "unlabelled"
    assert set(out.obs["condition"]) == {"blood"}
    assert "orig_sample" in out.obs  # an input column named like a convention column is kept aside
    assert out.uns["seedsoil"]["embedding"] == "dataset: X_umap"


def test_harmonised_output_writes_and_reads_back(counts, tmp_path):
    out = harmonise(make(counts), dataset="d", provenance={"accession": "GSE1"})
    out.write_h5ad(tmp_path / "o.h5ad")
    back = ad.read_h5ad(tmp_path / "o.h5ad")
    assert back.uns["seedsoil"]["provenance"]["accession"] == "GSE1"
    assert back.obsm["X_embedding"].shape == (N_CELLS, 2)


def test_missing_embedding_key_is_named(counts):
    with pytest.raises(InputError, match="embedding 'X_tsne' not in obsm"):
        harmonise(make(counts), dataset="d", embedding="X_tsne")


def test_computed_embedding_is_deterministic_on_a_small_dataset():
    # distinct cells: exact duplicate cells tie in the kNN graph and break reproducibility
    values = np.random.default_rng(0).poisson(2.0, size=(36, len(HUMAN)))
    adata = make(np.log1p(values))  # 36 cells × 12 genes: fewer than 50 of each
    first, how = compute_embedding(adata, random_state=0)
    second, _ = compute_embedding(adata, random_state=0)
    assert first.shape == (36, 2) and how == "computed: PCA 11 → UMAP"
    np.testing.assert_array_equal(first, second)


def test_tiny_datasets_fall_back_to_pca_or_zeros(counts):
    coords, how = compute_embedding(make(np.log1p(counts[:5])))
    assert coords.shape == (5, 2) and "first two PCs" in how
    coords, how = compute_embedding(make(np.log1p(counts[:2])))
    assert np.all(coords == 0) and "too few" in how


def test_log_normalise_is_log1p_of_each_value_times_its_cells_factor_bit_for_bit():
    """X = float32(log1p(value × 10,000 / cell total)), every step in float64; an all-zero cell
    stays empty and the sparsity structure is kept."""
    from seedsoil.harmonise import log_normalise

    counts = sp.random(40, 30, density=0.3, format="csr", random_state=2, dtype=np.float64)
    counts.data = np.rint(counts.data * 50) + 1
    counts = sp.vstack([counts, sp.csr_matrix((1, 30))], format="csr")  # an empty cell
    X = log_normalise(counts)
    totals = np.asarray(counts.sum(axis=1)).ravel()
    rows = np.repeat(np.arange(counts.shape[0]), np.diff(counts.indptr))
    expected = np.log1p(counts.data * (1e4 / totals[rows])).astype(np.float32)
    assert X.dtype == np.float32
    np.testing.assert_array_equal(X.indptr, counts.indptr)
    np.testing.assert_array_equal(X.indices, counts.indices)
    np.testing.assert_array_equal(X.data, expected)
    assert X[-1].nnz == 0
