"""Depth-aware scoring: the depth record, UCell's max_rank="auto", and loud degenerate scores."""

from __future__ import annotations

import logging

import numpy as np
import pytest
import scipy.sparse as sp
from synthetic import cell_names, gene_names

from seedsoil.errors import InputError
from seedsoil.scoring import degenerate_scores, score
from seedsoil.scoring.depth import depth_summary, genes_detected, resolve_max_rank


def test_genes_detected_ignores_stored_zeros():
    X = sp.csr_matrix(np.array([[1.0, 0.0, 2.0], [0.0, 0.0, 0.0], [3.0, 4.0, 5.0]]))
    X.data[0] = 0.0  # an explicitly stored zero is not a detected gene
    np.testing.assert_array_equal(genes_detected(X), [1, 0, 3])


def test_depth_summary_holds_the_quantiles_of_genes_detected():
    depth = depth_summary(np.arange(1, 102), n_genes=500)  # 1..101: q10 11, q25 26, median 51
    assert depth == {
        "median_genes_detected": 51,
        "q10_genes_detected": 11,
        "q25_genes_detected": 26,
        "q90_genes_detected": 91,
        "n_genes_panel": 500,
    }


def test_auto_max_rank_is_the_lower_quartile_of_depth_capped_by_the_panel():
    # 100, 300, 500, 8000 genes detected: the 25th percentile is 250
    assert resolve_max_rank(depth_summary([100, 300, 500, 8000], n_genes=20_000)) == 250
    assert resolve_max_rank({"q25_genes_detected": 900, "n_genes_panel": 400}) == 400
    with pytest.raises(InputError, match="depth record lacks"):
        resolve_max_rank({"q10_genes_detected": 3})


def test_auto_max_rank_scores_as_the_resolved_number(umi_lognorm):
    sigs = {"a": gene_names(2000)[:30], "b": gene_names(2000)[500:520]}
    auto = score(umi_lognorm, sigs, "ucell", var_names=gene_names(2000), max_rank="auto")
    chosen = resolve_max_rank(depth_summary(genes_detected(umi_lognorm), 2000))
    explicit = score(umi_lognorm, sigs, "ucell", var_names=gene_names(2000), max_rank=chosen)
    np.testing.assert_array_equal(auto.to_numpy(), explicit.to_numpy())
    assert auto.attrs["options"]["max_rank"] == chosen
    assert auto.attrs["depth"]["q25_genes_detected"] == chosen


def test_ucell_rejects_auto_where_no_depth_is_known():
    from seedsoil.scoring import ucell

    with pytest.raises(InputError, match="resolved from the data's depth"):
        ucell.prepare([], 10, max_rank="auto")


def test_aucell_names_a_signature_with_fewer_than_tmin_genes(umi_lognorm, caplog):
    names = gene_names(2000)
    sigs = {"small_panel": names[:4], "enough": names[:30]}
    with caplog.at_level(logging.WARNING):
        scores = score(umi_lognorm, sigs, "aucell", var_names=names)
    assert scores["small_panel"].isna().all()
    assert scores["enough"].notna().any()
    assert any("'small_panel': 4 of" in r.message and "tmin=5" in r.message for r in caplog.records)
    assert not any("'enough'" in r.message for r in caplog.records)


def test_degenerate_scores_warn_with_signature_method_and_reason(umi_lognorm, caplog):
    names = gene_names(2000)
    X = umi_lognorm.tolil()
    X[:, :3] = 0.0  # three genes undetected in every cell
    sigs = {"undetected": names[:3], "detected": names[:40]}
    scores = score(sp.csr_matrix(X), sigs, "ucell", var_names=names, obs_names=cell_names(600))
    with caplog.at_level(logging.WARNING):
        messages = degenerate_scores(scores, "ucell", context="sample s1: ")
    assert len(messages) == 1
    assert "'undetected'" in messages[0] and "'ucell'" in messages[0]
    assert "max_rank=1500" in messages[0] and messages[0].startswith("sample s1: ")
    assert caplog.records and "undetected" in caplog.records[-1].message


def test_pipeline_resolves_auto_from_the_samples_depth_and_keeps_a_number(umi_adata):
    from seedsoil.pipeline import resolve_max_rank as pipeline_max_rank

    cells = umi_adata.copy()
    cells.uns["seedsoil"] = {"depth": depth_summary([100, 300, 500, 8000], n_genes=2000)}
    chosen, record = pipeline_max_rank(cells, "ucell", "auto")
    assert chosen == 250 and record["max_rank"] == 250
    assert record["max_rank_rule"].startswith("auto") and record["n_genes_panel"] == 2000
    assert pipeline_max_rank(cells, "ucell", 1500)[0] == 1500
    assert pipeline_max_rank(cells, "scanpy", "auto") == (None, {"method": "scanpy"})


def test_pipeline_computes_depth_when_the_sample_has_no_record(umi_adata):
    from seedsoil.pipeline import sample_depth

    cells = umi_adata.copy()
    cells.uns["seedsoil"] = {}
    assert sample_depth(cells) == depth_summary(genes_detected(cells.X), cells.n_vars)
