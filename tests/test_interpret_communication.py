"""CellPhoneDB-style ligand–receptor scores with seeded permutation p-values, the expression
filter, the atlas subsample, and the curated pairs table."""

import re
from pathlib import Path

import anndata as ad
import numpy as np
import pandas as pd
import pytest
import scipy.sparse as sp
from scipy.stats import false_discovery_control

from seedsoil.errors import InputError
from seedsoil.interpret import communication
from seedsoil.interpret.communication import load_pairs, score_communication

GENES = ["VCAM1", "ITGA4", "ITGB1", "CD274", "PDCD1", "IL6", "IL6R"]
PAIRS = pd.DataFrame(
    {
        "ligand": ["VCAM1", "CD274", "IL6", "CXCL8"],
        "receptor": ["ITGA4+ITGB1", "PDCD1", "IL6R+IL6ST", "CXCR2"],
        "theme": ["ctc_escort", "immune_checkpoint", "il6_il8", "il6_il8"],
        "description": ["", "", "", ""],
        "references": ["Szczerba et al. 2019", "", "", ""],
    }
)
# the review chapter's reference list, beside the project (../shared/seed), not shipped with it
CHAPTER = Path(__file__).resolve().parents[2] / "shared" / "seed" / "chapter.txt"


def _sample(seed=0, n_per_type=30):
    """Three cell types with background noise; VCAM1 planted in tumour, ITGA4+ITGB1 in neutrophils."""
    rng = np.random.default_rng(seed)
    types = np.repeat(["tumour", "neutrophil", "T"], n_per_type)
    x = rng.random((types.size, len(GENES))) * 0.5
    x[types == "tumour", GENES.index("VCAM1")] += 2.0
    x[types == "neutrophil", GENES.index("ITGA4")] += 2.0
    x[types == "neutrophil", GENES.index("ITGB1")] += 1.0
    obs = pd.DataFrame({"cell_type": types}, index=[f"c{i}" for i in range(types.size)])
    adata = ad.AnnData(sp.csr_matrix(x.astype(np.float32)), obs=obs, var=pd.DataFrame(index=GENES))
    return adata, obs["cell_type"]


def test_planted_sender_receiver_pair_has_the_smallest_pvalue():
    adata, groups = _sample()
    table, _ = score_communication(adata, groups, PAIRS, n_perm=200)
    best = table.sort_values(["pvalue", "score"], ascending=[True, False]).iloc[0]
    assert (best["sender"], best["receiver"], best["pair"]) == (
        "tumour",
        "neutrophil",
        "VCAM1|ITGA4+ITGB1",
    )
    assert best["pvalue"] == pytest.approx(1 / 201)  # no permutation reaches it


def test_pvalues_are_bit_identical_on_rerun_and_independent_of_batching(monkeypatch):
    adata, groups = _sample()
    first, _ = score_communication(adata, groups, PAIRS, n_perm=150, random_state=7)
    second, _ = score_communication(adata, groups, PAIRS, n_perm=150, random_state=7)
    monkeypatch.setattr(communication, "BATCH_ENTRIES", 90 * 5)  # 5 permutations per batch
    rebatched, _ = score_communication(adata, groups, PAIRS, n_perm=150, random_state=7)
    np.testing.assert_array_equal(first["pvalue"].to_numpy(), second["pvalue"].to_numpy())
    np.testing.assert_array_equal(first["pvalue"].to_numpy(), rebatched["pvalue"].to_numpy())


def test_a_different_seed_gives_different_null_draws():
    adata, groups = _sample()
    a, _ = score_communication(adata, groups, PAIRS, n_perm=150, random_state=1)
    b, _ = score_communication(adata, groups, PAIRS, n_perm=150, random_state=2)
    assert not np.array_equal(a["pvalue"].to_numpy(), b["pvalue"].to_numpy())


def test_pairs_with_absent_genes_are_skipped_and_reported():
    adata, groups = _sample()
    table, skipped = score_communication(adata, groups, PAIRS, n_perm=10)
    assert {s["pair"]: s["missing"] for s in skipped["pairs"]} == {
        "IL6|IL6R+IL6ST": ["IL6ST"],
        "CXCL8|CXCR2": ["CXCL8", "CXCR2"],
    }
    assert set(table["pair"]) == {"VCAM1|ITGA4+ITGB1", "CD274|PDCD1"}


