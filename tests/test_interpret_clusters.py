"""Heterotypic CTC–neutrophil / CTC–platelet flags, doublet-likeness and partner enrichment."""

import numpy as np
import pandas as pd
import pytest

from seedsoil.interpret.clusters import flag_heterotypic, partner_enrichment, size_z

SIGNATURES = [
    "CTC_epithelial_identity",
    "ID_epithelial_tumour",
    "IMM_neutrophil",
    "IMM_platelet",
    "IMM_B",
]


def _fdr(rows):
    return pd.DataFrame(
        rows, index=[f"c{i}" for i in range(len(rows))], columns=SIGNATURES, dtype=float
    )


def _obs(n, counts=None):
    counts = np.full(n, 2000.0) if counts is None else counts
    return pd.DataFrame(
        {"n_counts": counts, "n_genes": counts / 2}, index=[f"c{i}" for i in range(n)]
    )


S, N = 0.001, 0.9  # significant / not


def test_planted_partners_get_their_flags():
    fdr = _fdr(
        [
            [S, N, S, N, N],  # tumour + neutrophil
            [N, S, N, S, N],  # tumour (identity) + platelet
            [S, N, N, N, S],  # tumour + B cell: no escort role
            [S, N, N, N, N],  # tumour alone
            [N, N, S, N, N],  # neutrophil alone
        ]
    )
    flags = flag_heterotypic(_obs(5), fdr)["heterotypic_cluster"].tolist()
    assert flags == ["CTC-neutrophil", "CTC-platelet", "doublet-like", "", ""]


def test_with_both_partners_the_more_significant_one_wins():
    fdr = _fdr([[S, N, 0.01, 0.0001, N], [S, N, 0.0001, 0.01, N]])
    assert flag_heterotypic(_obs(2), fdr)["heterotypic_cluster"].tolist() == [
        "CTC-platelet",
        "CTC-neutrophil",
    ]


def test_double_sized_droplets_have_high_size_z():
    rng = np.random.default_rng(0)
    counts = rng.lognormal(np.log(2000), 0.2, 200)
    counts[:5] *= 2.0
    z = size_z(_obs(200, counts))
    assert z[:5].min() > 2.0  # log 2 / (MAD of log counts ≈ 0.2) ≈ 3.5
    assert abs(np.median(z)) < 0.1


def test_size_z_is_missing_without_library_columns():
    assert np.isnan(size_z(pd.DataFrame(index=["a", "b"]))).all()


def test_partner_enrichment_detects_preferential_neutrophil_pairing():
    # 20 leukocytes, 2 of them neutrophils (10 %); 5 tumour-containing barcodes, 4 with a neutrophil.
    rows = (
        [[N, N, S, N, N]] * 2 + [[N, N, N, N, S]] * 18 + [[S, N, S, N, N]] * 4 + [[S, N, N, N, S]]
    )
    result = partner_enrichment(_fdr(rows))
    assert result["observed"] == pytest.approx(0.8) and result["expected"] == pytest.approx(0.1)
    assert result["enrichment"] == pytest.approx(8.0)
