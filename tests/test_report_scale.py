"""The sample report at atlas size: pseudobulks streamed from the file, a report rendered from
the annotations alone, and embedding plots that draw a stated, seeded subsample of the cells
that have coordinates."""

from __future__ import annotations

import re

import numpy as np
import pandas as pd
import pytest
from report_fixtures import sample_inputs

from seedsoil.cellfile import read_annotations
from seedsoil.errors import InputError
from seedsoil.report import plots, pseudobulk, write_sample_report


@pytest.fixture(scope="module")
def inputs():
    return sample_inputs(n_cells=300)


@pytest.fixture(scope="module")
def cells_file(inputs, tmp_path_factory):
    path = tmp_path_factory.mktemp("cells") / "cells.h5ad"
    inputs["adata"].write_h5ad(path, compression="gzip")
    return path


def _grouped_sums(matrix, labels) -> pd.DataFrame:
    """The definition, on a dense float64 matrix: column sums over the cells of each label."""
    dense = pd.DataFrame(np.asarray(matrix.toarray(), dtype=np.float64))
    return dense.groupby(np.asarray(labels, dtype=str)).sum().T


def test_streamed_pseudobulk_equals_in_memory(inputs, cells_file):
    in_memory = pseudobulk(inputs["adata"])
    streamed = pseudobulk(cells_file, block_cells=37)  # blocks that split groups unevenly
    # Integer counts summed in float64 are exact whatever the block order: tolerance 0.
    pd.testing.assert_frame_equal(streamed, in_memory, check_exact=True)
    assert streamed.attrs == in_memory.attrs


def test_pseudobulk_sums_counts_layer_per_group(inputs, cells_file):
    adata = inputs["adata"]
    expected = _grouped_sums(adata.layers["counts"], adata.obs["cell_type"])
    table = pseudobulk(cells_file, block_cells=50)
    np.testing.assert_allclose(table.to_numpy(), expected.to_numpy(), rtol=1e-12)
    assert table.attrs["source"] == "counts"


def test_pseudobulk_without_counts_sums_expm1_of_x(inputs, tmp_path):
    adata = inputs["adata"].copy()
    del adata.layers["counts"]
    adata.write_h5ad(tmp_path / "cells.h5ad")
    table = pseudobulk(tmp_path / "cells.h5ad", block_cells=64)
    # expm1 in X's float32, then sums in float64 in another order: relative 1e-12.
    expected = _grouped_sums(adata.X.expm1(), adata.obs["cell_type"])
    np.testing.assert_allclose(table.to_numpy(), expected.to_numpy(), rtol=1e-12)
    assert table.attrs["source"] == "expm1(X)"
    assert table.attrs["n_cells"] == adata.obs["cell_type"].value_counts().to_dict()


def test_pseudobulk_of_annotations_alone_asks_for_the_file(cells_file):
    with pytest.raises(InputError, match="pass the path"):
        pseudobulk(read_annotations(cells_file))


def test_pseudobulk_names_a_missing_group_column(cells_file):
    with pytest.raises(InputError, match="no column 'donor'"):
        pseudobulk(cells_file, groupby="donor")


def test_report_renders_from_annotations_only(inputs, cells_file, tmp_path):
    annotations = read_annotations(cells_file)
    assert annotations.X is None and not annotations.layers
    out = tmp_path / "report.html"
    write_sample_report(out, **{**inputs, "adata": annotations})
    html = out.read_text()
    assert '<div class="k">genes</div><div class="v">400</div>' in html
    assert html.count("data:image/png;base64,") >= 8  # QC, types, heatmap, boxes, embeddings


def test_shown_cells_is_a_seeded_subsample_of_cells_with_coordinates():
    coords = np.random.default_rng(0).normal(size=(1_000, 2))
    coords[::4] = np.nan
    shown = plots.shown_cells(coords, max_points=200)
    assert shown.size == 200 and np.unique(shown).size == 200
    assert np.isfinite(coords[shown]).all()
    np.testing.assert_array_equal(shown, plots.shown_cells(coords, max_points=200))
    assert not np.array_equal(
        np.sort(shown), np.sort(plots.shown_cells(coords, max_points=200, seed=1))
    )


def test_shown_cells_keeps_every_cell_with_coordinates_below_the_cap():
    coords = np.arange(20.0).reshape(10, 2)
    coords[[2, 5], 1] = np.nan
    assert sorted(plots.shown_cells(coords, max_points=50)) == [0, 1, 3, 4, 6, 7, 8, 9]


def _embedding_captions(html: str) -> list[str]:
    return re.findall(r"<figcaption>([^<]*(?:embedding|Embedding)[^<]*)</figcaption>", html)


def test_subsampled_embedding_caption_states_shown_of_all(inputs, tmp_path, monkeypatch):
    monkeypatch.setattr(plots, "MAX_POINTS", 120)
    out = tmp_path / "report.html"
    write_sample_report(out, **inputs)
    captions = _embedding_captions(out.read_text())
    expected = (
        "Embedding coloured by cell type. 120 of 300 cells shown (a seeded random subsample)."
    )
    assert captions[0] == expected


def test_cells_without_coordinates_are_counted_in_captions(inputs, tmp_path):
    adata = inputs["adata"].copy()
    adata.obsm["X_embedding"] = adata.obsm["X_embedding"].astype(float)
    adata.obsm["X_embedding"][:100] = np.nan
    out = tmp_path / "report.html"
    write_sample_report(out, **{**inputs, "adata": adata})
    html = out.read_text()
    assert "200 of 300 cells have coordinates" in html
    captions = _embedding_captions(html)
    assert "200 of 300 cells shown (200 have embedding coordinates)" in captions[0]


def test_no_cell_with_coordinates_means_no_embedding_plots(inputs, tmp_path):
    adata = inputs["adata"].copy()
    adata.obsm["X_embedding"] = np.full((adata.n_obs, 2), np.nan)
    out = tmp_path / "report.html"
    write_sample_report(out, **{**inputs, "adata": adata})
    assert "Not computed: embedding plots" in out.read_text()
