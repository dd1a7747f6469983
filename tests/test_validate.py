"""validate_run checks everything a config names before any job, and lists every problem."""

from __future__ import annotations

from pathlib import Path

import pytest

from seedsoil.errors import InputError
from seedsoil.validate import report_gaps, validate_run

REPO = Path(__file__).resolve().parents[1]
HEADER = "id\tsource\tformat\n"


@pytest.fixture
def workdir(tmp_path, monkeypatch):
    """An empty working directory with a valid one-row sheet (a built-in dataset)."""
    monkeypatch.chdir(tmp_path)
    (tmp_path / "datasets.tsv").write_text(HEADER + "pbmc\tbuiltin:pbmc68k_reduced\th5ad\n")
    return tmp_path


def config(**signatures) -> dict:
    return {
        "datasets": "datasets.tsv",
        "signatures": {"library": ["resources/signatures"], "gmt": [], **signatures},
    }


def problems_of(config_: dict, **options) -> str:
    with pytest.raises(InputError) as error:
        validate_run(config_, REPO, **options)
    return str(error.value)


def test_shipped_library_is_found_in_the_workflow_folder(workdir):
    run = validate_run(config(), REPO)
    assert list(run.sheet.index) == ["pbmc"]
    assert run.library_paths == [str(REPO / "resources" / "signatures")]
    assert all(Path(p).suffix == ".yaml" for p in run.signature_files)


def test_every_problem_is_listed_in_one_error(workdir):
    (workdir / "datasets.tsv").write_text(
        HEADER + "a\tmissing.h5ad\th5ad\nb\tbuiltin:pbmc68k_reduced\tloom\n"
    )
    (workdir / "bad.gmt").write_text("SET_WITHOUT_GENES\tdescription\n")
    message = problems_of(config(gmt=["bad.gmt", "elsewhere/none.gmt"]))
    assert message.startswith("4 problem(s)")
    assert "line 2, column 'source'" in message and "missing.h5ad" in message
    assert "line 3, column 'format'" in message
    assert "bad.gmt: line 1: set 'SET_WITHOUT_GENES' has no genes" in message
    assert "elsewhere/none.gmt: signature GMT file not found" in message


def test_a_missing_library_folder_is_named_as_written(workdir):
    message = problems_of(config(library=["my_signatures"]))
    assert "my_signatures: signature file or folder not found" in message
    assert str(REPO / "my_signatures") not in message


def test_a_signature_defined_in_two_files_is_refused(workdir):
    shipped = REPO / "resources" / "signatures"
    first = sorted(shipped.glob("*.yaml"))[0]
    (workdir / "copy").mkdir()
    (workdir / "copy" / "again.yaml").write_text(first.read_text())
    message = problems_of(config(library=[str(shipped), "copy"]))
    assert "is already defined in" in message and first.name in message


def test_a_header_without_rows_is_refused(workdir):
    (workdir / "datasets.tsv").write_text(HEADER)
    assert "header but no dataset rows" in problems_of(config())


def test_a_broken_pairs_table_is_refused(workdir):
    (workdir / "pairs.tsv").write_text("ligand\treceptor\n")
    assert "pairs.tsv: missing column(s)" in problems_of(config(), pairs=workdir / "pairs.tsv")


def test_an_unknown_communication_resource_is_refused_naming_the_key_and_the_valid_names(workdir):
    message = problems_of({**config(), "communication": {"resource": "cellphonedb_v5"}})
    assert "communication.resource: unknown LIANA resource 'cellphonedb_v5'" in message
    assert "consensus" in message and "cellphonedb," in message and "null" in message


def test_a_shipped_or_null_communication_resource_is_accepted(workdir):
    for resource in ("cellchatdb", None):
        validate_run({**config(), "communication": {"resource": resource}}, REPO)


def test_report_gaps_name_datasets_without_results_and_results_of_other_datasets(tmp_path):
    (tmp_path / "mine").mkdir()
    (tmp_path / "mine" / "samples.tsv").write_text("sample\tn_cells\n")
    message = report_gaps(["pbmc68k", "wu2020"], tmp_path)
    assert "no results for 2 of the 2 dataset(s)" in message and "pbmc68k, wu2020" in message
    assert "does not name (mine)" in message and "--configfile" in message
    assert report_gaps(["mine"], tmp_path) is None
