"""Synthetic inputs of a sample report, built in code: an AnnData following the convention,
scores, coverage, p-values, calls, communication and interpretation of one sample."""

from __future__ import annotations

import anndata as ad
import numpy as np
import pandas as pd
import scipy.sparse as sp

from seedsoil.signatures import COVERAGE_COLUMNS

XSS = "<script>alert(1)</script>"
SIGNATURES = {
    "emt": ["EMT_epithelial", "EMT_mesenchymal", "EMT_bidirectional", "TGFB_SMAD_drive"],
    "ctc": ["CTC_epithelial_identity", "CTC_cluster_adhesion", "CTC_neutrophil_axis"],
    "neutrophil_net": ["NET_formation", "TAN_tumour_associated_neutrophils"],
    "exosome": ["EV_biogenesis", "EV_tumour_cargo"],
    "immune": ["IMM_macrophage_TAM", "IMM_neutrophil", "IMM_CD8_cytotoxic", "IMM_B"],
    "niche": ["NICHE_angiogenesis", "NICHE_IL6_IL8"],
}
#: cell type -> (share of cells, signature name prefixes it scores high on)
CELL_TYPES = {
    "tumour epithelial": (0.35, ("EMT_epi", "CTC_", "EV_", "EMT_bi")),
    "T cell": (0.2, ("IMM_CD8",)),
    "neutrophil": (0.12, ("NET_", "TAN_", "IMM_neutrophil")),
    "macrophage": (0.12, ("IMM_macrophage", "NICHE_IL6")),
    "fibroblast": (0.1, ("EMT_mes", "TGFB_")),
    "endothelial": (0.06, ("NICHE_angio",)),
    "B <b>cell</b>": (0.05, ("IMM_B",)),
}


def signature_theme() -> dict[str, str]:
    return {s: theme for theme, names in SIGNATURES.items() for s in names}


def make_adata(n_cells: int = 600, n_genes: int = 400, seed: int = 0, sample: str = XSS):
    """An AnnData of one sample with counts, log-normalised X, cell types and an embedding."""
    rng = np.random.default_rng(seed)
    shares = np.array([v[0] for v in CELL_TYPES.values()])
    types = rng.choice(list(CELL_TYPES), size=n_cells, p=shares / shares.sum())
    counts = sp.random(n_cells, n_genes, density=0.08, format="csr", random_state=seed)
    counts.data = rng.poisson(3, counts.data.size).astype(np.float32) + 1
    totals = np.asarray(counts.sum(axis=1)).ravel()
    X = sp.diags(1e4 / totals) @ counts
    X.data = np.log1p(X.data)
    centres = {t: rng.normal(0, 6, 2) for t in CELL_TYPES}
    embedding = np.array([centres[t] for t in types]) + rng.normal(0, 1, (n_cells, 2))
    genes = [f"GENE{i}" for i in range(n_genes - 10)] + [
        "KRT8",
        "KRT18",
        "EPCAM",
        "VIM",
        "ELANE",
        "MPO",
        "CD8A",
        "CD19",
        "PTPRC",
        "CD63",
    ]
    obs = pd.DataFrame(
        {
            "sample": sample,
            "cell_type": types,
            "condition": "tumour",
            "n_counts": totals,
            "n_genes": np.diff(counts.indptr),
            "mito_fraction": rng.beta(2, 40, n_cells),
            "qc_pass": True,
            "qc_reason": "",
        },
        index=[f"cell{i}" for i in range(n_cells)],
    )
    adata = ad.AnnData(X=X.astype(np.float32).tocsr(), obs=obs, var=pd.DataFrame(index=genes))
    adata.layers["counts"] = counts.astype(np.float32)
    adata.obsm["X_embedding"] = embedding
    adata.uns["seedsoil"] = {
        "dataset": "demo <i>set</i>",
        "species": "human",
        "input_scale": "counts",
        "embedding": "computed: PCA 50 → UMAP",
        "provenance": {
            "publication": "Doe et al. 2024 & co",
            "accession": "GSE000000",
            "licence": "CC-BY-4.0",
            "url": "https://example.org/data.h5ad",
            "sha256": "0" * 64,
        },
        "warnings": ["12 gene symbols were renamed from aliases"],
        "qc": {
            "min_genes": 15,
            "max_mito_fraction": 0.2,
            "n_cells_input": n_cells + 57,
            "removed_by_reason": {"low_genes": 40, "high_mito": 17},
        },
        "version": "0.1.0",
    }
    return adata


def make_scores(adata, seed: int = 0) -> pd.DataFrame:
    """Scores in [0, 1]: higher for the signatures each cell type is built to express."""
    rng = np.random.default_rng(seed + 1)
    types = adata.obs["cell_type"].to_numpy()
    columns = {}
    for signature in signature_theme():
        boost = np.array(
            [any(signature.startswith(p) for p in CELL_TYPES[t][1]) for t in types], float
        )
        columns[signature] = np.clip(0.15 + 0.35 * boost + rng.normal(0, 0.06, types.size), 0, 1)
    return pd.DataFrame(columns, index=adata.obs_names)


