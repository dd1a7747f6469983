"""The CTC call's epithelial markers come from the scored library's own CTC signature."""

import pandas as pd
import yaml

from seedsoil.interpret import genes_needed
from seedsoil.interpret.ctc import EPITHELIAL_CORE, library_core


def _library(path, **extra):
    signature = {
        "name": "CTC_epithelial_identity",
        "theme": "ctc",
        "description": "A user's own CTC identity.",
        "rationale": "Test.",
        "genes": {"up": ["EPCAM", "KRT19", "CEACAM5", "MUC1"], "down": []},
        "references": [{"citation": "Doe J (2020) A paper. J Test 1:1"}],
    } | extra
    path.write_text(yaml.safe_dump({"version": "1.0.0", "signatures": [signature]}))
    return path


def test_a_custom_ctc_signatures_declared_core_is_used(tmp_path):
    path = _library(tmp_path / "ctc.yaml", core=[["KRT19"], ["CEACAM5"]])
    assert library_core([path]) == (("KRT19",), ("CEACAM5",))


def test_a_ctc_signature_without_core_falls_back_to_the_built_in_markers(tmp_path):
    assert library_core([_library(tmp_path / "ctc.yaml")]) == EPITHELIAL_CORE


def test_a_library_without_a_ctc_signature_falls_back_to_the_built_in_markers(tmp_path):
    path = tmp_path / "other.gmt"
    path.write_text("IMM_other\tna\tCD3E\tCD3D\n")
    assert library_core([], gmt=[path]) == EPITHELIAL_CORE


def test_mouse_data_get_the_core_in_mouse_symbols(tmp_path):
    path = _library(tmp_path / "ctc.yaml", core=[["EPCAM"], ["KRT19"]])
    assert library_core([path], species="mouse") == (("Epcam",), ("Krt19",))


def test_the_declared_core_genes_are_read_from_the_matrix():
    pairs = {"ligand": [], "receptor": [], "theme": [], "description": [], "references": []}

    assert "CEACAM5" in genes_needed(pd.DataFrame(pairs), (("CEACAM5",), ("KRT19",)))
