"""Evaluate the signature-based cell-type assignment on the embedded labelled data sets.

Run from the repository root with the project environment (built-ins fetched into
``resources/downloads/builtin``, e.g. by ``make demo`` or ``seedsoil.datasets.fetch_builtin``)::

    .venv/bin/python benchmarks/evaluate_celltypes.py [--n-null 1000] [--cache DIR]
    .venv/bin/python benchmarks/evaluate_celltypes.py --ablation [--n-null 200] [--cache DIR]

``--ablation`` evaluates each data set also on another log scale (log2 TPM-like) and on partial
panels — a random 40 % of its genes (seeds 0, 1, 2) and an expression-stratified 40 % (seed 0:
the same share of every decile of mean expression), as a ~8,000-gene subset of a ~20,000-gene
transcriptome — and each assignment step switched (:data:`ABLATION`: own-marker rule, marker
evidence, core gate, p-value rule, lineage-level gate, cluster vote, round 1's
neighbour-averaged evidence), next to the plain-argmax baseline (:func:`plain_argmax`) and the
covered types each panel can identify (:func:`identifiable_types`), printing one table, then
the calls on the unlabelled sets (Hydro-Seq, celltypist_sample).

The main run prints, per data set, the assignment, the plain argmax and CellTypist.

The labels are hidden from the assignment: scores, p-values and the assignment see only the
expression. Each data set's labels are then mapped to the assignment's type names by the explicit
tables below (biology, fixed before looking at results); labels with no matching signature type
are "not covered" and left out of accuracy and macro-F1 (but not of the unassigned fraction).
A CellTypist model trained on a *different* labelled data set
(pbmc68k for the others, Wu 2020 for pbmc68k; labels mapped to the same type names) annotates
each set for comparison. Prints the markdown table of docs/interpretation.md.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import anndata as ad
import numpy as np
import pandas as pd
import scanpy as sc
import scipy.sparse as sp
from sklearn.metrics import f1_score

from seedsoil.interpret.celltypes import CELL_TYPE_SIGNATURES, UNASSIGNED, assign_cell_types
from seedsoil.names import current_symbols
from seedsoil.scoring import score, significance
from seedsoil.signatures import DEFAULT_MIN_COVERAGE, coverage, load_library

ROOT = Path(__file__).resolve().parents[1]
BUILTIN = ROOT / "resources" / "downloads" / "builtin"
LIBRARY = ROOT / "resources" / "signatures"
#: Share of genes kept by a partial-panel variant (~8,000 of ~20,000 protein-coding genes).
PANEL_FRACTION = 0.4
#: Assignment steps switched by the ablation (keyword arguments of ``assign_cell_types``).
ABLATION = {
    "neither": {"own_markers": False, "cluster_vote": False},
    "own markers (default)": {"own_markers": True, "cluster_vote": False},
    "own markers, no classifier step": {"own_markers": True, "classifier": False},
    "own markers, no transcriptome neighbours": {"own_markers": True, "transcriptome": None},
    "round 1 (neighbour-averaged evidence, no marker evidence)": {
        "own_markers": True,
        "neighbour_evidence": True,
        "marker_evidence": False,
    },
    "own markers, no marker evidence": {"own_markers": True, "marker_evidence": False},
    "own markers, core gate at lineage level": {"own_markers": True, "lineage_gate": True},
    "own markers, no core gate": {"own_markers": True, "core_gate": False},
    "own markers, no p-value rule": {"own_markers": True, "max_pvalue": 1.0},
    "cluster vote": {"own_markers": False, "cluster_vote": True},
    "own markers + cluster vote": {"own_markers": True, "cluster_vote": True},
}

#: Dataset label → assignment type (None: no signature covers the label).
PBMC_TYPES = {
    "CD14+ Monocyte": "classical monocyte",
    "Dendritic": "dendritic",
    "CD19+ B": "B",
    "CD4+/CD25 T Reg": "Treg",
    "CD8+ Cytotoxic T": "CD8 T",
    "CD8+/CD45RA+ Naive Cytotoxic": "CD8 T",
    "CD4+/CD45RO+ Memory": "CD4 T",
    "CD4+/CD45RA+/CD25- Naive T": "CD4 T",
    "CD56+ NK": "NK",
    "CD34+": None,
}


def wu_type(label: str) -> str | None:
    """Wu 2020 cluster names: 8.* CD8 T, 4.6* regulatory T, other 4.* CD4 T; 3.1-MT (cells
    grouped by mitochondrial reads, lineage not stated) is not covered."""
    if label.startswith("8."):
        return "CD8 T"
    if label.startswith("4.6"):
        return "Treg"
    if label.startswith("4."):
        return "CD4 T"
    return None


def oligo_type(label: str) -> str | None:
    """Oligodendroglioma: oligodendrocytes glial, microglia macrophage. Malignant cells are not
    covered: the library has no glioma-malignant type, and these progenitor-like cells lack the
    mature-glia genes of ID_glial (malignancy in glioma needs copy-number inference)."""
    if label.startswith("Oligodendrocytes"):
        return "glial"
    if label == "Microglia/Macrophage":
        return "macrophage"
    return None


#: Types scored as one class in every data set: no label set here tells monocytes from
#: macrophages (pbmc68k "CD14+ Monocyte", oligodendroglioma "Microglia/Macrophage"), nor B from
#: plasma cells (no set has a plasma label; pbmc68k's "CD19+ B" holds 31 cells called plasma
#: that detect JCHAIN in 100 %, MZB1 in 97 %, TNFRSF17 in 94 % and MS4A1 in 3 % of them).
CLASS_FAMILIES = {
    **dict.fromkeys(("macrophage", "classical monocyte", "non-classical monocyte"),
                    "monocyte/macrophage"),
    **dict.fromkeys(("B", "plasma"), "B/plasma"),
}  # fmt: skip


#: Type → lineage, for a CHETAH-style coarse score: a call in the right lineage but the wrong
#: subtype (CD4 vs CD8 T, B vs plasma, monocyte vs dendritic) is right at this level. Reported
#: next to, never instead of, the subtype accuracy. A lineage-level call of the assignment
#: ("T/NK cell", ...; ``LINEAGE_TYPES``) counts as wrong for accuracy and macro-F1 (it is not
#: the labelled subtype) and as right for lineage accuracy when its lineage matches.
LINEAGE = {
    "T/NK cell": "T/NK",
    "B lineage": "B/plasma",
    "mononuclear phagocyte": "myeloid",
    **dict.fromkeys(["CD8 T", "CD4 T", "Treg", "gammadelta T", "NK"], "T/NK"),
    **dict.fromkeys(["B", "plasma", "B/plasma"], "B/plasma"),
    **dict.fromkeys(["monocyte/macrophage", "dendritic", "neutrophil", "MDSC", "mast"], "myeloid"),
}


#: A subtype's parent type: on a panel that cannot score the subtype's signature its cells are
#: judged as the parent (regulatory T cells are CD4 T cells), as CHETAH scores a call at an
#: intermediate node of its tree.
PARENT_TYPE = {"Treg": "CD4 T"}


def panel_labels(labels: pd.Series, library: dict) -> pd.Series:
    """``labels`` restricted to the types this panel's scored signatures (``library``, from
    :func:`signatures_for`) can name: a label whose type (or class, :data:`CLASS_FAMILIES`) has
    no scored signature becomes its :data:`PARENT_TYPE` when that one is scored, else not
    covered (NaN). The issue's "types the signatures cover", read per panel; reported next to,
    never instead of, the figures over every labelled type."""
    scored = {CELL_TYPE_SIGNATURES[n] for n in library if n in CELL_TYPE_SIGNATURES}
    scored_classes = {CLASS_FAMILIES.get(t, t) for t in scored}

    def named(label):
        if label is None or pd.isna(label) or CLASS_FAMILIES.get(label, label) in scored_classes:
            return label
        parent = PARENT_TYPE.get(label)
        return parent if parent in scored else np.nan

    return labels.map(named)


def load(name: str) -> tuple[ad.AnnData, pd.Series]:
    """Log-normalised AnnData and its true labels mapped to types."""
    if name == "pbmc68k_reduced":
        raw = ad.read_h5ad(BUILTIN / name / "10x_pbmc68k_reduced.h5ad")
        adata = ad.AnnData(
            sp.csr_matrix(raw.raw.X, dtype=np.float32),
            obs=raw.obs[["bulk_labels"]].copy(),
            var=pd.DataFrame(index=raw.raw.var_names),
        )
        labels = adata.obs["bulk_labels"].astype(str).map(PBMC_TYPES)
    else:
        file = {
            "wu2020_200": "wu2020_200_v0_11.h5ad",
            "oligodendroglioma": "oligodendroglioma.h5ad",
        }
        adata = ad.read_h5ad(BUILTIN / name / file[name])
        adata.X = sp.csr_matrix(adata.X, dtype=np.float32)
        sc.pp.normalize_total(adata, target_sum=1e4)
        sc.pp.log1p(adata)
        column, mapping = {
            "wu2020_200": ("cluster_orig", wu_type),
            "oligodendroglioma": ("cell_type", oligo_type),
        }[name]
        labels = adata.obs[column].astype(str).map(mapping)
    adata.obs = adata.obs[[]]  # labels hidden from everything below
    # outdated symbols renamed as the workflow's ingest does (IGJ → JCHAIN in pbmc68k)
    adata.var_names = pd.Index(current_symbols(adata.var_names.to_numpy())[0].astype(str))
    return adata, labels


def signatures_for(adata: ad.AnnData, directory: Path = LIBRARY) -> dict:
    """The signatures of ``directory`` (default: the shipped library) the workflow would score
    on this panel (coverage ≥ ``min_coverage`` or the core rule,
    ``seedsoil.signatures.coverage``)."""
    library = load_library(sorted(Path(directory).glob("*.yaml")))
    table = coverage(library, adata.var_names, DEFAULT_MIN_COVERAGE).set_index("signature")
    return {n: s for n, s in library.items() if table.loc[n, "scored"]}


def panel_subset(adata: ad.AnnData, seed: int, stratified: bool) -> ad.AnnData:
    """:data:`PANEL_FRACTION` of the genes, drawn at random (``seed``) — uniformly, or the same
    share from each decile of mean expression (``stratified``)."""
    rng = np.random.default_rng(seed)
    n_genes = adata.n_vars
    if not stratified:
        keep = rng.choice(n_genes, size=round(PANEL_FRACTION * n_genes), replace=False)
    else:
        mean = np.asarray(adata.X.mean(axis=0)).ravel()
        decile = pd.qcut(pd.Series(mean).rank(method="first"), 10, labels=False).to_numpy()
        keep = np.concatenate(
            [
                rng.choice(idx, size=round(PANEL_FRACTION * idx.size), replace=False)
                for idx in (np.flatnonzero(decile == d) for d in range(10))
            ]
        )
    return adata[:, np.sort(keep)].copy()


def highly_variable_subset(adata: ad.AnnData) -> ad.AnnData:
    """The :data:`PANEL_FRACTION` of genes with the highest normalised dispersion (scanpy's
    ``highly_variable_genes``, Seurat flavour, on the log values) — the subset a published
    reference is often shipped as, which keeps the variable marker genes a random subset drops."""
    table = sc.pp.highly_variable_genes(
        adata, n_top_genes=round(PANEL_FRACTION * adata.n_vars), flavor="seurat", inplace=False
    )
    return adata[:, table["highly_variable"].to_numpy()].copy()


def log2_tpm_like(adata: ad.AnnData) -> ad.AnnData:
    """The same cells on another log scale, ``log2(100 · (e^x − 1) + 1)`` = log2(TPM-like + 1)
    from ``x`` = ln(1 + counts per 10,000), as published references often ship."""
    out = adata.copy()
    out.X = sp.csr_matrix(out.X, dtype=np.float32, copy=True)
    out.X.data = np.log2(np.expm1(out.X.data) * 100.0 + 1.0).astype(np.float32)
    return out


def variants(name: str, adata: ad.AnnData) -> dict[str, ad.AnnData]:
    """The full data set on two log scales and its partial panels (pbmc68k is already a
    765-gene panel)."""
    out = {"full": adata, "full, log2 TPM-like": log2_tpm_like(adata)}
    if name != "pbmc68k_reduced":
        for seed in (0, 1, 2):
            out[f"random 40% s{seed}"] = panel_subset(adata, seed, stratified=False)
        out["stratified 40% s0"] = panel_subset(adata, 0, stratified=True)
        out["highly variable 40%"] = highly_variable_subset(adata)
    return out


def scored(name: str, adata: ad.AnnData, library: dict, n_null: int, cache: Path | None):
    files = (
        [cache / f"{name}_{kind}.parquet" for kind in ("scores", "pvalues", "fdr")] if cache else []
    )
    if files and all(f.exists() for f in files):
        tables = [pd.read_parquet(f) for f in files]
        if set(tables[0].columns) == set(library):
            return tables
    sets = {n: {"up": list(s.up), "down": list(s.down)} for n, s in library.items()}
    tables = [score(adata, sets, method="ucell"), *significance(adata, sets, n_null=n_null)]
    if cache:
        cache.mkdir(parents=True, exist_ok=True)
        for table, file in zip(tables, files, strict=True):
            table.to_parquet(file)
    return tables


EPITHELIAL_GENES = ["EPCAM", "KRT8", "KRT18", "KRT19", "CDH1"]


def detected(adata: ad.AnnData, genes, cells) -> np.ndarray:
    """Per cell of ``cells``: any of ``genes`` (those in the panel) > 0."""
    genes = [g for g in genes if g in adata.var_names]
    if not genes:
        return np.zeros(len(cells), dtype=bool)
    return np.asarray((adata[cells, genes].X > 0).sum(axis=1)).ravel() > 0


def load_unlabelled(name: str) -> ad.AnnData:
    """Log-normalised unlabelled sets for sanity checks: the targeted-panel Hydro-Seq sample
    (``resources/data``) and CellTypist's immune sample (559 cells, UMI counts)."""
    if name == "hydroseq_ctc_enriched":
        adata = ad.read_h5ad(ROOT / "resources" / "data" / "hydroseq_ctc_enriched_1100.h5ad")
    else:
        table = pd.read_csv(BUILTIN / name / "sample_cell_by_gene.csv", index_col=0)
        adata = ad.AnnData(sp.csr_matrix(table.to_numpy(dtype=np.float32)))
        adata.obs_names, adata.var_names = table.index.astype(str), table.columns.astype(str)
    adata.X = sp.csr_matrix(adata.X, dtype=np.float32)
    sc.pp.normalize_total(adata, target_sum=1e4)
    sc.pp.log1p(adata)
    return adata


