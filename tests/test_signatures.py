"""The signature library: shipped content, YAML/GMT loading, species mapping, coverage."""

from __future__ import annotations

import logging
import re

import pytest
import yaml

from seedsoil import genes, signatures
from seedsoil.errors import InputError

SHIPPED_FILES = sorted(signatures.LIBRARY_DIR.glob("*.yaml"))
# Names other modules rely on (notes/signature_names.md); CTC_breast_Kwan2018 is omitted
# because its genes cannot be stated with confidence.
REQUIRED_NAMES = [
    "EMT_epithelial",
    "EMT_mesenchymal",
    "EMT_bidirectional",
    "TGFB_SMAD_drive",
    "CTC_epithelial_identity",
    "CTC_cluster_adhesion",
    "CTC_neutrophil_axis",
    "NET_formation",
    "TAN_tumour_associated_neutrophils",
    "EV_biogenesis",
    "EV_tumour_cargo",
    "IMM_macrophage_TAM",
    "IMM_dendritic",
    "IMM_neutrophil",
    "IMM_mast",
    "IMM_CD8_cytotoxic",
    "IMM_CD4_T",
    "IMM_Treg",
    "IMM_gammadelta_IL17",
    "IMM_NK",
    "IMM_B",
    "IMM_MDSC",
    "IMM_platelet",
    "ID_epithelial_tumour",
    "ID_fibroblast",
    "ID_endothelial",
    "ID_glial",
    "NICHE_gap_junction",
    "NICHE_integrin_FAK",
    "NICHE_angiogenesis",
    "NICHE_immunosuppression_checkpoint",
    "NICHE_inflammasome_IL1B_IL17",
    "NICHE_IL6_IL8",
    "NICHE_premetastatic",
    "NICHE_Notch",
]


def raw_signatures():
    """(file, entry) for every signature of the shipped YAML files, before any processing."""
    for path in SHIPPED_FILES:
        for entry in yaml.safe_load(path.read_text())["signatures"]:
            yield path.name, entry


def entry(name="SIG_test", up=("CD3E", "CD8A"), down=(), **extra):
    base = {
        "name": name,
        "theme": "test",
        "description": "Test signature.",
        "rationale": "Test.",
        "genes": {"up": list(up), "down": list(down)},
        "references": [{"citation": "Doe J (2020) A paper. J Test 1:1"}],
    }
    return base | extra


def write_yaml(path, *entries, version="1.0.0"):
    path.write_text(yaml.safe_dump({"version": version, "signatures": list(entries)}))
    return path


@pytest.fixture(scope="module")
def library():
    return signatures.load_signatures()


# ------------------------------------------------------------------ shipped library


@pytest.mark.parametrize("path", SHIPPED_FILES, ids=lambda p: p.name)
def test_shipped_file_validates_against_schema(path):
    validator = signatures._schema_validator()
    errors = list(validator.iter_errors(yaml.safe_load(path.read_text())))
    assert errors == []


def test_schema_describes_every_field():
    schema = yaml.safe_load(signatures.SCHEMA_PATH.read_text())

    def undocumented(node, where):
        for key, sub in node.get("properties", {}).items():
            if "description" not in sub:
                yield f"{where}.{key}"
            yield from undocumented(sub, f"{where}.{key}")
            if isinstance(sub.get("items"), dict):
                yield from undocumented(sub["items"], f"{where}.{key}[]")

    assert list(undocumented(schema, "")) == []


def test_library_has_the_agreed_names(library):
    assert set(REQUIRED_NAMES) <= set(library)


def test_shipped_files_share_one_version(library):
    versions = {yaml.safe_load(p.read_text())["version"] for p in SHIPPED_FILES}
    assert versions == {"1.0.0"} and signatures.library_version(library) == "1.0.0"


@pytest.mark.parametrize(
    ("source", "item"), list(raw_signatures()), ids=lambda x: x if isinstance(x, str) else x["name"]
)
def test_shipped_signature_has_no_duplicate_genes(source, item):
    genes_listed = item["genes"]["up"] + item["genes"].get("down", [])
    assert len(genes_listed) == len(set(genes_listed)), source


