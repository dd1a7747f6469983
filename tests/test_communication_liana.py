"""The permutation kernel against LIANA+'s ``cellphonedb`` method, LIANA's ranks in the sample
table, and the pairs tested (LIANA's resource with the chapter's subset)."""

import anndata as ad
import liana as li
import numpy as np
import pandas as pd
import pytest
import scanpy as sc
import scipy.sparse as sp

from seedsoil.errors import InputError
from seedsoil.interpret.communication import load_pairs, score_communication, subunits
from seedsoil.interpret.liana_methods import LIANA_COLUMNS, sample_communication
from seedsoil.interpret.resource import communication_pairs, liana_pairs

N_PERM, SEED = 200, 3


@pytest.fixture(scope="module")
def pbmc():
    """The demo's pbmc68k_reduced: log-normalised ``raw`` (765 genes), 700 cells, 10 labels."""
    data = sc.datasets.pbmc68k_reduced()
    adata = ad.AnnData(
        sp.csr_matrix(data.raw.X, dtype=np.float32),
        obs=pd.DataFrame({"cell_type": data.obs["bulk_labels"].astype(str)}, index=data.obs_names),
        var=pd.DataFrame(index=data.raw.var_names),
    )
    return adata, adata.obs["cell_type"]


@pytest.fixture(scope="module")
def kernel_and_liana(pbmc):
    adata, groups = pbmc
    resource = li.rs.select_resource("consensus")
    pairs = resource.apply(lambda column: column.str.replace("_", "+", regex=False))
    ours, _ = score_communication(adata, groups, pairs, n_perm=N_PERM, random_state=SEED)
    theirs = li.mt.cellphonedb(
        adata, groupby="cell_type", resource=resource, expr_prop=0.1, min_cells=5,
        n_perms=N_PERM, seed=SEED, use_raw=False, inplace=False, verbose=False,
    )  # fmt: skip
    theirs = theirs.assign(
        sender=theirs["source"],
        receiver=theirs["target"],
        ligand=theirs["ligand_complex"].str.replace("_", "+", regex=False),
        receptor=theirs["receptor_complex"].str.replace("_", "+", regex=False),
    )
    keys = ["sender", "receiver", "ligand", "receptor"]
    merged = ours.merge(theirs[[*keys, "lr_means", "cellphone_pvals"]], on=keys, how="outer")
    return ours, theirs, merged


def test_kernel_tests_exactly_the_rows_liana_keeps(kernel_and_liana):
    ours, theirs, merged = kernel_and_liana
    assert len(ours) == len(theirs) == len(merged) > 1000


def test_kernel_statistic_equals_liana_lr_means(kernel_and_liana):
    # Tolerance 1e-6 relative: LIANA averages in float32, the kernel in float64.
    _, _, merged = kernel_and_liana
    np.testing.assert_allclose(merged["score"], merged["lr_means"], rtol=1e-6)


def test_kernel_exceedance_counts_equal_liana_for_single_gene_pairs(kernel_and_liana):
    # Same seed, same permutations: kernel p = (1 + count) / (1 + n), LIANA's p = count / n.
    _, _, merged = kernel_and_liana
    ours = np.rint(merged["pvalue"] * (N_PERM + 1) - 1).astype(int)
    theirs = np.rint(merged["cellphone_pvals"] * N_PERM).astype(int)
    simple = ~(merged["ligand"].str.contains("+", regex=False)) & ~(
        merged["receptor"].str.contains("+", regex=False)
    )
    assert simple.sum() > 1000
    np.testing.assert_array_equal(ours[simple], theirs[simple])
    # complexes: LIANA's null keeps the observed least-expressed subunit (≥ the per-permutation
    # minimum of CellPhoneDB's definition), so its count is never smaller
    assert (ours[~simple] <= theirs[~simple]).all()


