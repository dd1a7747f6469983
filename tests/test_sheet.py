"""The dataset sheet is validated row by row before any work starts."""

from pathlib import Path

import pytest

from seedsoil.errors import InputError
from seedsoil.sheet import load_sheet, source_kind

SCHEMA = Path(__file__).parents[1] / "workflow" / "schemas" / "datasets.schema.yaml"
HEADER = "id\tsource\tformat\tsample_column\tspecies\n"


def write_sheet(tmp_path, *rows, header=HEADER):
    path = tmp_path / "datasets.tsv"
    path.write_text(header + "".join(row + "\n" for row in rows))
    return path


def test_defaults_are_filled_in(tmp_path):
    sheet = load_sheet(write_sheet(tmp_path, "a\tbuiltin:pbmc68k_reduced\th5ad\t\t"), SCHEMA)
    row = sheet.loc["a"]
    assert row.species == "human"
    assert row.gene_id == "symbol"
    assert row.counts == "X"
    assert row.condition == "NA"
    assert row.sample_column == ""


def test_duplicate_ids_are_refused(tmp_path):
    path = write_sheet(
        tmp_path, "a\tbuiltin:pbmc68k_reduced\th5ad\t\t", "a\tbuiltin:pbmc68k_reduced\th5ad\t\t"
    )
    with pytest.raises(InputError, match="duplicate dataset id.*a"):
        load_sheet(path, SCHEMA)


def test_unknown_format_names_line_and_column(tmp_path):
    path = write_sheet(tmp_path, "a\tbuiltin:pbmc68k_reduced\th5ad\t\t", "b\tx.loom\tloom\t\t")
    with pytest.raises(InputError, match=r"line 3, column 'format'.*loom"):
        load_sheet(path, SCHEMA)


def test_unknown_column_is_named(tmp_path):
    path = write_sheet(
        tmp_path, "a\tbuiltin:x\th5ad\tbatch", header="id\tsource\tformat\tsamples\n"
    )
    with pytest.raises(InputError, match="unknown column.*samples"):
        load_sheet(path, SCHEMA)


def test_missing_local_source_is_named(tmp_path):
    path = write_sheet(tmp_path, "a\tdata/missing.h5ad\th5ad\t\t")
    with pytest.raises(InputError, match=r"line 2, column 'source'.*missing\.h5ad.*does not exist"):
        load_sheet(path, SCHEMA)


def test_dataset_id_that_would_escape_results_is_refused(tmp_path):
    path = write_sheet(tmp_path, "../evil\tbuiltin:pbmc68k_reduced\th5ad\t\t")
    with pytest.raises(InputError, match=r"line 2, column 'id'"):
        load_sheet(path, SCHEMA)


def test_invalid_species_is_refused(tmp_path):
    path = write_sheet(tmp_path, "a\tbuiltin:pbmc68k_reduced\th5ad\t\trat")
    with pytest.raises(InputError, match=r"column 'species'.*rat"):
        load_sheet(path, SCHEMA)


def test_missing_sheet_is_named(tmp_path):
    with pytest.raises(InputError, match="nothere.tsv: dataset sheet not found"):
        load_sheet(tmp_path / "nothere.tsv", SCHEMA)


@pytest.mark.parametrize(
    ("source", "kind"),
    [
        ("https://example.org/a.h5ad", "url"),
        ("http://127.0.0.1:8000/a.h5ad", "url"),
        ("builtin:pbmc68k_reduced", "builtin"),
        ("data/a.h5ad", "local"),
    ],
)
def test_source_kind(source, kind):
    assert source_kind(source) == kind


def test_unknown_builtin_lists_the_known_ones(tmp_path):
    path = write_sheet(tmp_path, "a\tbuiltin:pbmc3k\th5ad\t\t")
    with pytest.raises(InputError, match=r"line 2, column 'source'.*pbmc3k.*pbmc68k_reduced"):
        load_sheet(path, SCHEMA)


def test_shipped_sheet_is_valid():
    sheet = load_sheet(SCHEMA.parents[2] / "config" / "datasets.tsv", SCHEMA)
    assert len(sheet) >= 3