def test_complex_receptor_expression_is_its_least_expressed_subunit():
    adata, groups = _sample()
    table, _ = score_communication(adata, groups, PAIRS, n_perm=10)
    row = table[(table["pair"] == "VCAM1|ITGA4+ITGB1") & (table["receiver"] == "neutrophil")].iloc[
        0
    ]
    cells = (groups == "neutrophil").to_numpy()
    x = adata.X.toarray().astype(np.float64)
    expected = min(x[cells, GENES.index("ITGA4")].mean(), x[cells, GENES.index("ITGB1")].mean())
    assert row["receptor_mean"] == pytest.approx(expected, rel=1e-9)
    assert row["score"] == pytest.approx((row["ligand_mean"] + row["receptor_mean"]) / 2, rel=1e-12)


def test_small_cell_types_are_left_out_and_reported():
    adata, groups = _sample()
    groups = groups.copy()
    groups.iloc[:27] = "T"  # leaves 3 tumour cells
    table, skipped = score_communication(adata, groups, PAIRS, n_perm=10, min_cells=5)
    assert skipped["cell_types"] == {"tumour": 3}
    assert "tumour" not in set(table["sender"]) | set(table["receiver"])


def test_every_sender_receiver_combination_is_scored_with_valid_fdr():
    adata, groups = _sample()
    table, _ = score_communication(adata, groups, PAIRS, n_perm=50)
    assert len(table) == 3 * 3 * 2
    assert (table["fdr"] >= table["pvalue"] - 1e-15).all() and table["fdr"].le(1).all()


def test_shipped_table_has_the_issue_pairs():
    pairs = load_pairs()
    names = set(pairs["ligand"] + "|" + pairs["receptor"])
    required = {
        "VCAM1|ITGA4+ITGB1", "ICAM1|ITGAL+ITGB2", "CD274|PDCD1", "TGFB1|TGFBR1+TGFBR2",
        "CXCL8|CXCR1", "CXCL8|CXCR2", "IL6|IL6R+IL6ST", "CSF1|CSF1R", "MIF|CD74",
        "C3|C3AR1", "SELP|SELPLG", "GJA1|GJA1",
    }  # fmt: skip
    assert required <= names


@pytest.mark.skipif(not CHAPTER.exists(), reason="chapter text not available")
def test_shipped_references_are_from_the_chapter_or_marked_general_knowledge():
    entries = [
        line.replace("\u2018", "'")
        for line in CHAPTER.read_text().splitlines()
        if line.strip().startswith("\u2022")
    ]
    for text in load_pairs()["references"]:
        for citation in text.split(";"):
            citation = citation.strip()
            if citation == "general knowledge":
                continue
            author, year = re.match(r"([^\s,]+(?: [^\s,]+)?)[^(]*?(\d{4})", citation).groups()
            assert any(author.split()[0] in e and f"({year}" in e for e in entries), citation


def test_pairs_table_without_a_column_is_rejected(tmp_path):
    path = tmp_path / "pairs.tsv"
    path.write_text("ligand\treceptor\nVCAM1\tITGA4\n")
    with pytest.raises(InputError, match="missing column"):
        load_pairs(path)