def sanity(n_null: int, cache: Path | None, directory: Path = LIBRARY) -> pd.DataFrame:
    """Calls per type on the unlabelled sets, per :data:`ABLATION` setting, with three checks on
    the calls: plasma calls without any plasma core gene detected in the cell, platelet calls
    whose cell detects an epithelial core gene (EPCAM, KRT8/18/19, CDH1), and
    :func:`contradicted_calls`."""
    rows = []
    for name in ("hydroseq_ctc_enriched", "celltypist_sample"):
        adata = load_unlabelled(name)
        library = signatures_for(adata, directory)
        tables = scored(name, adata, library, n_null, cache)

        shipped = load_library(sorted(Path(directory).glob("*.yaml")))
        plasma_core = [g for grp in shipped["IMM_plasma"].core for g in grp]
        for setting, options in ABLATION.items():
            calls = assign(adata, library, tables, **options)["cell_type_assigned"]
            plasma = calls.index[calls == "plasma"]
            platelet = calls.index[calls == "platelet"]
            counts = calls.value_counts()
            rows.append(
                {
                    "data set": name,
                    "assignment": setting,
                    "plasma without plasma core gene": int(
                        (~detected(adata, plasma_core, plasma)).sum()
                    ),
                    "platelet with epithelial gene": int(
                        detected(adata, EPITHELIAL_GENES, platelet).sum()
                    ),
                    "calls the cells' markers contradict": contradicted_calls(adata, calls),
                    "calls": ", ".join(f"{t} {n}" for t, n in counts.items()),
                }
            )
    return pd.DataFrame(rows)