@pytest.mark.parametrize(
    ("source", "item"), list(raw_signatures()), ids=lambda x: x if isinstance(x, str) else x["name"]
)
def test_shipped_symbols_are_current_or_aliases(source, item):
    resolved, _ = genes.resolve_aliases(item["genes"]["up"] + item["genes"].get("down", []))
    assert [s for s in resolved if s not in genes.human_symbols()] == [], source


@pytest.mark.parametrize(
    ("source", "item"), list(raw_signatures()), ids=lambda x: x if isinstance(x, str) else x["name"]
)
def test_shipped_signature_has_reference_or_general_knowledge(source, item):
    assert item["references"] or item.get("general_knowledge", "").strip(), source


def test_shipped_references_name_author_and_year(library):
    for signature in library.values():
        for reference in signature.references:
            assert re.match(r"^\S.* \((19|20)\d\d\) .+", reference["citation"]), reference


def test_shipped_sizes_are_curated_ranges(library):
    sizes = {name: len(s.genes) for name, s in library.items()}
    assert all(8 <= n <= 40 for n in sizes.values()), sizes


def test_ctc_identity_has_ptprc_down(library):
    assert library["CTC_epithelial_identity"].down == ("PTPRC",)
    assert "EPCAM" in library["CTC_epithelial_identity"].up


def test_emt_bidirectional_arms_come_from_the_two_emt_signatures(library):
    bidirectional = library["EMT_bidirectional"]
    assert set(bidirectional.up) <= set(library["EMT_mesenchymal"].up)
    assert set(bidirectional.down) <= set(library["EMT_epithelial"].up)


def test_shipped_readme_is_up_to_date(library):
    shipped = (signatures.LIBRARY_DIR / "README.md").read_text()
    assert shipped == signatures.render_readme(signatures.load_library([signatures.LIBRARY_DIR]))


# ------------------------------------------------------------------ YAML validation


def test_duplicate_gene_names_file_and_signature(tmp_path):
    path = write_yaml(tmp_path / "dup.yaml", entry(up=("CD3E", "CD3E")))
    with pytest.raises(InputError, match=r"dup\.yaml: signature 'SIG_test'.*CD3E"):
        signatures.load_library([path])


def test_duplicate_gene_after_alias_resolution_is_rejected(tmp_path):
    path = write_yaml(tmp_path / "dup.yaml", entry(up=("CXCL8", "IL8")))
    with pytest.raises(InputError, match="more than once"):
        signatures.load_library([path])


def test_unknown_symbol_names_file_and_signature(tmp_path):
    path = write_yaml(tmp_path / "bad.yaml", entry(up=("CD3E", "NOTAGENE1")))
    with pytest.raises(
        InputError, match=r"bad\.yaml: signature 'SIG_test': unknown gene symbols NOTAGENE1"
    ):
        signatures.load_library([path])


def test_mouse_symbols_in_yaml_get_a_hint(tmp_path):
    path = write_yaml(tmp_path / "mouse.yaml", entry(up=("Cd3e", "Cd8a")))
    with pytest.raises(InputError, match="look like mouse symbols"):
        signatures.load_library([path])


def test_alias_in_yaml_is_resolved_with_warning(tmp_path, caplog):
    path = write_yaml(tmp_path / "old.yaml", entry(up=("IL8", "CD3E")))
    with caplog.at_level(logging.WARNING, logger="seedsoil.signatures"):
        library = signatures.load_library([path])
    assert library["SIG_test"].up == ("CXCL8", "CD3E")
    assert "IL8→CXCL8" in caplog.text


def test_duplicate_name_across_files_names_both(tmp_path):
    first = write_yaml(tmp_path / "a.yaml", entry())
    second = write_yaml(tmp_path / "b.yaml", entry())
    with pytest.raises(
        InputError, match=r"b\.yaml: signature 'SIG_test' is already defined in .*a\.yaml"
    ):
        signatures.load_library([first, second])


def test_missing_reference_and_note_is_a_schema_error(tmp_path):
    path = write_yaml(tmp_path / "noref.yaml", entry(references=[]))
    with pytest.raises(
        InputError, match="signature 'SIG_test'.*no references and no general_knowledge"
    ):
        signatures.load_library([path])


