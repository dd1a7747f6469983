"""The report's CTC marker check: epithelial markers in the called cells, myeloid ones outside."""

import anndata as ad
import numpy as np
import pandas as pd

from seedsoil.report.sample import _ctc_markers


def _cells(markers: pd.DataFrame) -> ad.AnnData:
    adata = ad.AnnData(obs=pd.DataFrame(index=markers.index))
    adata.obsm["ctc_markers"] = markers
    return adata


def test_marker_check_gives_detection_fractions_of_candidates_and_other_cells():
    index = [f"c{i}" for i in range(4)]
    markers = pd.DataFrame(
        {"EPCAM": [1.0, 2.0, 0.0, 0.0], "LYZ": [0.0, 0.0, 3.0, 1.0]}, index=index
    )
    candidate = np.array([True, True, False, False])
    rows = _ctc_markers(_cells(markers), candidate)["rows"]
    assert [[text for text, _ in row] for row in rows] == [
        ["EPCAM", "1", "0"],
        ["LYZ", "0", "1"],
    ]


def test_marker_check_is_absent_without_candidates():
    markers = pd.DataFrame({"EPCAM": [1.0, 0.0]}, index=["a", "b"])
    assert _ctc_markers(_cells(markers), np.zeros(2, dtype=bool)) is None


def test_marker_columns_are_needed_only_when_some_cell_is_a_candidate():
    from seedsoil.report.sample import needs_ctc_markers

    assert not needs_ctc_markers(None)
    assert not needs_ctc_markers(pd.DataFrame({"cell_type_assigned": ["T cell"]}))
    assert not needs_ctc_markers(pd.DataFrame({"ctc_candidate": [False, None, False]}))
    assert needs_ctc_markers(pd.DataFrame({"ctc_candidate": [False, None, True]}))


def test_a_report_without_candidates_has_no_marker_check_even_without_marker_columns():
    from seedsoil.report.sample import _ctc

    calls = pd.DataFrame({"ctc_candidate": [False, False]}, index=["a", "b"])
    adata = ad.AnnData(obs=pd.DataFrame(index=["a", "b"]))  # no obsm["ctc_markers"], no X
    result = _ctc(calls, pd.Series(["T cell", "B cell"]), ["B cell", "T cell"], None, {}, adata)
    assert result["markers"] is None
    assert result["sentence"].startswith("0 of 2 cells")