def metrics(labels: pd.Series, predicted: pd.Series) -> dict:
    """Accuracy, macro-F1 and lineage accuracy (:data:`LINEAGE`) over cells whose label is
    covered (unassigned counts as wrong); unassigned fraction over all cells."""
    predicted = predicted.astype(str).replace(CLASS_FAMILIES)
    labels = labels.replace(CLASS_FAMILIES)
    covered = labels.notna()
    truth, guess = labels[covered], predicted[covered]
    classes = sorted(set(truth))
    lineage_truth, lineage_guess = truth.replace(LINEAGE), guess.replace(LINEAGE)
    return {
        "cells": int(labels.size),
        "covered": int(covered.sum()),
        "accuracy": float((truth == guess).mean()),
        "macro_f1": float(f1_score(truth, guess, labels=classes, average="macro", zero_division=0)),
        "unassigned": float((predicted == UNASSIGNED).mean()),
        "unassigned_covered": float((guess == UNASSIGNED).mean()),
        "lineage_accuracy": float((lineage_truth == lineage_guess).mean()),
    }


#: Genes that define a labelled type, for :func:`label_audit` only (never used by the
#: assignment's evaluation rows): ``(positive, negative)`` — a cell of the type detects at least
#: one positive gene unless it drops out, and by definition detects no negative gene. T-cell
#: subsets: their co-receptor (CD8A/CD8B; CD4/CD40LG) and FOXP3; NK cells: the NK receptors, and
#: no CD3 complex (NK cells are CD3-negative); B/plasma cells: the B-cell receptor complex (not
#: JCHAIN or MZB1, which plasmacytoid DCs express too); dendritic cells: the cDC1/cDC2/pDC/mregDC
#: subset markers;
#: monocytes/macrophages: CD14, FCN1, VCAN (classical), CDKN1C, HES4, MS4A7 (non-classical),
#: C1QA/B and CD163 (macrophage); glia: the oligodendrocyte and astrocyte genes of ``ID_glial``.
DEFINING_GENES = {
    "CD8 T": (("CD8A", "CD8B"), ()),
    "CD4 T": (("CD4", "CD40LG"), ()),
    "Treg": (("FOXP3",), ()),
    "NK": (("KLRF1", "NCR1", "SH2D1B", "NCAM1"), ("CD3D", "CD3E", "CD3G")),
    "B/plasma": (("MS4A1", "CD19", "CD79A", "CD79B"), ()),
    "dendritic": (
        ("FCER1A", "CD1C", "CLEC10A", "CLEC9A", "XCR1", "LILRA4", "CLEC4C", "IL3RA", "LAMP3"),
        (),
    ),
    "monocyte/macrophage": (
        ("CD14", "FCN1", "VCAN", "CDKN1C", "HES4", "MS4A7", "C1QA", "C1QB", "CD163"),
        (),
    ),
    "glial": (("OLIG1", "OLIG2", "SOX10", "PLP1", "MOG", "MAG", "GFAP", "AQP4", "SLC1A3"), ()),
}


