"""interpret_sample on the few genes read by seedsoil.cellfile.read_genes equals it on the whole file."""

import anndata as ad
import numpy as np
import pandas as pd
import pytest

from seedsoil.cellfile import read_genes
from seedsoil.interpret import genes_needed, interpret_sample, load_pairs, read_cell_table
from seedsoil.synthetic import log_normalise, umi_counts

SIGNATURES = [
    "CTC_epithelial_identity", "EMT_bidirectional", "IMM_neutrophil", "IMM_CD4_T", "IMM_B",
    "IMM_platelet", "ID_epithelial_tumour", "ID_fibroblast", "NET_formation", "EV_biogenesis",
]  # fmt: skip


def _sample_file(path, labelled: bool, seed=0, n_cells=400, n_genes=300):
    """A cells.h5ad with UMI-like X and counts, PTPRC and all but two pair genes among other genes."""
    rng = np.random.default_rng(seed)
    pair_genes = [g for g in genes_needed(load_pairs()) if g not in ("IL17A", "CLEC4G")]
    genes = pair_genes + [f"G{i}" for i in range(n_genes - len(pair_genes))]
    order = rng.permutation(n_genes)  # pair genes scattered among the others
    counts = umi_counts(n_cells, n_genes, nnz_per_cell=120, seed=seed)
    cells = [f"c{i}" for i in range(n_cells)]
    types = rng.choice(["tumour", "neutrophil", "T", "fibroblast"], n_cells) if labelled else None
    obs = pd.DataFrame(
        {
            "cell_type": types if labelled else "unlabelled",
            "n_counts": np.asarray(counts.sum(axis=1)).ravel(),
            "n_genes": np.diff(counts.indptr),
        },
        index=cells,
    )
    adata = ad.AnnData(
        log_normalise(counts), obs=obs, var=pd.DataFrame(index=np.array(genes)[order])
    )
    adata.layers["counts"] = counts
    adata.write_h5ad(path)
    tables = [
        pd.DataFrame(
            rng.random((n_cells, len(SIGNATURES))) ** power, index=cells, columns=SIGNATURES
        )
        for power in (1, 1, 4)
    ]
    return tables


@pytest.mark.parametrize("labelled", [True, False], ids=["labels", "assigned"])
def test_results_from_the_needed_genes_equal_those_from_the_whole_file(tmp_path, labelled):
    path = tmp_path / "cells.h5ad"
    scores, pvalues, fdr = _sample_file(path, labelled)
    pairs = load_pairs()
    options = {"pairs": pairs, "n_perm": 50, "random_state": 2}
    full = interpret_sample(ad.read_h5ad(path), scores, pvalues, fdr, **options)
    subset = read_genes(path, genes_needed(pairs))
    assert set(subset.var_names) <= set(genes_needed(pairs))  # only the needed genes were read
    streamed = interpret_sample(subset, scores, pvalues, fdr, **options)
    pd.testing.assert_frame_equal(streamed[0], full[0])  # calls, exactly
    pd.testing.assert_frame_equal(streamed[1], full[1], check_exact=True)  # communication
    assert streamed[2] == full[2]  # summary, incl. the skipped pairs
    assert {p["pair"] for p in full[2]["communication_skipped"]["pairs"]} == {
        "IL17A|IL17RA",
        "CLEC4G|BTN3A3",
    }


@pytest.mark.parametrize("labelled", [True, False], ids=["labels", "assigned"])
def test_pairs_genes_streamed_from_the_file_give_the_results_of_the_whole_file(tmp_path, labelled):
    # The workflow's path: X without the pairs' genes, communication reads them from the file.
    path = tmp_path / "cells.h5ad"
    scores, pvalues, fdr = _sample_file(path, labelled)
    pairs = load_pairs()
    options = {"pairs": pairs, "n_perm": 50, "random_state": 2}
    full = interpret_sample(ad.read_h5ad(path), scores, pvalues, fdr, **options)
    markers_only = read_genes(path, genes_needed(pairs, communication=False))
    streamed = interpret_sample(markers_only, scores, pvalues, fdr, expression=path, **options)
    pd.testing.assert_frame_equal(streamed[0], full[0])
    pd.testing.assert_frame_equal(streamed[1], full[1], check_exact=True)
    assert streamed[2] == full[2]


def test_needed_genes_are_ptprc_core_epithelial_markers_pair_subunits_and_cell_type_markers():
    from seedsoil.interpret.celltypes import contrast_genes, shipped_markers

    pairs = pd.DataFrame(
        {
            "ligand": ["VCAM1", "TGFB1"],
            "receptor": ["ITGA4+ITGB1", "TGFBR1+TGFBR2"],
            "theme": ["", ""],
            "description": ["", ""],
            "references": ["", ""],
        }
    )
    markers = {g for genes in shipped_markers()[1].values() for g in genes}
    core = {"EPCAM", "KRT18", "KRT19", "KRT7", "KRT8"}
    pair_subunits = {"ITGA4", "ITGB1", "TGFB1", "TGFBR1", "TGFBR2", "VCAM1"}
    expected = {*pair_subunits, "PTPRC", *core, *markers, *contrast_genes()}
    assert genes_needed(pairs) == sorted(expected)


def _written_table(tmp_path, n_cells=50):
    rng = np.random.default_rng(1)
    cells = pd.Index([f"c{i}" for i in range(n_cells)])
    table = pd.DataFrame(rng.random((n_cells, 3)), index=cells, columns=["A", "B", "C"])
    table.iloc[3, 1] = np.nan
    table.to_parquet(tmp_path / "scores.parquet")
    return tmp_path / "scores.parquet", cells


def test_cell_table_of_the_same_cells_is_read_as_pandas_reads_it_on_the_cell_index(tmp_path):
    path, cells = _written_table(tmp_path)
    obs_names = pd.Index(list(cells))
    table = read_cell_table(path, obs_names)
    pd.testing.assert_frame_equal(table, pd.read_parquet(path), check_exact=True)
    assert table.index is obs_names  # shared, not a second million strings


def test_cell_table_of_other_cells_or_order_is_returned_as_stored(tmp_path):
    path, cells = _written_table(tmp_path)
    for obs_names in (cells[::-1], cells[1:]):
        table = read_cell_table(path, obs_names)
        pd.testing.assert_frame_equal(table, pd.read_parquet(path), check_exact=True)