def make_pvalues(scores: pd.DataFrame) -> tuple[pd.DataFrame, pd.DataFrame]:
    pvalues = np.clip(1 - scores * 1.8, 1e-4, 1)
    return pvalues, np.clip(pvalues * 3, 0, 1)


def make_coverage() -> pd.DataFrame:
    theme = signature_theme()
    rows = []
    for i, signature in enumerate(theme):
        n_genes = 20 + i
        n_present = n_genes - (i % 5)
        missing = ",".join(f"MISS{i}_{k}" for k in range(n_genes - n_present))
        rows.append(
            [
                signature,
                theme[signature],
                n_genes,
                n_present,
                n_present / n_genes,
                missing,
                True,
                "",
            ]
        )
    rows.append(
        [
            "CTC_breast_Kwan2018",
            "ctc",
            17,
            2,
            2 / 17,
            "KRT19,<img src=x>",
            False,
            "fewer than 5 genes present",
        ]
    )
    # The columns of coverage tables before core markers existed: reports must still render them.
    return pd.DataFrame(rows, columns=COVERAGE_COLUMNS[: COVERAGE_COLUMNS.index("no_ortholog")])


def make_calls(adata, scores: pd.DataFrame) -> pd.DataFrame:
    types = adata.obs["cell_type"].to_numpy()
    candidate = (types == "tumour epithelial") & (scores["CTC_epithelial_identity"] > 0.55)
    emt = np.where(scores["EMT_bidirectional"] > 0.5, "hybrid", "epithelial")
    cluster = np.where(candidate & (np.arange(types.size) % 7 == 0), "CTC-neutrophil", "")
    return pd.DataFrame(
        {
            "cell_type_assigned": types,
            "assignment_score": scores.max(axis=1),
            "assignment_confidence": 0.8,
            "ctc_candidate": candidate,
            "ctc_confidence": np.where(candidate, scores["CTC_epithelial_identity"], 0.0),
            "ctc_fdr": np.where(candidate, 0.01, 1.0),
            "emt_state": np.where(candidate, emt, ""),
            "heterotypic_cluster": cluster,
        },
        index=adata.obs_names,
    )


def make_communication() -> pd.DataFrame:
    rows = []
    types = list(CELL_TYPES)
    for i, sender in enumerate(types):
        for j, receiver in enumerate(types):
            score = ((i * 3 + j * 5) % 11) / 10
            rows.append(
                [
                    sender,
                    receiver,
                    "CXCL8",
                    "CXCR2",
                    "CXCL8–CXCR2",
                    "NICHE_IL6_IL8",
                    score,
                    0.5 - score / 2.2,
                    0.55 - score / 1.9,
                    "PMID:1",
                ]
            )
    return pd.DataFrame(
        rows,
        columns=[
            "sender",
            "receiver",
            "ligand",
            "receptor",
            "pair",
            "theme",
            "score",
            "pvalue",
            "fdr",
            "references",
        ],
    )


def make_interpretation(calls: pd.DataFrame) -> dict:
    return {
        "n_cells": len(calls),
        "n_ctc_candidates": int(calls["ctc_candidate"].sum()),
        "frac_ctc": float(calls["ctc_candidate"].mean()),
        "ctc_support": "supported",
        "immune_composition": {
            "T cell": 0.4,
            "neutrophil": 0.25,
            "macrophage": 0.25,
            "B cell": 0.1,
        },
        "cell_type_source": "labels",
        "alpha": 0.05,
        "emt_states": {"epithelial": 3, "hybrid": 2, "mesenchymal": 0},
        "label_agreement": {"adjusted_rand": 0.91, "accuracy": 0.95},
        "confusion": {"T cell": {"T cell": 110, "NK cell": 7}},
        "top_communication": [{"sender": "T cell", "receiver": "neutrophil", "score": 0.4}],
        "mean_net_in_neutrophils": 0.48,
    }


def sample_inputs(n_cells: int = 600, seed: int = 0, sample: str = XSS) -> dict:
    """Keyword arguments of ``write_sample_report`` (all optional panels present)."""
    adata = make_adata(n_cells=n_cells, seed=seed, sample=sample)
    scores = make_scores(adata, seed)
    pvalues, fdr = make_pvalues(scores)
    calls = make_calls(adata, scores)
    return {
        "adata": adata,
        "scores": scores,
        "coverage": make_coverage(),
        "pvalues": pvalues,
        "fdr": fdr,
        "calls": calls,
        "communication": make_communication(),
        "interpretation": make_interpretation(calls),
        "config": {"scoring": {"method": "ucell"}, "note": "</pre><b>config</b>"},
        "versions": {"signature library": "2024.1"},
    }
