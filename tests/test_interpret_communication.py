"""Ligand–receptor scores with seeded label-permutation p-values, and the curated pairs table."""

import re
from pathlib import Path

import anndata as ad
import numpy as np
import pandas as pd
import pytest
import scipy.sparse as sp

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
CHAPTER = Path("/work/shared/seed/chapter.txt")


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
    monkeypatch.setattr(communication, "BATCH_ENTRIES", 90 * 5)  # 5 permutations per product
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
    assert row["score"] == pytest.approx(row["ligand_mean"] * row["receptor_mean"], rel=1e-12)


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