def label_audit(adata: ad.AnnData, labels: pd.Series) -> pd.Series:
    """Per covered cell, whether its own transcripts contradict its label (:data:`DEFINING_GENES`,
    detection > 0 in the cell alone; the assignment's calls play no part): ``"contradicted"``
    when the cell detects a negative gene of its labelled type, or detects none of its type's
    positive genes but a positive gene of another type of the data set's labels; ``"consistent"``
    otherwise; NaN for uncovered cells. A label the cell's markers contradict is where no
    label-free method can agree with it, and a supervised one learns the labelling's error."""
    truth = labels.replace(CLASS_FAMILIES)
    every = np.arange(adata.n_obs)
    types = [t for t in truth.dropna().unique() if t in DEFINING_GENES]
    positive = {t: detected(adata, DEFINING_GENES[t][0], every) for t in types}
    negative = {t: detected(adata, DEFINING_GENES[t][1], every) for t in types}
    status = pd.Series(np.nan, index=labels.index, dtype=object)
    for own in types:
        cells = (truth == own).to_numpy()
        other = np.zeros(adata.n_obs, dtype=bool)
        for t in types:
            if t != own:
                other |= positive[t]
        contradicted = negative[own] | (~positive[own] & other)
        status[cells] = np.where(contradicted[cells], "contradicted", "consistent")
    return status