def _reference_pvalues(adata, labels, pairs, n_perm, random_state):
    """The definition written out: dense group means per permutation, one ``permutation`` per draw."""
    x = adata.X.toarray().astype(np.float64)
    types = sorted(set(labels))
    codes = np.array([types.index(t) for t in labels])
    position = {g: k for k, g in enumerate(adata.var_names)}

    def sides(codes):
        means = np.array([x[codes == g].mean(axis=0) for g in range(len(types))])
        ligand = np.array(
            [
                [min(m[position[s]] for s in communication.subunits(p)) for p in pairs["ligand"]]
                for m in means
            ]
        )
        receptor = np.array(
            [
                [min(m[position[s]] for s in communication.subunits(p)) for p in pairs["receptor"]]
                for m in means
            ]
        )
        return ligand[:, None, :], receptor[None, :, :]

    ligand, receptor = sides(codes)
    observed = np.where((ligand == 0) | (receptor == 0), 0.0, (ligand + receptor) / 2)
    rng = np.random.default_rng(random_state)
    exceed = 0
    for _ in range(n_perm):
        permuted = np.empty_like(codes)
        permuted[rng.permutation(codes.size)] = codes  # cell p[j] takes the label of cell j
        ligand, receptor = sides(permuted)
        exceed = exceed + ((ligand + receptor) / 2 >= observed - 1e-10 * np.abs(observed))
    return ((1.0 + exceed) / (1.0 + n_perm)).ravel()  # sender, receiver, pair order


def _tied_sample(seed=4):
    """Four types; expression takes two values; IL6, IL6R and IL6ST are constant (every draw ties)."""
    rng = np.random.default_rng(seed)
    genes = ["VCAM1", "ITGA4", "ITGB1", "CD274", "PDCD1", "IL6", "IL6R", "IL6ST"]
    types = rng.choice(["A", "B", "C", "D"], 60)
    x = np.where(rng.random((60, len(genes))) < 0.3, np.log1p(2.0), 0.0).astype(np.float32)
    x[:, genes.index("IL6R")] = x[:, genes.index("IL6ST")] = x[:, genes.index("IL6")] = 1.0
    obs = pd.DataFrame({"cell_type": types}, index=[f"c{i}" for i in range(60)])
    adata = ad.AnnData(sp.csr_matrix(x), obs=obs, var=pd.DataFrame(index=genes))
    return adata, obs["cell_type"], PAIRS.iloc[:3].reset_index(drop=True)


def test_pvalues_equal_the_definition_computed_directly_ties_included():
    # Tolerance: p-values must be equal exactly (the 1e-10 relative tie tolerance of the
    # definition absorbs the different summation order of the dense reference).
    adata, groups, pairs = _tied_sample()
    table, _ = score_communication(adata, groups, pairs, n_perm=200, random_state=3, expr_prop=0)
    expected = _reference_pvalues(adata, groups.to_list(), pairs, 200, 3)
    np.testing.assert_array_equal(table["pvalue"].to_numpy(), expected)
    il6 = (table["pair"] == "IL6|IL6R+IL6ST").to_numpy()
    assert (table.loc[il6, "score"] == 1.0).all() and (table.loc[il6, "pvalue"] == 1.0).all()
    assert (table.loc[~il6, "pvalue"] < 1.0).any()


def test_group_sums_add_each_groups_cells_in_cell_order_for_any_thread_count():
    import numba

    rng = np.random.default_rng(5)
    x = sp.random(300, 6, density=0.4, format="csr", random_state=5, dtype=np.float32)
    codes = rng.integers(0, 3, (300, 40)).astype(np.uint8)  # 40 permutations: 3 blocks of 16
    rows = np.flatnonzero(np.diff(x.indptr)).astype(np.int64)
    expected = np.zeros((40, 3, 6))
    dense = x.toarray().astype(np.float64)
    for b in range(40):
        for i in range(300):  # float64, increasing cell order: the one-hot product's order
            expected[b, codes[i, b]] += dense[i]
    previous = numba.get_num_threads()
    try:
        for threads in {1, previous}:
            numba.set_num_threads(threads)
            sums = communication.group_sums(x.indptr, x.indices, x.data, rows, codes, 3, 6)
            np.testing.assert_array_equal(sums, expected)
    finally:
        numba.set_num_threads(previous)


def test_pair_genes_are_every_subunit_once():
    assert communication.pair_genes(PAIRS) == sorted(
        {"VCAM1", "ITGA4", "ITGB1", "CD274", "PDCD1", "IL6", "IL6R", "IL6ST", "CXCL8", "CXCR2"}
    )


