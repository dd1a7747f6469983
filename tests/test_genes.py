"""Gene tables: GENCODE symbols, aliases, orthologs and var_names heuristics (seedsoil.genes)."""

from __future__ import annotations

import gzip
import importlib.util

import pandas as pd
import pytest

from seedsoil import genes
from seedsoil.datasets import get_builtin, wheel_path
from seedsoil.errors import InputError


def test_shipped_tables_stay_small():
    total = sum(p.stat().st_size for p in genes.GENES_DIR.iterdir() if p.is_file())
    assert total < 2_000_000


def test_gencode_table_has_unique_unversioned_ids():
    table = genes.gencode_table()
    assert list(table.columns) == ["gene_id", "symbol"]
    assert table["gene_id"].is_unique
    assert table["gene_id"].str.fullmatch(r"ENSG\d{11}").all()


def test_gencode_symbols_include_known_genes_and_exclude_ids():
    symbols = genes.human_symbols()
    assert {"PTPRC", "CXCL8", "ADGRE5", "EPCAM"} <= symbols
    assert not any(s.startswith("ENSG") for s in symbols)


def test_ensembl_to_symbol_strips_version_and_keeps_unknown_ids():
    ids = ["ENSG00000081237.21", "ENSG00000169429", "ENSG99999999999"]
    assert genes.ensembl_to_symbol(ids) == ["PTPRC", "CXCL8", "ENSG99999999999"]


def test_ensembl_to_symbol_mouse_is_explained_error():
    with pytest.raises(InputError, match="no mouse Ensembl id"):
        genes.ensembl_to_symbol(["ENSMUSG00000028076"], species="mouse")


def test_unknown_species_is_an_input_error():
    with pytest.raises(InputError, match="rat"):
        genes.is_known_symbol("CD3E", species="rat")


def test_resolve_aliases_il8_to_cxcl8():
    resolved, changes = genes.resolve_aliases(["IL8", "CD97", "PTPRC", "SDPR"])
    assert resolved == ["CXCL8", "ADGRE5", "PTPRC", "CAVIN2"]
    assert changes == {"IL8": "CXCL8", "CD97": "ADGRE5", "SDPR": "CAVIN2"}


def test_resolve_aliases_leaves_unknown_symbols_alone():
    resolved, changes = genes.resolve_aliases(["NOTAGENE1"])
    assert resolved == ["NOTAGENE1"] and changes == {}


def test_every_alias_is_outdated_and_points_to_a_current_symbol():
    table = pd.read_csv(genes.ALIAS_TABLE, sep="\t", comment="#", dtype=str)
    current = genes.human_symbols()
    assert table["alias"].is_unique
    assert not set(table["alias"]) & current, "an alias that is also a current symbol is ambiguous"
    assert set(table["symbol"]) <= current
    assert set(table["kind"]) <= {"previous", "alias"}


def test_human_to_mouse_one_to_one_and_missing():
    mapping = genes.human_to_mouse(["CD3E", "CXCL8", "CD68"])
    assert mapping["CD3E"] == ("Cd3e",)
    assert mapping["CXCL8"] == ()  # mice have no IL-8
    assert mapping["CD68"] == ("Cd68",)  # from the ortholog supplement


def test_pick_mouse_ortholog_prefers_same_name_and_drops_ambiguous():
    assert genes.pick_mouse_ortholog("GZMB", ("Gzmb", "Gzmc", "Gzmd")) == "Gzmb"
    assert genes.pick_mouse_ortholog("FCGR3B", ("Fcgr4",)) == "Fcgr4"
    assert genes.pick_mouse_ortholog("MNDA", ("Ifi202b", "Ifi204")) is None
    assert genes.pick_mouse_ortholog("CXCL8", ()) is None


def test_ortholog_table_has_only_named_pairs():
    with gzip.open(genes.ORTHOLOG_TABLE, "rt") as handle:
        table = pd.read_csv(handle, sep="\t", dtype=str, keep_default_na=False)
    assert (table != "").all().all()
    assert not table.duplicated().any()


def test_is_known_symbol_by_species():
    assert genes.is_known_symbol("CD3E", "human")
    assert not genes.is_known_symbol("Cd3e", "human")
    assert genes.is_known_symbol("Cd3e", "mouse")


@pytest.mark.parametrize(
    ("names", "expected"),
    [
        (["CD3E", "PTPRC", "MT-CO1", "EPCAM", "C1orf112"], "human"),
        (["Cd3e", "Ptprc", "mt-Co1", "Epcam", "Gm12345"], "mouse"),
        (["ENSG00000081237", "1", "2"], "unknown"),
    ],
)
def test_guess_species_from_letter_case(names, expected):
    assert genes.guess_species(names) == expected


def test_looks_like_ensembl():
    assert genes.looks_like_ensembl(["ENSG00000081237.3", "ENSMUSG00000028076", "CD3E"])
    assert not genes.looks_like_ensembl(["CD3E", "PTPRC", "ENSG00000081237"])
    assert not genes.looks_like_ensembl([])


def test_build_tables_regenerates_the_shipped_files(tmp_path):
    # its own copy of the wheel: the workflow tests may be downloading the shared one meanwhile
    wheel = wheel_path(get_builtin("celltypist_sample"), tmp_path / "wheels")
    spec = importlib.util.spec_from_file_location(
        "build_tables", genes.GENES_DIR / "build_tables.py"
    )
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    module.main(["--wheel", str(wheel), "--out", str(tmp_path)])
    for name in (module.GENCODE_TABLE, module.ORTHOLOG_TABLE):
        assert (tmp_path / name).read_bytes() == (genes.GENES_DIR / name).read_bytes()


def test_ortholog_supplement_replaces_misassigned_export_pairs():
    mapping = genes.ortholog_table()
    assert mapping["LYZ"] == ("Lyz2",)  # the export has only 9530003J23Rik
    assert mapping["S100A9"] == ("S100a9",)  # the export has only Gm5849
