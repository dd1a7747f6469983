"""The scanpy method reproduces scanpy.tl.score_genes (scanpy 1.11.5) exactly."""

from __future__ import annotations

import anndata as ad
import numpy as np
import pandas as pd
import pytest
import scanpy as sc
import scipy.sparse as sp
from scipy.stats import rankdata
from synthetic import gene_names

from seedsoil.scoring import score
from seedsoil.scoring.scanpy import expression_bins
from seedsoil.scoring.stats import gene_stats

TOLERANCE = 1e-6  # the parity bound; the implementation is in fact bit-identical


def scanpy_reference(matrix, var, gene_list, **kwargs) -> np.ndarray:
    adata = ad.AnnData(matrix.copy(), var=pd.DataFrame(index=var))
    sc.tl.score_genes(adata, gene_list, **kwargs)
    return adata.obs["score"].to_numpy()


@pytest.fixture(scope="module")
def signatures():
    var = gene_names(2000)
    rng = np.random.default_rng(11)
    sizes = [3, 12, 40, 100, 250, 600]
    return {f"set{n}": list(rng.choice(var, size=n, replace=False)) for n in sizes}


def test_matches_score_genes_for_many_signatures(umi_lognorm, signatures):
    var = gene_names(2000)
    ours = score(umi_lognorm, signatures, "scanpy", var_names=var)
    for name, genes in signatures.items():
        reference = scanpy_reference(umi_lognorm, var, genes)
        assert np.abs(ours[name].to_numpy() - reference).max() <= TOLERANCE, name


def test_options_match_score_genes(umi_lognorm, signatures):
    var = gene_names(2000)
    genes = signatures["set40"]
    ours = score(
        umi_lognorm, {"s": genes}, "scanpy", var_names=var, ctrl_size=20, n_bins=10, random_state=3
    )
    reference = scanpy_reference(umi_lognorm, var, genes, ctrl_size=20, n_bins=10, random_state=3)
    assert np.abs(ours["s"].to_numpy() - reference).max() <= TOLERANCE


def test_directed_signature_is_up_minus_down(umi_lognorm, signatures):
    var = gene_names(2000)
    up, down = signatures["set40"], signatures["set12"]
    ours = score(umi_lognorm, {"emt": {"up": up, "down": down}}, "scanpy", var_names=var)
    reference = scanpy_reference(umi_lognorm, var, up) - scanpy_reference(umi_lognorm, var, down)
    assert np.abs(ours["emt"].to_numpy() - reference).max() <= TOLERANCE


def bin_edge_matrix() -> tuple[sp.csr_matrix, list[str]]:
    """49 genes, 6 cells, n_bins=25 → 2 genes per bin. Genes P and Q have float64 sums
    2^24 + 5 > 2^24 + 2, but P's float32 row-by-row sum is 2^24 (each +1 is rounded away),
    so float32 ranks P below Q and they fall on opposite sides of a bin edge."""
    n_cells, n_genes = 6, 49
    dense = np.zeros((n_cells, n_genes), dtype=np.float32)
    dense[0, :46] = 1000.0 * np.arange(1, 47)  # fillers: ranks 1..46
    dense[0, 46] = 2.0**24  # P, then five ones lost in float32
    dense[1:, 46] = 1.0
    dense[0, 47] = 2.0**24 + 2  # Q
    dense[0, 48] = 2.0**25  # the largest gene, rank 49
    return sp.csr_matrix(dense), [f"g{i}" for i in range(n_genes)]


def test_bins_use_float32_row_by_row_gene_sums():
    matrix, var = bin_edge_matrix()
    stats = gene_stats([matrix[:2], matrix[2:]], matrix.shape[1])
    float64_bins = rankdata(matrix.toarray().astype(np.float64).sum(axis=0), method="min") // 2
    ours = expression_bins(stats, n_bins=25)
    assert (ours[46], ours[47]) == (23, 24)
    assert (float64_bins[46], float64_bins[47]) == (24, 23)


def test_matches_score_genes_on_a_bin_edge():
    matrix, var = bin_edge_matrix()
    genes = ["g46", "g3"]
    ours = score(matrix, {"edge": genes}, "scanpy", var_names=var, chunk_size=2)
    assert np.abs(ours["edge"].to_numpy() - scanpy_reference(matrix, var, genes)).max() <= TOLERANCE


def test_same_seed_same_controls_other_seed_other_scores(umi_lognorm, signatures):
    var = gene_names(2000)
    sigs = {"s": signatures["set12"]}
    first = score(umi_lognorm, sigs, "scanpy", var_names=var, random_state=5)
    again = score(umi_lognorm, sigs, "scanpy", var_names=var, random_state=5)
    other = score(umi_lognorm, sigs, "scanpy", var_names=var, random_state=6)
    assert first.equals(again)
    assert not first.equals(other)