def test_sample_table_carries_liana_ranks_below_max_cells_only(pbmc):
    adata, groups = pbmc
    pairs = communication_pairs(load_pairs())
    options = {"n_perm": 50, "random_state": 0, "min_cells": 5, "expr_prop": 0.1}
    table, skipped = sample_communication(adata, groups, pairs, max_cells=10_000, **options)
    assert table[["magnitude_rank", "specificity_rank"]].notna().all().all()
    assert table["magnitude_rank"].between(0, 1).all()
    np.testing.assert_allclose(table["lr_means"], table["score"], rtol=1e-6)
    atlas, skipped = sample_communication(adata, groups, pairs, max_cells=500, **options)
    assert atlas[LIANA_COLUMNS].isna().all().all()
    assert "communication.max_cells" in skipped["liana"]
    np.testing.assert_array_equal(atlas["score"].to_numpy(), table["score"].to_numpy())


def test_consensus_pairs_include_complexes_written_with_plus():
    pairs = liana_pairs("consensus")
    assert len(pairs) > 4000
    assert pairs["receptor"].str.contains("+", regex=False).any()
    assert not pairs["receptor"].str.contains("_", regex=False).any()


def test_chapter_pairs_are_flagged_and_contact_pairs_without_a_resource_entry_added():
    chapter = load_pairs()
    pairs = communication_pairs(chapter)
    flagged = pairs[pairs["chapter"]]
    assert len(flagged) == len(chapter)
    names = set(flagged["ligand"] + "|" + flagged["receptor"])
    assert {"GJA1|GJA1", "SELP|SELPLG"} <= names  # gap junction, platelet P-selectin
    assert (flagged["references"] != "").all() and (flagged["theme"] != "").all()
    assert not pairs.duplicated(["ligand", "receptor"]).any()


def test_mouse_consensus_is_liana_mouse_resource_and_others_use_the_ortholog_tables():
    mouse = liana_pairs("consensus", species="mouse")
    genes = {g for spec in mouse["ligand"] for g in subunits(spec)}
    assert all(g[0].isupper() and not g[1:].isupper() for g in genes if g[1:].isalpha())
    translated = communication_pairs(load_pairs(), "cellphonedb", species="mouse")
    assert "Vcam1|Itga4+Itgb1" in set(translated["ligand"] + "|" + translated["receptor"])


def test_unknown_resource_names_the_known_ones():
    with pytest.raises(InputError, match="communication.resource.*consensus"):
        liana_pairs("not_a_resource")


def test_report_panel_shows_counts_dots_chapter_pairs_and_per_sender_tables(pbmc):
    from seedsoil.report.communication_view import communication_panel, top_interactions

    adata, groups = pbmc
    pairs = communication_pairs(load_pairs())
    options = {"n_perm": 100, "random_state": 0, "min_cells": 5, "expr_prop": 0.1}
    table, _ = sample_communication(adata, groups, pairs, max_cells=10_000, **options)
    panel = communication_panel(table)
    assert panel["figure"]["uri"].startswith("data:image/png") and panel["dots"]["uri"]
    shown = top_interactions(table)
    assert shown["chapter"].any()  # the chapter's strongest rows are always drawn
    assert (shown["fdr"].head(25) < 0.05).all()
    assert {sender for sender, _ in panel["per_sender"]} == set(table["sender"])
    assert len(panel["chapter"]["rows"]) == int(table["chapter"].sum())
    assert "Magnitude" in panel["sentence"] and "Specificity" in panel["sentence"]


def test_sample_with_a_single_cell_type_gets_kernel_rows_and_no_liana_ranks(pbmc):
    adata, groups = pbmc
    single = groups.where(groups == "CD14+ Monocyte", "unassigned")
    pairs = communication_pairs(load_pairs())
    options = {"n_perm": 20, "random_state": 0, "min_cells": 5, "expr_prop": 0.1}
    table, _ = sample_communication(adata, single, pairs, max_cells=10_000, **options)
    assert len(table) and set(table["sender"]) == {"CD14+ Monocyte"}
    assert table[LIANA_COLUMNS].isna().all().all()
