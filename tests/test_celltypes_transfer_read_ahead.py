"""The transcriptome-neighbour step with its reference rows read ahead, in the pass that reads
the marker genes (``transfer.read_genes_and_reference``): the same labels, one pass fewer."""

import anndata as ad
import numpy as np
import pandas as pd
import pytest
import scipy.sparse as sp

from seedsoil.cellfile import read_genes
from seedsoil.interpret import transfer
from seedsoil.interpret.transfer import (
    read_genes_and_reference,
    reference_cells,
    transfer_labels,
)


def _cells_file(path, n_per_population=100, n_genes=60, seed=0):
    """Two populations, each expressing its own block of 20 genes over a sparse background,
    written as a CSR ``.h5ad``; returns the codes of a subtype call per cell."""
    rng = np.random.default_rng(seed)
    blocks = []
    for i in range(2):
        values = rng.gamma(2.0, 0.1, size=(n_per_population, n_genes))
        values *= rng.random((n_per_population, n_genes)) < 0.1
        values[:, 20 * i : 20 * (i + 1)] = rng.normal(2.0, 0.3, size=(n_per_population, 20))
        blocks.append(values)
    n_cells = 2 * n_per_population
    ad.AnnData(
        sp.csr_matrix(np.vstack(blocks).astype(np.float32)),
        obs=pd.DataFrame(index=[f"c{i}" for i in range(n_cells)]),
        var=pd.DataFrame(index=[f"G{j}" for j in range(n_genes)]),
    ).write_h5ad(path)
    return np.repeat([0, 1], n_per_population)


def test_the_pass_that_reads_the_genes_keeps_the_reference_cells_rows(tmp_path):
    path = tmp_path / "cells.h5ad"
    _cells_file(path)
    adata, reference = read_genes_and_reference(path, ["G3", "G41"], max_reference=60)
    genes_only = read_genes(path, ["G3", "G41"])
    assert (adata.X != genes_only.X).nnz == 0 and list(adata.var_names) == ["G3", "G41"]
    np.testing.assert_array_equal(reference.cells, reference_cells(200, 0, 60))
    whole = ad.read_h5ad(path).X
    assert reference.rows.dtype == np.float32
    assert (reference.rows != whole[reference.cells]).nnz == 0


@pytest.mark.parametrize(
    ("max_reference", "candidates"),
    [
        (60, np.array([10, 150])),  # few candidates: read in the reference's pass, or alone
        (60, np.r_[np.arange(0, 50), np.arange(100, 150)]),  # more: a second pass
        (1000, np.array([3, 120, 199])),  # every cell a reference cell: no pass left
    ],
    ids=["few", "many", "all-reference"],
)
def test_reference_rows_read_ahead_give_the_labels_of_the_file(tmp_path, max_reference, candidates):
    path = tmp_path / "cells.h5ad"
    codes = _cells_file(path)
    codes[candidates] = -1
    _, reference = read_genes_and_reference(path, ["G0"], max_reference=max_reference)
    from_file = transfer_labels(codes, candidates, str(path), max_reference=max_reference)
    ahead = transfer_labels(codes, candidates, reference, max_reference=max_reference)
    np.testing.assert_array_equal(ahead[0], from_file[0])
    np.testing.assert_array_equal(ahead[1], from_file[1])
    assert (from_file[0] >= 0).any()


def test_reference_rows_read_ahead_save_a_pass_over_the_file(tmp_path, monkeypatch):
    path = tmp_path / "cells.h5ad"
    codes = _cells_file(path)
    candidates = np.r_[np.arange(0, 50), np.arange(100, 150)]
    codes[candidates] = -1
    _, reference = read_genes_and_reference(path, ["G0"], max_reference=60)
    passes = []
    streamed = transfer._row_blocks
    monkeypatch.setattr(transfer, "_row_blocks", lambda *a: passes.append(1) or streamed(*a))
    transfer_labels(codes, candidates, str(path), max_reference=60)
    assert len(passes) == 2  # the reference's rows, then the candidates'
    passes.clear()
    transfer_labels(codes, candidates, reference, max_reference=60)
    assert len(passes) == 1  # the candidates' only


def test_rows_read_for_another_reference_are_not_used(tmp_path, monkeypatch):
    path = tmp_path / "cells.h5ad"
    codes = _cells_file(path)
    candidates = np.array([10, 150])
    codes[candidates] = -1
    _, reference = read_genes_and_reference(path, ["G0"], max_reference=60)  # seed 0's cells
    from_file = transfer_labels(codes, candidates, str(path), max_reference=60, seed=1)
    read = []
    rows = transfer._rows
    monkeypatch.setattr(
        transfer,
        "_rows",
        lambda source, cells, ahead: read.append(ahead) or rows(source, cells, ahead),
    )
    other_seed = transfer_labels(codes, candidates, reference, max_reference=60, seed=1)
    assert read == [None]  # seed 1's reference is read from the file
    np.testing.assert_array_equal(other_seed[0], from_file[0])
    np.testing.assert_array_equal(other_seed[1], from_file[1])