def test_general_knowledge_note_replaces_references(tmp_path):
    path = write_yaml(tmp_path / "gk.yaml", entry(references=[], general_knowledge="Marker genes."))
    assert signatures.load_library([path])["SIG_test"].general_knowledge == "Marker genes."


def test_schema_error_names_the_field(tmp_path):
    path = write_yaml(tmp_path / "field.yaml", entry(name="SIG_UP"))
    with pytest.raises(InputError, match=r"field\.yaml: signature 'SIG_UP': name"):
        signatures.load_library([path])


def test_weights_for_foreign_genes_are_rejected(tmp_path):
    path = write_yaml(tmp_path / "w.yaml", entry(weights={"CD4": 2.0}))
    with pytest.raises(InputError, match="weights given for genes not in the signature: CD4"):
        signatures.load_library([path])


def test_weights_are_kept(tmp_path):
    path = write_yaml(tmp_path / "w.yaml", entry(weights={"CD8A": 2.0}))
    assert signatures.load_library([path])["SIG_test"].weights == {"CD8A": 2.0}


def test_missing_library_path_is_an_input_error(tmp_path):
    with pytest.raises(InputError, match="not found"):
        signatures.load_library([tmp_path / "absent.yaml"])


# ------------------------------------------------------------------ GMT


def test_gmt_round_trip_keeps_names_and_directions(library, tmp_path):
    path = tmp_path / "library.gmt"
    signatures.write_gmt(library, path)
    back = signatures.load_library([], gmt=[path])
    assert list(back) == list(library)
    assert all(back[n].up == library[n].up and back[n].down == library[n].down for n in library)


def test_gmt_writes_directed_signatures_as_up_down_pair(library, tmp_path):
    path = tmp_path / "library.gmt"
    signatures.write_gmt({"EMT_bidirectional": library["EMT_bidirectional"]}, path)
    names = [line.split("\t")[0] for line in path.read_text().splitlines()]
    assert names == ["EMT_bidirectional_UP", "EMT_bidirectional_DOWN"]


def test_gmt_lone_up_set_stays_undirected_and_aliases_resolve(tmp_path):
    path = tmp_path / "user.gmt"
    path.write_text("MY_SET_UP\tdesc\tIL8\tCD3E\nOTHER\tdesc\tPTPRC\n")
    library = signatures.load_library([], gmt=[path])
    assert library["MY_SET_UP"].up == ("CXCL8", "CD3E") and library["MY_SET_UP"].down == ()
    assert library["OTHER"].theme == "custom"


def test_gmt_set_without_genes_is_an_error(tmp_path):
    path = tmp_path / "empty.gmt"
    path.write_text("GOOD\tdesc\tCD3E\nEMPTY\tdesc\n")
    with pytest.raises(InputError, match=r"line 2: set 'EMPTY' has no genes"):
        signatures.load_library([], gmt=[path])


def test_gmt_repeated_set_name_is_an_error(tmp_path):
    path = tmp_path / "rep.gmt"
    path.write_text("A\tdesc\tCD3E\nA\tdesc\tCD4\n")
    with pytest.raises(InputError, match="named more than once: A"):
        signatures.load_library([], gmt=[path])


def test_gmt_unknown_symbol_is_kept_with_a_warning_naming_file_and_set(tmp_path, caplog):
    path = tmp_path / "custom.gmt"
    path.write_text("SET1\tdesc\tCD3E\tNOTAGENE1\n")
    library = signatures.load_library([], gmt=[path])
    assert library["SET1"].up == ("CD3E", "NOTAGENE1")
    assert "custom.gmt: signature 'SET1': unknown gene symbols NOTAGENE1" in caplog.text


def test_gmt_needs_gmt_extension(tmp_path):
    path = tmp_path / "sets.txt"
    path.write_text("SET1\tdesc\tCD3E\n")
    with pytest.raises(InputError, match="must end in .gmt"):
        signatures.read_gmt(path)


# ------------------------------------------------------------------ species mapping


