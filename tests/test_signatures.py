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
    "IMM_monocyte_classical",
    "IMM_monocyte_nonclassical",
    "IMM_plasma",
    "ID_pericyte_smooth_muscle",
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
    assert versions == {"1.1.0"} and signatures.library_version(library) == "1.1.0"


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


def test_ctc_identity_is_epithelial_only_with_the_cellsearch_core(library):
    # Leukocyte (PTPRC) evidence is weighed by the CTC caller, not subtracted from the score.
    ctc = library["CTC_epithelial_identity"]
    assert ctc.down == () and "PTPRC" not in ctc.genes
    assert ctc.core[:3] == (("EPCAM",), ("KRT8", "KRT18", "KRT19"), ("CDH1",))


def test_every_cell_type_signature_declares_a_core(library):
    cell_types = [n for n in library if n.startswith(("IMM_", "ID_"))]
    assert [n for n in cell_types if len(library[n].core) < signatures.MIN_CORE_GROUPS] == []


@pytest.mark.parametrize("name", ["IMM_neutrophil", "IMM_MDSC"])
def test_granulocytic_signatures_do_not_rest_on_monocyte_shared_genes(library, name):
    shared_with_monocytes = {"S100A8", "S100A9", "S100A12", "MNDA"}
    assert not shared_with_monocytes & set(library[name].genes)
    assert {"CXCR2", "CXCR1"} & set(signatures.core_genes(library[name]))


def test_neutrophil_core_is_neutrophil_specific(library):
    core = set(signatures.core_genes(library["IMM_neutrophil"]))
    assert {"FCGR3B", "CXCR2", "CMTM2", "CEACAM8"} <= core
    assert not core & set(library["IMM_monocyte_classical"].genes)


@pytest.mark.parametrize(
    ("name", "markers"),
    [
        ("IMM_monocyte_classical", {"CD14", "LYZ", "FCN1", "VCAN"}),
        ("IMM_monocyte_nonclassical", {"FCGR3A", "CDKN1C", "MS4A7"}),
        ("IMM_plasma", {"JCHAIN", "MZB1", "TNFRSF17"}),
        ("ID_pericyte_smooth_muscle", {"RGS5", "NOTCH3", "MYH11"}),
    ],
)
def test_new_cell_types_have_their_defining_markers_in_the_core(library, name, markers):
    assert markers <= set(signatures.core_genes(library[name]))


def test_marker_genes_are_core_then_alternates(library):
    mast = library["IMM_mast"]
    assert signatures.core_genes(mast) == ["TPSAB1", "TPSB2", "CPA3", "KIT", "MS4A2", "HDC"]
    assert signatures.marker_genes(mast) == signatures.core_genes(mast) + list(mast.alternates)
    assert {"HPGDS", "GATA2", "SIGLEC6"} <= set(mast.alternates)


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
    with caplog.at_level(logging.INFO, logger="seedsoil.signatures"):
        table = signatures.coverage(subset, present, min_coverage=0.5)
    assert list(table.columns) == signatures.COVERAGE_COLUMNS
    ctc, b_cells = (
        table.set_index("signature").loc[["CTC_epithelial_identity", "IMM_B"]].to_dict("records")
    )
    assert (ctc["n_genes"], ctc["n_present"]) == (11, 7)
    assert ctc["missing"] == "CLDN7,MUC1,TACSTD2,ELF3"
    assert ctc["scored"] and ctc["reason"] == "" and ctc["scored_by"] == "coverage"
    assert (b_cells["n_present"], b_cells["scored"], b_cells["scored_by"]) == (2, False, "")
    assert b_cells["reason"] == (
        "coverage 0.13 below min_coverage 0.50 and core rule not met "
        "(2 of 5 core groups, 0 alternates present)"
    )
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


# ------------------------------------------------------------------ core markers and the core rule


@pytest.mark.parametrize(
    ("n_groups", "n_groups_present", "n_alternates_present", "holds"),
    [
        (4, 2, 0, True),  # half of the core measured directly
        (5, 3, 0, True),
        (5, 2, 0, False),  # 2 of 5 is less than half ...
        (5, 2, 1, True),  # ... unless an alternate stands in for a missing group
        (5, 1, 4, False),  # alternates never replace the two direct markers
        (2, 2, 0, True),
        (3, 1, 2, False),
        (0, 0, 3, False),  # no core declared
        (1, 1, 0, False),  # one group cannot identify a type
    ],
)
def test_core_rule(n_groups, n_groups_present, n_alternates_present, holds):
    assert signatures.core_rule_holds(n_groups, n_groups_present, n_alternates_present) is holds