#: Method name of the row over the labels the panel's scored signatures can name (:func:`panel_labels`).
PANEL_COVERED = "signatures (seedsoil), types the panel's signatures name"


def contradicted_calls(adata: ad.AnnData, calls: pd.Series) -> int:
    """Calls (of the types :data:`DEFINING_GENES` audits) that the called cell's own markers
    contradict, by :func:`label_audit` with the calls as labels: a label-free count that also
    works on unlabelled data, but only counts; a contrast on the same genes lowers it by
    construction."""
    types = calls.astype(str).replace(CLASS_FAMILIES)
    return int(
        (label_audit(adata, types.where(types.isin(list(DEFINING_GENES)))) == "contradicted").sum()
    )


#: Method name of the row over the panel-named labels that the cells' own markers do not
#: contradict (:func:`label_audit`).
AUDITED = "signatures (seedsoil), panel-named labels the cells' markers do not contradict"
#: Method name of the baseline row: the argmax of the raw scores, every cell assigned.
ARGMAX = "plain argmax (baseline)"


def plain_argmax(scores: pd.DataFrame) -> pd.Series:
    """Baseline: per cell, the type of the highest raw score over the cell-type signatures of
    ``CELL_TYPE_SIGNATURES`` that were scored; every cell assigned, no neighbourhood, core
    marker, contrast or significance step. The assignment should never be clearly worse."""
    used = [s for s in CELL_TYPE_SIGNATURES if s in scores.columns]
    types = np.array([CELL_TYPE_SIGNATURES[s] for s in used], dtype=object)
    values = np.nan_to_num(scores[used].to_numpy(dtype=np.float64), nan=-np.inf)
    return pd.Series(types[np.argmax(values, axis=1)], index=scores.index, dtype=str)