def small_library(tmp_path):
    path = write_yaml(
        tmp_path / "small.yaml",
        entry(name="T_cells", up=("CD3E", "GZMB", "CXCL8", "CD68"), down=("PTPRC",)),
    )
    return signatures.load_library([path])


def test_to_mouse_maps_and_records_dropped_genes(tmp_path):
    mouse = signatures.to_species(small_library(tmp_path), "mouse")["T_cells"]
    assert mouse.up == ("Cd3e", "Gzmb", "Cd68")
    assert mouse.down == ("Ptprc",)
    assert mouse.dropped == ("CXCL8",)


def test_to_human_returns_library_unchanged(tmp_path):
    library = small_library(tmp_path)
    assert signatures.to_species(library, "human") == library


def test_coverage_on_mouse_fixture(tmp_path):
    mouse = signatures.to_species(small_library(tmp_path), "mouse")
    table = signatures.coverage(mouse, ["Cd3e", "Gzmb", "Ptprc", "Actb"], min_coverage=0.5)
    row = table.iloc[0]
    assert (row["n_genes"], row["n_present"], row["missing"], row["no_ortholog"]) == (
        4,
        3,
        "Cd68",
        "CXCL8",
    )
    assert row["fraction"] == pytest.approx(0.75, abs=1e-12) and bool(row["scored"])


# ------------------------------------------------------------------ coverage


def test_coverage_table_with_known_missing_genes(library, caplog):
    subset = {n: library[n] for n in ("CTC_epithelial_identity", "IMM_B")}
    present = ["EPCAM", "KRT8", "KRT18", "KRT19", "KRT7", "CDH1", "CLDN4", "PTPRC", "MS4A1", "CD19"]
    with caplog.at_level(logging.WARNING, logger="seedsoil.signatures"):
        table = signatures.coverage(subset, present, min_coverage=0.5)
    assert list(table.columns) == signatures.COVERAGE_COLUMNS
    ctc, b_cells = (
        table.set_index("signature").loc[["CTC_epithelial_identity", "IMM_B"]].to_dict("records")
    )
    assert (ctc["n_genes"], ctc["n_present"]) == (12, 8)
    assert ctc["missing"] == "CLDN7,MUC1,TACSTD2,ELF3"
    assert ctc["scored"] and ctc["reason"] == ""
    assert (b_cells["n_present"], b_cells["scored"]) == (2, False)
    assert b_cells["reason"] == "coverage 0.13 below min_coverage 0.50"
    assert "IMM_B not scored" in caplog.text


def test_coverage_threshold_is_inclusive(tmp_path):
    library = signatures.load_library([write_yaml(tmp_path / "s.yaml", entry(up=("CD3E", "CD8A")))])
    assert bool(signatures.coverage(library, ["CD3E"], min_coverage=0.5)["scored"].iloc[0])


def test_coverage_rejects_threshold_outside_unit_interval(library):
    with pytest.raises(InputError, match="min_coverage"):
        signatures.coverage(library, ["CD3E"], min_coverage=1.5)


def test_zero_coverage_with_ensembl_ids_says_so(library):
    var_names = ["ENSG00000081237", "ENSG00000169429", "ENSG00000123146"]
    table = signatures.coverage(library, var_names)
    with pytest.raises(InputError, match=r"sample_1: no signature reaches.*Ensembl gene ids"):
        signatures.require_some_coverage(table, "sample_1", var_names=var_names)


def test_zero_coverage_with_mouse_symbols_points_at_species(library):
    var_names = ["Cd3e", "Epcam", "Ptprc", "Krt8"]
    table = signatures.coverage(library, var_names)
    with pytest.raises(InputError, match="look mouse"):
        signatures.require_some_coverage(table, "sample_1", var_names=var_names)


def test_zero_coverage_without_names_lists_likely_causes(library):
    table = signatures.coverage(library, ["XYZ1"])
    with pytest.raises(InputError, match="Ensembl ids declared as symbols.*species is wrong"):
        signatures.require_some_coverage(table, "sample_1")


def test_some_coverage_passes(library):
    table = signatures.coverage(library, list(library["IMM_B"].genes))
    signatures.require_some_coverage(table, "sample_1")