def core_entry(**extra):
    return entry(
        name="SIG_core",
        up=("EPCAM", "KRT8", "KRT18", "CDH1", "CLDN4", "CLDN7", "MUC1", "ELF3", "SPINT2", "KRT7"),
        core=[["EPCAM"], ["KRT8", "KRT18"], ["CDH1"], ["CLDN4", "CLDN7"]],
        alternates=["KRT7", "ELF3"],
        **extra,
    )


def test_core_and_alternates_are_loaded_as_tuples(tmp_path):
    signature = signatures.load_library([write_yaml(tmp_path / "c.yaml", core_entry())])["SIG_core"]
    assert signature.core == (("EPCAM",), ("KRT8", "KRT18"), ("CDH1",), ("CLDN4", "CLDN7"))
    assert signature.alternates == ("KRT7", "ELF3")
    assert signatures.marker_genes(signature) == [
        *("EPCAM", "KRT8", "KRT18", "CDH1", "CLDN4", "CLDN7", "KRT7", "ELF3")
    ]


def test_signature_without_core_has_empty_core(tmp_path):
    signature = signatures.load_library([write_yaml(tmp_path / "s.yaml", entry())])["SIG_test"]
    assert (signature.core, signature.alternates, signatures.core_genes(signature)) == ((), (), [])


def test_core_gene_outside_up_names_file_and_signature(tmp_path):
    bad = core_entry() | {"core": [["EPCAM"], ["KRT19"]]}
    path = write_yaml(tmp_path / "core.yaml", bad)
    with pytest.raises(
        InputError,
        match=r"core\.yaml: signature 'SIG_core': core/alternate genes not listed "
        r"in genes\.up: KRT19",
    ):
        signatures.load_library([path])


def test_alternate_outside_up_is_rejected(tmp_path):
    path = write_yaml(tmp_path / "alt.yaml", core_entry() | {"alternates": ["TACSTD2"]})
    with pytest.raises(InputError, match="SIG_core.*not listed in genes.up: TACSTD2"):
        signatures.load_library([path])


def test_gene_in_core_and_alternates_is_rejected(tmp_path):
    path = write_yaml(tmp_path / "rep.yaml", core_entry() | {"alternates": ["EPCAM"]})
    with pytest.raises(InputError, match="more than once across core groups and alternates: EPCAM"):
        signatures.load_library([path])


def test_core_of_one_group_is_a_schema_error(tmp_path):
    path = write_yaml(tmp_path / "one.yaml", core_entry() | {"core": [["EPCAM", "KRT8"]]})
    with pytest.raises(
        InputError, match=r"one\.yaml: signature 'SIG_core': core: needs at least 2 marker groups"
    ):
        signatures.load_library([path])


def test_empty_core_group_is_a_schema_error(tmp_path):
    path = write_yaml(tmp_path / "empty.yaml", core_entry() | {"core": [["EPCAM"], []]})
    with pytest.raises(InputError, match=r"signature 'SIG_core': core\.1: .*"):
        signatures.load_library([path])


def test_core_alias_is_resolved_like_the_gene_list(tmp_path):
    path = write_yaml(
        tmp_path / "alias.yaml",
        entry(up=("CXCL8", "CD3E", "CD8A"), core=[["IL8"], ["CD3E"]], alternates=["CD8A"]),
    )
    assert signatures.load_library([path])["SIG_test"].core == (("CXCL8",), ("CD3E",))


def test_mouse_mapping_maps_core_and_drops_groups_without_ortholog(tmp_path):
    path = write_yaml(
        tmp_path / "m.yaml",
        entry(
            up=("CD3E", "CXCL8", "GZMB", "CD8A"),
            core=[["CD3E"], ["CXCL8"], ["GZMB"]],
            alternates=["CD8A"],
        ),
    )
    mouse = signatures.to_species(signatures.load_library([path]), "mouse")["SIG_test"]
    assert mouse.core == (("Cd3e",), ("Gzmb",)) and mouse.alternates == ("Cd8a",)