def test_rows_below_the_expression_proportion_are_not_tested():
    # VCAM1 detected in 2 of 30 tumour cells (6.7 % < 10 %): no tumour → * VCAM1 row at all;
    # CD274 detected in 4 of 30 (13 %): kept. FDR is over the kept rows only.
    adata, groups = _sample()
    x = adata.X.toarray()
    tumour = np.flatnonzero((groups == "tumour").to_numpy())
    x[:, GENES.index("VCAM1")] = 0.0
    x[tumour[:2], GENES.index("VCAM1")] = 3.0
    x[:, GENES.index("CD274")] = 0.0
    x[tumour[:4], GENES.index("CD274")] = 3.0
    adata.X = sp.csr_matrix(x)
    table, _ = score_communication(adata, groups, PAIRS, n_perm=50, expr_prop=0.1)
    assert "VCAM1|ITGA4+ITGB1" not in set(table["pair"])
    checkpoint = table[table["pair"] == "CD274|PDCD1"]
    assert set(checkpoint["sender"]) == {"tumour"}
    np.testing.assert_allclose(checkpoint["ligand_prop"], 4 / 30, rtol=1e-12)
    expected = false_discovery_control(table["pvalue"].to_numpy(), method="bh")
    np.testing.assert_array_equal(table["fdr"].to_numpy(), expected)


def test_atlas_subsample_keeps_each_types_share_and_scores_from_every_cell():
    codes = np.repeat(np.arange(3, dtype=np.uint8), [600, 300, 100])
    chosen = communication.permutation_cells(codes, max_cells=100, min_cells=5, random_state=0)
    assert np.bincount(codes[chosen]).tolist() == [60, 30, 10]
    assert np.all(np.diff(chosen) > 0)  # cell order is kept
    adata, groups = _sample(n_per_type=60)
    whole, _ = score_communication(adata, groups, PAIRS, n_perm=40)
    sub, _ = score_communication(adata, groups, PAIRS, n_perm=40, max_cells=60)
    np.testing.assert_array_equal(whole["score"].to_numpy(), sub["score"].to_numpy())
    assert not np.array_equal(whole["pvalue"].to_numpy(), sub["pvalue"].to_numpy())


def test_results_are_the_same_from_x_or_streamed_from_the_cells_file(tmp_path, monkeypatch):
    # The workflow streams the pairs' genes from cells.h5ad (20 genes more than needed there);
    # in memory, X holds only them. Same cells, same draws: same table, in one block or many.
    adata, groups = _sample()
    pairs = PAIRS.iloc[:2].reset_index(drop=True)
    needed = communication.pair_genes(pairs)
    only = adata[:, needed].copy()
    only.X = sp.csr_matrix(only.X)
    filler = ad.AnnData(
        sp.random(90, 20, density=0.5, format="csr", random_state=1, dtype=np.float32),
        obs=adata.obs,
        var=pd.DataFrame(index=[f"F{i}" for i in range(20)]),
    )
    ad.concat([filler, only], axis=1, merge="same").write_h5ad(tmp_path / "cells.h5ad")
    annotations = ad.AnnData(obs=adata.obs)
    options = {"n_perm": 60, "max_cells": 60}  # permutations on a subsample spanning blocks
    in_memory, _ = score_communication(only, groups, pairs, **options)
    path = tmp_path / "cells.h5ad"
    streamed, _ = score_communication(annotations, groups, pairs, expression=path, **options)
    pd.testing.assert_frame_equal(in_memory, streamed, check_exact=True)
    monkeypatch.setattr(communication, "BLOCK_CELLS", 7)
    blocks, _ = score_communication(annotations, groups, pairs, expression=path, **options)
    # sums of 7-cell blocks added up: the same to rounding; the permutations use the same rows
    pd.testing.assert_frame_equal(in_memory, blocks, check_exact=False, rtol=1e-12)
    np.testing.assert_array_equal(in_memory["pvalue"], blocks["pvalue"])


def test_a_cells_file_of_other_cells_is_refused(tmp_path):
    adata, groups = _sample()
    adata[:10].copy().write_h5ad(tmp_path / "cells.h5ad")
    with pytest.raises(InputError, match="cells differ from the interpreted cells"):
        score_communication(adata, groups, PAIRS, n_perm=10, expression=tmp_path / "cells.h5ad")
