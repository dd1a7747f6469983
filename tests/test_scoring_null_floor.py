"""The floor extension: cells at the p-value floor of ``n_null`` nulls are resolved further."""

from __future__ import annotations

import numpy as np
import pytest
import scipy.sparse as sp
from synthetic import gene_names, log_normalise, umi_counts

from seedsoil.scoring import significance
from seedsoil.scoring.null import FLOOR_EXCEEDANCES

N_CELLS, N_GENES, N_PLANTED = 2000, 1000, 10  # a 0.5 % population
N_NULL = 100
PLANTED = gene_names(N_GENES)[200:225]


@pytest.fixture(scope="module")
def planted():
    counts = umi_counts(N_CELLS, N_GENES, 400, seed=11).tolil()
    counts[:N_PLANTED, 200:225] = counts[:N_PLANTED, 200:225].toarray() + 6.0
    return log_normalise(sp.csr_matrix(counts))


def _pvalues(data, n_null_max):
    return significance(
        data, {"planted": PLANTED}, var_names=gene_names(N_GENES), n_null=N_NULL,
        n_null_max=n_null_max,
    )  # fmt: skip


def test_rare_population_is_called_only_with_the_extension(planted):
    # BH at 0.05 over 2000 cells needs p <= 0.05 * 10 / 2000 = 2.5e-4 for 10 calls: below the
    # floor 1/101 of 100 nulls, above the floor 1/5001 of 5000.
    _, fdr_floor = _pvalues(planted, N_NULL)
    _, fdr = _pvalues(planted, 50 * N_NULL)
    assert (fdr_floor["planted"] > 0.05).all()
    assert (fdr["planted"].iloc[:N_PLANTED] <= 0.05).all()
    assert (fdr["planted"].iloc[N_PLANTED:] > 0.05).all()


def test_cells_not_at_the_floor_keep_their_pvalue(planted):
    before, _ = _pvalues(planted, N_NULL)
    after, _ = _pvalues(planted, 20 * N_NULL)
    p0, p1 = before["planted"].to_numpy(), after["planted"].to_numpy()
    # rank G + K below h (cells raised to 1/2 have rank >= 50)
    at_floor = np.round(p0 * (N_NULL + 1)) - 1 < FLOOR_EXCEEDANCES
    assert 0 < at_floor.sum() < N_CELLS
    np.testing.assert_array_equal(p1[~at_floor], p0[~at_floor])
    # floor cells moved to the finer grid of 2000 nulls
    grid = p1[at_floor] * (20 * N_NULL + 1)
    np.testing.assert_allclose(grid, np.round(grid), rtol=0, atol=1e-6)
    assert (p1[at_floor] != p0[at_floor]).any()


def test_extended_pvalues_do_not_depend_on_chunks_or_threads(planted):
    whole, _ = significance(
        planted, {"planted": PLANTED}, var_names=gene_names(N_GENES), n_null=N_NULL, n_threads=2
    )
    chunked, _ = significance(
        planted, {"planted": PLANTED}, var_names=gene_names(N_GENES), n_null=N_NULL,
        chunk_size=333, n_threads=1,
    )  # fmt: skip
    assert (whole["planted"] < 1 / (N_NULL + 1)).sum() >= N_PLANTED  # the extension was used
    np.testing.assert_array_equal(chunked.to_numpy(), whole.to_numpy())


def test_a_sets_extension_is_built_once_for_all_blocks_of_cells(planted, monkeypatch):
    from seedsoil.scoring import null

    built, asked = [], []
    build, lookup = null.extension_weights, null.cached_extension_weights
    monkeypatch.setattr(null, "extension_weights", lambda p, s: built.append(s) or build(p, s))
    monkeypatch.setattr(
        null, "cached_extension_weights", lambda p, s: asked.append(s) or lookup(p, s)
    )
    blocked, _ = significance(
        planted, {"planted": PLANTED}, var_names=gene_names(N_GENES), n_null=N_NULL,
        chunk_size=333,
    )  # fmt: skip
    assert len(asked) > 1  # several blocks of cells hold floor cells of the set...
    assert built == [0]  # ...and its extension nulls are drawn once
    monkeypatch.undo()
    whole, _ = significance(
        planted, {"planted": PLANTED}, var_names=gene_names(N_GENES), n_null=N_NULL
    )
    np.testing.assert_array_equal(blocked.to_numpy(), whole.to_numpy())


def test_extensions_beyond_the_memory_budget_are_rebuilt_with_the_same_nulls(planted):
    from seedsoil.scoring import null, resolve_gene_sets
    from seedsoil.scoring.stats import gene_stats

    gene_sets = resolve_gene_sets({"planted": PLANTED}, gene_names(N_GENES))
    stats = gene_stats([planted], N_GENES)
    kept_by = null.prepare(gene_sets, N_GENES, stats, n_null=N_NULL)
    kept = null.cached_extension_weights(kept_by, 0)
    assert kept_by.extensions[0] is kept
    over_budget = null.prepare(gene_sets, N_GENES, stats, n_null=N_NULL)
    rebuilt = null.cached_extension_weights(over_budget, 0, budget=0)
    assert over_budget.extensions == {}  # nothing kept
    for a, b in zip(kept, rebuilt, strict=True):
        assert a.shape == b.shape and (a != b).nnz == 0