def identifiable_types(panel: ad.AnnData, library: dict, labels: pd.Series) -> list[str]:
    """Covered types (after :data:`CLASS_FAMILIES`) that this panel can identify: a signature of
    the type is scored (``library``, from :func:`signatures_for`) and at least half of its core
    groups (rounded up; all of them when it declares none) have a gene on the panel — the core
    rule's precondition. Reported next to, never instead of, the strict figures."""
    genes = set(panel.var_names)
    found = set()
    for name, signature in library.items():
        if name not in CELL_TYPE_SIGNATURES:
            continue
        groups = getattr(signature, "core", ()) or ()
        present = sum(any(g in genes for g in group) for group in groups)
        if present >= -(-len(groups) // 2):
            found.add(CLASS_FAMILIES.get(CELL_TYPE_SIGNATURES[name], CELL_TYPE_SIGNATURES[name]))
    covered = set(labels.dropna().replace(CLASS_FAMILIES))
    return sorted(covered & found)


def assign(adata, library, tables, core_gate: bool = True, **options) -> pd.DataFrame:
    """``assign_cell_types`` as the workflow calls it (the panel's matrix as ``transcriptome``);
    ``core_gate=False`` drops the core markers (no core gate, no own-marker rule) to measure what
    that step costs or gains."""
    scores, pvalues, fdr = tables
    return assign_cell_types(
        scores,
        fdr,
        pvalues=pvalues,
        expression=adata,
        core_markers={n: getattr(s, "core", ()) for n, s in library.items()} if core_gate else {},
        marker_genes={n: s.up for n, s in library.items()},
        **{"transcriptome": adata, **options},
    )


def ablation(data: dict, n_null: int, cache: Path | None, directory: Path = LIBRARY):
    """Accuracy, macro-F1 and unassigned fraction per data set, panel variant and
    :data:`ABLATION` setting."""
    rows = []
    for name, (adata, labels) in data.items():
        for variant, panel in variants(name, adata).items():
            library = signatures_for(panel, directory)
            tag = f"{name}_{variant.replace(' ', '_').replace('%', 'pct').replace(',', '')}"
            tables = scored(tag, panel, library, n_null, cache)
            identifiable = identifiable_types(panel, library, labels)
            on_panel = labels.replace(CLASS_FAMILIES).isin(identifiable)
            for setting, options in {ARGMAX: None, **ABLATION}.items():
                calls = (
                    plain_argmax(tables[0])
                    if options is None
                    else assign(panel, library, tables, **options)["cell_type_assigned"]
                )
                result = metrics(labels, calls)
                rows.append(
                    {
                        "data set": name,
                        "panel": variant,
                        "genes": panel.n_vars,
                        "assignment": setting,
                        **{k: result[k] for k in ("accuracy", "macro_f1", "unassigned")},
                        "identifiable types": ", ".join(identifiable),
                        "accuracy identifiable": float(
                            (
                                calls.replace(CLASS_FAMILIES)[on_panel]
                                == labels.replace(CLASS_FAMILIES)[on_panel]
                            ).mean()
                        )
                        if on_panel.any()
                        else float("nan"),
                    }
                )
    return pd.DataFrame(rows)


#: Method name of the label-ceiling row (:func:`label_ceiling`).
CEILING = "supervised on its own labels, 5-fold CV"


def label_ceiling(adata: ad.AnnData, labels: pd.Series, seed: int = 0) -> pd.Series:
    """What a data set's labels support: each covered cell predicted by a logistic regression
    (L2, ``C`` = 0.1, on every gene, standardised) trained on the other four fifths of the
    covered cells *with their labels* (stratified 5-fold, ``seed``); uncovered cells get
    "not covered". Not a competitor — it sees the labels — but what a model learns from the
    labels themselves: where it is far below 1 the labels are noisy or the panel cannot
    separate them, and no label-free method should be expected to do better."""
    from sklearn.linear_model import LogisticRegression
    from sklearn.model_selection import StratifiedKFold, cross_val_predict
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    truth = labels.replace(CLASS_FAMILIES)
    covered = truth.notna().to_numpy()
    x = adata.X[covered]
    x = x.toarray() if sp.issparse(x) else np.asarray(x)
    model = make_pipeline(StandardScaler(), LogisticRegression(C=0.1, max_iter=2000))
    folds = StratifiedKFold(5, shuffle=True, random_state=seed)
    predicted = pd.Series("not covered", index=labels.index, dtype=object)
    predicted[covered] = cross_val_predict(model, x, truth[covered].to_numpy(), cv=folds)
    return predicted


def celltypist_predictions(train: tuple[ad.AnnData, pd.Series], test: ad.AnnData) -> pd.Series:
    """CellTypist (seedsoil.interpret.reference) trained on ``train``'s mapped labels, on the
    genes it shares with ``test``."""
    from seedsoil.interpret.reference import annotate_with_reference, train_reference

    adata, labels = train
    reference = adata.copy()
    reference.obs["type"] = labels.fillna("").replace(CLASS_FAMILIES).to_numpy()
    model = train_reference(reference, "type", genes=test.var_names)
    return annotate_with_reference(test, model)["cell_type_reference"]


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n-null", type=int, default=1000)
    parser.add_argument("--cache", type=Path, default=None)
    parser.add_argument("--ablation", action="store_true", help="panel variants × steps")
    parser.add_argument(
        "--library", type=Path, default=LIBRARY, help="signature YAML directory (default shipped)"
    )
    args = parser.parse_args(argv)
    names = ["pbmc68k_reduced", "wu2020_200", "oligodendroglioma"]
    data = {name: load(name) for name in names}
    if args.ablation:
        table = ablation(data, args.n_null, args.cache, args.library)
        print(table.to_markdown(index=False, floatfmt=".3f"))
        print(sanity(args.n_null, args.cache, args.library).to_markdown(index=False))
        return
    rows = []
    for name in names:
        adata, labels = data[name]
        library = signatures_for(adata, args.library)
        tables = scored(name, adata, library, args.n_null, args.cache)
        calls = assign(adata, library, tables)
        row = {
            "data set": name,
            "method": "signatures (seedsoil)",
            **metrics(labels, calls["cell_type_assigned"]),
        }
        rows.append(row)
        named = panel_labels(labels, library)
        rows.append(
            {
                "data set": name,
                "method": PANEL_COVERED,
                **metrics(named, calls["cell_type_assigned"]),
            }
        )
        audit = label_audit(adata, named)
        rows.append(
            {
                "data set": name,
                "method": AUDITED,
                **metrics(named.where(audit == "consistent"),
                          calls["cell_type_assigned"]),
            }
        )  # fmt: skip
        rows.append(
            {"data set": name, "method": ARGMAX, **metrics(labels, plain_argmax(tables[0]))}
        )
        agrees = calls["cell_type_assigned"].astype(str).replace(CLASS_FAMILIES) == named.replace(
            CLASS_FAMILIES
        )
        print(
            "label audit (types the panel's signatures name):",
            pd.crosstab(
                [named.replace(CLASS_FAMILIES).fillna("not covered"),
                 audit.fillna("")],
                agrees.map({True: "assignment agrees", False: "assignment differs"}),
            ).to_string(),
            sep="\n",
        )  # fmt: skip
        print(
            "assignment calls the cells' markers contradict:",
            contradicted_calls(adata, calls["cell_type_assigned"]),
        )
        print(
            pd.crosstab(labels.fillna("not covered"), calls["cell_type_assigned"]).to_string(), "\n"
        )
        rows.append(
            {"data set": name, "method": CEILING, **metrics(labels, label_ceiling(adata, labels))}
        )
        if not named.equals(labels):  # the ceiling of the panel-named labels, where they differ
            rows.append(
                {
                    "data set": name,
                    "method": f"{CEILING}, types the panel's signatures name",
                    **metrics(named, label_ceiling(adata, named)),
                }
            )
        other = "wu2020_200" if name == "pbmc68k_reduced" else "pbmc68k_reduced"
        predicted = celltypist_predictions(data[other], adata)
        rows.append(
            {
                "data set": name,
                "method": f"CellTypist trained on {other}",
                **metrics(labels, predicted),
            }
        )
    table = pd.DataFrame(rows)
    print(table.to_markdown(index=False, floatfmt=".3f"))


if __name__ == "__main__":
    main()