def test_gmt_sets_have_no_core(tmp_path):
    path = tmp_path / "user.gmt"
    path.write_text("SET1\tdesc\tEPCAM\tKRT8\tCDH1\n")
    signature = signatures.load_library([], gmt=[path])["SET1"]
    assert (signature.core, signature.alternates) == ((), ())


def test_low_coverage_signature_is_scored_by_its_core(tmp_path, caplog):
    library = signatures.load_library([write_yaml(tmp_path / "c.yaml", core_entry())])
    with caplog.at_level(logging.INFO, logger="seedsoil.signatures"):
        row = signatures.coverage(library, ["EPCAM", "KRT18", "ACTB"]).iloc[0]
    assert row["fraction"] == pytest.approx(0.2, abs=1e-12)
    assert (row["scored"], row["scored_by"], row["reason"]) == (True, "core", "")
    assert (row["core_groups"], row["core_groups_present"]) == (4, 2)
    assert (row["core_genes_present"], row["alternates_present"]) == ("EPCAM,KRT18", "")
    assert "SIG_core scored by its core markers" in caplog.text


def test_alternates_fill_missing_core_groups_but_not_the_direct_two(tmp_path):
    five_groups = core_entry() | {
        "core": [["EPCAM"], ["KRT8", "KRT18"], ["CDH1"], ["CLDN4", "CLDN7"], ["MUC1"]],
    }
    library = signatures.load_library([write_yaml(tmp_path / "c.yaml", five_groups)])
    two_direct = signatures.coverage(library, ["EPCAM", "CDH1"]).iloc[0]
    plus_alternate = signatures.coverage(library, ["EPCAM", "CDH1", "KRT7"]).iloc[0]
    one_direct = signatures.coverage(library, ["EPCAM", "KRT7", "ELF3"]).iloc[0]
    assert (two_direct["scored"], plus_alternate["scored_by"]) == (False, "core")
    assert (one_direct["scored"], one_direct["alternates_present"]) == (False, "KRT7,ELF3")


def test_coverage_takes_precedence_over_core(tmp_path):
    library = signatures.load_library([write_yaml(tmp_path / "s.yaml", entry())])
    row = signatures.coverage(library, ["CD3E"]).iloc[0]
    assert (row["scored_by"], row["core_groups"], row["core_genes_present"]) == ("coverage", 0, "")


def test_hydroseq_targeted_panel_scores_ctc_identity_by_its_core(library):
    # The shipped real targeted panel (2,545 genes) holds EPCAM, KRT8, KRT19 and CDH1 but less
    # than half of the signature's genes.
    import anndata as ad

    panel = ad.read_h5ad(signatures.REPO / "resources/data/hydroseq_ctc_enriched_1100.h5ad", "r")
    table = signatures.coverage(library, panel.var_names).set_index("signature")
    ctc = table.loc["CTC_epithelial_identity"]
    assert ctc["fraction"] < signatures.DEFAULT_MIN_COVERAGE and ctc["scored_by"] == "core"
    assert {"EPCAM", "KRT8", "KRT19", "CDH1"} <= set(ctc["core_genes_present"].split(","))


def test_alternates_without_core_are_a_schema_error(tmp_path):
    path = write_yaml(tmp_path / "alt.yaml", entry(alternates=["CD8A"]))
    with pytest.raises(
        InputError, match=r"alt\.yaml: signature 'SIG_test': alternates: given without core"
    ):
        signatures.load_library([path])


def test_skipped_signatures_make_one_warning_line_per_sample(library, caplog):
    with caplog.at_level(logging.WARNING, logger="seedsoil.signatures"):
        table = signatures.coverage(library, ["PTPRC", "CD3E"], min_coverage=0.5)
    warnings = [r for r in caplog.records if r.levelno == logging.WARNING]
    n_skipped = int((~table["scored"]).sum())
    assert n_skipped > 1 and len(warnings) == 1
    assert warnings[0].getMessage().startswith(f"{n_skipped} of {len(table)} signatures not scored")


def test_coverage_warns_once_per_sample_listing_every_skipped_signature(library, caplog):
    present = ["PTPRC", "MS4A1", "CD19"]
    with caplog.at_level(logging.WARNING, logger="seedsoil.signatures"):
        table = signatures.coverage(library, present, min_coverage=0.5)
    skipped = table.loc[~table["scored"], "signature"]
    assert len(skipped) > 1
    assert len(caplog.records) == 1  # one terminal line, not one per signature
    assert all(name in caplog.records[0].getMessage() for name in skipped)
