"""Validate the interpretation layer on real labelled data; prints the figures in docs/interpretation.md.

Run from the repository root with the project environment::

    .venv/bin/python docs/validate_interpretation.py [--oligodendroglioma PATH] [--n-null 1000]

Data:
* pbmc68k_reduced (ships with scanpy): 700 PBMCs, 10 ``bulk_labels``; ``.raw`` holds
  log-normalised values for 765 genes only, so several signatures lose genes (coverage printed).
* oligodendroglioma (infercnvpy 0.6.1 wheel, ``infercnvpy/datasets/data/oligodendroglioma.h5ad``,
  Tirosh et al. 2016): 184 cells, malignant cells of 4 tumours, non-malignant oligodendrocytes,
  microglia/macrophages; TPM-like values, normalised here to 1e4 per cell and log1p.
  Get it with ``pip download --no-deps infercnvpy==0.6.1`` and unzip that member.

Scores are UCell (the default method), significance is the engine's expression-matched null
(``n_null`` random signatures, seed 0). Signatures with fewer than 3 genes in a dataset are not
scored, as they would not be in the workflow's coverage step.
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import anndata as ad
import numpy as np
import pandas as pd
import scanpy as sc
import scipy.sparse as sp
import yaml
from sklearn.metrics import adjusted_rand_score, roc_auc_score

from seedsoil.interpret import interpret_sample
from seedsoil.interpret.celltypes import label_agreement
from seedsoil.scoring import score, significance

ROOT = Path(__file__).resolve().parents[1]
MIN_GENES = 3
OLIGO_DEFAULT = Path("/tmp/oligo/infercnvpy/datasets/data/oligodendroglioma.h5ad")
#: pbmc68k bulk_labels → the assignment's type names (coarse: CD4/CD8/Treg subsets kept apart
#: only where the library has a signature for them).
PBMC_TO_TYPES = {
    "CD14+ Monocyte": "myeloid",
    "Dendritic": "dendritic",
    "CD19+ B": "B",
    "CD4+/CD25 T Reg": "T",
    "CD8+ Cytotoxic T": "T",
    "CD8+/CD45RA+ Naive Cytotoxic": "T",
    "CD4+/CD45RO+ Memory": "T",
    "CD4+/CD45RA+/CD25- Naive T": "T",
    "CD56+ NK": "NK",
    "CD34+": "progenitor",
}
ASSIGNED_COARSE = {
    "macrophage": "myeloid", "MDSC": "myeloid", "neutrophil": "myeloid", "dendritic": "dendritic",
    "B": "B", "CD4 T": "T", "CD8 T": "T", "Treg": "T", "gammadelta T": "T", "NK": "NK",
}  # fmt: skip


def library() -> dict[str, dict[str, list[str]]]:
    """All signatures of resources/signatures/*.yaml as ``{name: {"up": [...], "down": [...]}}``."""
    signatures = {}
    for path in sorted((ROOT / "resources" / "signatures").glob("*.yaml")):
        for entry in yaml.safe_load(path.read_text())["signatures"]:
            genes = entry["genes"]
            signatures[entry["name"]] = {
                "up": list(genes.get("up") or []),
                "down": list(genes.get("down") or []),
            }
    return signatures


def covered(signatures: dict, var_names) -> tuple[dict, pd.DataFrame]:
    genes = set(var_names)
    rows = []
    for name, spec in signatures.items():
        wanted = spec["up"] + spec["down"]
        rows.append((name, len(wanted), sum(g in genes for g in wanted)))
    table = pd.DataFrame(rows, columns=["signature", "n_genes", "n_present"]).set_index("signature")
    keep = table.index[table["n_present"] >= MIN_GENES]
    return {n: signatures[n] for n in keep}, table


def run(
    adata: ad.AnnData, n_null: int
) -> tuple[pd.DataFrame, pd.DataFrame, pd.DataFrame, pd.DataFrame, dict]:
    signatures, coverage = covered(library(), adata.var_names)
    skipped = coverage.index[coverage["n_present"] < MIN_GENES].tolist()
    print(
        f"  signatures scored: {len(signatures)}/{len(coverage)}; not scored (<{MIN_GENES} genes): {skipped}"
    )
    scores = score(adata, signatures, method="ucell")
    pvalues, fdr = significance(adata, signatures, n_null=n_null, random_state=0)
    start = time.perf_counter()
    calls, communication, summary = interpret_sample(adata, scores, pvalues, fdr)
    summary["seconds_interpret"] = time.perf_counter() - start
    return scores, fdr, calls, communication, summary


def one_vs_rest(scores: pd.DataFrame, labels: pd.Series, matches: dict[str, str]) -> None:
    """AUROC of each signature for its matching label (one label vs all other cells)."""
    for signature, label in matches.items():
        if signature in scores.columns and (labels == label).any():
            auc = roc_auc_score((labels == label).to_numpy(), scores[signature])
            print(f"  AUROC {signature} for '{label}' vs rest: {auc:.3f}")


def pbmc(n_null: int) -> None:
    print("== pbmc68k_reduced (blood; every cell a leukocyte) ==")
    raw = sc.datasets.pbmc68k_reduced()
    adata = ad.AnnData(
        sp.csr_matrix(raw.raw.X, dtype=np.float32),
        obs=raw.obs.copy(),
        var=pd.DataFrame(index=raw.raw.var_names),
    )
    adata.obs["cell_type"] = adata.obs["bulk_labels"].astype(str)
    scores, fdr, calls, communication, summary = run(adata, n_null)
    n = calls.shape[0]
    print(f"  cells: {n}; CTC candidates: {summary['n_ctc_candidates']} ({summary['frac_ctc']:.4f}); "
          f"cells with CTC_epithelial_identity FDR<=0.05 (before the core-marker and leukocyte evidence): {int((calls['ctc_fdr'] <= 0.05).sum())}")  # fmt: skip
    print(f"  ctc_support: {summary['ctc_support']}")
    print(f"  heterotypic flags: {summary['heterotypic']}")
    labels = adata.obs["cell_type"]
    one_vs_rest(scores, labels, {
        "IMM_B": "CD19+ B", "IMM_NK": "CD56+ NK", "IMM_CD8_cytotoxic": "CD8+ Cytotoxic T",
        "IMM_Treg": "CD4+/CD25 T Reg", "IMM_macrophage_TAM": "CD14+ Monocyte", "IMM_dendritic": "Dendritic",
    })  # fmt: skip
    agreement = label_agreement(labels, calls["cell_type_assigned"])
    print(f"  assignment vs bulk_labels (10 classes): ARI all={agreement['ari_all']:.3f}, "
          f"ARI assigned={agreement['ari_assigned']:.3f}, assigned={agreement['frac_assigned']:.3f}")  # fmt: skip
    coarse_label = labels.map(PBMC_TO_TYPES)
    coarse_assigned = (
        calls["cell_type_assigned"].map(ASSIGNED_COARSE).fillna(calls["cell_type_assigned"])
    )
    keep = calls["cell_type_assigned"] != "unassigned"
    accuracy = float((coarse_label[keep] == coarse_assigned[keep]).mean())
    print(f"  coarse lineages (T/NK/B/myeloid/dendritic/progenitor): ARI assigned="
          f"{adjusted_rand_score(coarse_label[keep], coarse_assigned[keep]):.3f}, accuracy on assigned={accuracy:.3f}")  # fmt: skip
    print("  confusion (rows bulk_labels, columns assigned):")
    print(
        pd.crosstab(labels, calls["cell_type_assigned"])
        .to_string(max_cols=20)
        .replace("\n", "\n    ")
    )
    top = communication.sort_values(["fdr", "score"], ascending=[True, False]).head(5)
    print("  top communication rows:")
    print(
        top[["sender", "receiver", "pair", "score", "pvalue", "fdr"]]
        .to_string(index=False)
        .replace("\n", "\n    ")
    )
    print(f"  pairs skipped (absent genes): {len(summary['communication_skipped']['pairs'])}; "
          f"interpret_sample: {summary['seconds_interpret']:.1f} s with n_perm=1000")  # fmt: skip


def oligodendroglioma(path: Path, n_null: int) -> None:
    print("== oligodendroglioma (Tirosh et al. 2016; glial tumour, not carcinoma) ==")
    adata = ad.read_h5ad(path)
    adata.X = sp.csr_matrix(adata.X, dtype=np.float32)
    adata.obs["n_counts"] = np.asarray(adata.X.sum(axis=1)).ravel()
    adata.obs["n_genes"] = np.diff(adata.X.indptr)
    sc.pp.normalize_total(adata, target_sum=1e4)
    sc.pp.log1p(adata)
    adata.obs["cell_type"] = adata.obs["cell_type"].astype(str)
    scores, fdr, calls, communication, summary = run(adata, n_null)
    labels = adata.obs["cell_type"]
    malignant = labels.str.startswith("malignant").to_numpy()
    print(
        f"  cells: {labels.size} (malignant {malignant.sum()}, non-malignant {(~malignant).sum()})"
    )
    for name in (
        "CTC_epithelial_identity",
        "ID_epithelial_tumour",
        "ID_glial",
        "EMT_bidirectional",
        "IMM_macrophage_TAM",
    ):
        if name in scores.columns:
            auc = roc_auc_score(malignant, scores[name])
            sig = fdr[name].to_numpy() <= 0.05
            print(f"  AUROC malignant vs non-malignant, {name}: {auc:.3f}; FDR<=0.05 in malignant "
                  f"{sig[malignant].mean():.3f}, non-malignant {sig[~malignant].mean():.3f}")  # fmt: skip
    one_vs_rest(
        scores,
        labels,
        {
            "ID_glial": "Oligodendrocytes (non-malignant)",
            "IMM_macrophage_TAM": "Microglia/Macrophage",
        },
    )
    glial_lineage = ~(labels == "Microglia/Macrophage").to_numpy()
    print(f"  AUROC ID_glial, glial lineage (malignant + oligodendrocytes) vs microglia: "
          f"{roc_auc_score(glial_lineage, scores['ID_glial']):.3f}")  # fmt: skip
    ctc = calls["ctc_candidate"].to_numpy()
    print(f"  CTC candidates: malignant {ctc[malignant].sum()}/{malignant.sum()}, non-malignant "
          f"{ctc[~malignant].sum()}/{(~malignant).sum()}; ctc_support: {summary['ctc_support']}")  # fmt: skip
    coarse = labels.where(~malignant, "malignant")
    agreement = label_agreement(coarse, calls["cell_type_assigned"])
    print(f"  assignment vs labels (malignant / oligodendrocyte / microglia): ARI all={agreement['ari_all']:.3f}, "
          f"ARI assigned={agreement['ari_assigned']:.3f}, assigned={agreement['frac_assigned']:.3f}")  # fmt: skip
    print("  confusion (rows labels, columns assigned):")
    print(pd.crosstab(coarse, calls["cell_type_assigned"]).to_string().replace("\n", "\n    "))
    print(f"  heterotypic flags: {summary['heterotypic']}")
    top = communication.sort_values(["fdr", "score"], ascending=[True, False]).head(5)
    print("  top communication rows:")
    print(
        top[["sender", "receiver", "pair", "score", "pvalue", "fdr"]]
        .to_string(index=False)
        .replace("\n", "\n    ")
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--oligodendroglioma", type=Path, default=OLIGO_DEFAULT)
    parser.add_argument("--n-null", type=int, default=1000)
    args = parser.parse_args()
    pbmc(args.n_null)
    if args.oligodendroglioma.exists():
        oligodendroglioma(args.oligodendroglioma, args.n_null)
    else:
        print(f"oligodendroglioma data not found at {args.oligodendroglioma}; skipped")


if __name__ == "__main__":
    main()
