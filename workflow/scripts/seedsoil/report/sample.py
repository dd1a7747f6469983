"""The per-sample report's content: one function per section, assembled by
:func:`sample_context` into the dictionary ``templates/sample.html.j2`` renders."""

from __future__ import annotations

import numpy as np
import pandas as pd

from seedsoil.report import plots
from seedsoil.report.context import (
    THEMES,
    cell_groups,
    figure,
    fmt,
    group_order,
    headline_signatures,
    order_by_theme,
    signature_themes,
    table,
)

FDR_LEVEL = 0.05
#: Longest list value shown in the QC settings table.
MAX_LISTED = 10
TOC = [
    ("overview", "Overview"),
    ("qc", "Quality control"),
    ("coverage", "Signature coverage"),
    ("cell-types", "Cell types"),
    ("scores", "Scores by cell type"),
    ("embedding", "Embedding"),
    ("ctc", "CTC candidates"),
    ("neutrophils", "Neutrophils and NETs"),
    ("immune", "Immune composition"),
    ("clusters", "Heterotypic clusters"),
    ("communication", "Communication"),
    ("files", "Per-cell tables"),
    ("methods", "Methods and caveats"),
]


def sample_context(
    adata, *, scores, coverage, fdr, calls, communication, interpretation, config
) -> dict:
    """Everything the sample template shows (strings are escaped by the template)."""
    meta = dict(adata.uns.get("seedsoil", {}))
    obs = adata.obs
    sample = _mode(obs, "sample", "unnamed sample")
    labels, label_source = cell_groups(obs, calls)
    order = group_order(labels)
    colours = plots.category_colours(order)
    themes = signature_themes(scores.columns, coverage)
    signatures = order_by_theme(themes)
    # Group all columns and order the small result: scores[signatures] would copy an atlas's table.
    means = scores.groupby(labels.to_numpy()).mean()[signatures].reindex(order)
    headline = headline_signatures(means, themes)
    coords = _embedding(adata)
    context = {
        "title": f"seedsoil report — {sample}",
        "sample": sample,
        "dataset": str(meta.get("dataset", "unknown dataset")),
        "condition": _mode(obs, "condition", "NA"),
        "facts": _facts(adata, scores, labels, meta),
        "warnings": [str(w) for w in meta.get("warnings", [])],
        "provenance": _provenance(meta),
        "qc": _qc(adata, meta.get("qc", {})),
        "coverage": _coverage(coverage, scores, fdr),
        "groups": _groups(labels, order, colours, label_source),
        "assignment": _assignment(calls, obs),
        "scores": _scores(scores, means, themes, signatures, headline, labels, order, colours),
        "embedding": _embedding_section(coords, labels, colours, scores, headline, meta),
        "ctc": _ctc(calls, labels, order, coords, interpretation, adata),
        "neutrophils": _neutrophils(scores, themes, labels, coords),
        "immune": _immune(interpretation),
        "clusters": _clusters(calls, labels),
        "communication": _communication(communication),
        "empty_because": _absent_reasons(communication, interpretation),
        "interpretation": _interpretation_rows(interpretation),
        "methods": _methods(config, meta, fdr is not None, scores.attrs.get("scoring")),
    }
    context["toc"] = [(i, name, context.get(_key(i), True) is not None) for i, name in TOC]
    return context


def _key(section_id: str) -> str:
    return {"cell-types": "groups", "overview": "facts", "files": "methods"}.get(
        section_id, section_id
    )


def _mode(obs: pd.DataFrame, column: str, default: str) -> str:
    if column not in obs or not len(obs):
        return default
    return str(obs[column].astype(str).mode().iloc[0])


def _embedding(adata) -> np.ndarray | None:
    """The first two columns of ``obsm["X_embedding"]``; None without it or when no cell has
    finite coordinates."""
    coords = adata.obsm.get("X_embedding") if hasattr(adata, "obsm") else None
    if coords is None:
        return None
    coords = np.asarray(coords, dtype=float)
    if coords.ndim != 2 or coords.shape[1] < 2:
        return None
    coords = coords[:, :2]
    return coords if np.isfinite(coords).all(axis=1).any() else None


def _shown_note(coords: np.ndarray, among: np.ndarray | None = None, what: str = "cells") -> str:
    """Caption sentence saying how many of the cells (of ``among``) the plot draws
    (:func:`plots.shown_cells`) and how many have coordinates; empty when all are drawn."""
    placed = np.isfinite(coords).all(axis=1)
    total = coords.shape[0] if among is None else int(np.count_nonzero(among))
    located = int(np.count_nonzero(placed if among is None else placed & among))
    drawn = min(located, plots.MAX_POINTS)
    if drawn == total:
        return ""
    detail = []
    if located < total:
        detail.append(f"{located:,} have embedding coordinates")
    if drawn < located:
        detail.append("a seeded random subsample" + (" of those" if detail else ""))
    return f" {drawn:,} of {total:,} {what} shown ({'; '.join(detail)})."


def _facts(adata, scores, labels, meta) -> list[tuple[str, str]]:
    return [
        ("cells after QC", fmt(int(adata.n_obs))),
        ("genes", fmt(int(adata.n_vars))),
        ("cell types", fmt(int(labels.nunique()))),
        ("signatures scored", fmt(int(scores.shape[1]))),
        ("species", str(meta.get("species", "not recorded"))),
        ("input scale", str(meta.get("input_scale", "not recorded"))),
    ]


def _provenance(meta: dict) -> list[tuple[str, str]]:
    provenance = dict(meta.get("provenance", {}) or {})
    rows = [
        (key, str(provenance.pop(key, "not recorded")))
        for key in ("publication", "accession", "licence", "url", "sha256")
    ]
    rows += [(str(k), str(v)) for k, v in provenance.items()]
    rows += [
        (k, str(meta[k]))
        for k in ("description", "source", "format", "counts_source")
        if meta.get(k) not in (None, "")
    ]
    # an empty record says "not recorded", not an empty cell
    return [(k, v if v else "not recorded") for k, v in rows]


def _flatten(qc: dict, prefix: str = "") -> dict:
    flat = {}
    for key, value in qc.items():
        name = f"{prefix}{key}"
        if isinstance(value, dict):
            flat.update(_flatten(value, f"{name}."))
        else:
            flat[name] = value
    return flat


def _qc_thresholds(flat: dict) -> dict[str, list[float]]:
    """Numeric QC settings named min…/max… for counts, genes or mito, per obs column.

    Only top-level settings are thresholds: nested entries such as ``failed.max_mito_fraction``
    are counts of failed cells, not values on the metric's axis."""
    lines: dict[str, list[float]] = {}
    for key, value in flat.items():
        if not isinstance(value, int | float) or isinstance(value, bool) or "." in str(key):
            continue
        name = str(key).rsplit(".", 1)[-1].lower()
        if not name.startswith(("min", "max")):
            continue
        column = "mito_fraction" if "mito" in name else "n_genes" if "gene" in name else None
        column = column or ("n_counts" if "count" in name or "umi" in name else None)
        if column:
            lines.setdefault(column, []).append(float(value))
    return lines


def _qc(adata, qc: dict) -> dict:
    qc = dict(qc or {})
    reason_keys = [
        k
        for k, v in qc.items()
        if isinstance(v, dict) and any(w in str(k).lower() for w in ("reason", "remov"))
    ]
    # the sample's reason counts include the cells kept ("kept"), which were not removed
    removed = {str(r): n for k in reason_keys for r, n in qc[k].items() if str(r) != "kept"}
    flat = _flatten({k: v for k, v in qc.items() if k not in reason_keys})
    # Per-cell lists (e.g. the sample's QC metrics) are plotted below, not listed.
    settings = [(k, fmt(v)) for k, v in flat.items() if np.size(v) <= MAX_LISTED]
    removed_table = None
    if removed:
        frame = pd.DataFrame({"reason": list(removed), "cells": list(removed.values())})
        removed_table = table(frame)
    kept = int(adata.n_obs)
    sentence = f"{kept:,} cells passed quality control and are analysed in this report."
    fig = plots.qc_distributions(
        adata.obs,
        _qc_thresholds(_flatten(qc)),
        on_counts=qc.get("metrics_on", "counts") == "counts",
    )
    caption = (
        "Distributions over the cells kept, after QC. Dashed red lines: QC thresholds recorded "
        "by the ingest step (when any)."
    )
    return {
        "sentence": sentence,
        "removed": removed_table,
        "settings": settings,
        "figure": figure(fig, caption, "QC metric histograms"),
    }


def _coverage(coverage, scores, fdr) -> dict:
    if coverage is None or not len(coverage):
        return {"sentence": "", "table": None}
    frame = coverage.copy()
    defaults = {"theme": "", "scored": True, "reason": "", "missing": "", "scored_by": ""}
    defaults |= {"core_groups": 0, "core_groups_present": 0, "core_genes_present": ""}
    defaults |= {"alternates_present": ""}
    for column, default in defaults.items():
        if column not in frame:
            frame[column] = default
    text_columns = ("reason", "scored_by", "core_genes_present", "alternates_present")
    frame = frame.fillna(dict.fromkeys(text_columns, ""))
    scored = frame["scored"].astype(bool)
    by_core = scored & (frame["scored_by"].astype(str) == "core")
    rows = pd.DataFrame(
        {
            "signature": frame["signature"].astype(str),
            "theme": frame["theme"].astype(str),
            "present / total": [
                f"{int(p)} / {int(n)}"
                for p, n in zip(frame["n_present"], frame["n_genes"], strict=False)
            ],
            "fraction": frame["fraction"].astype(float).round(2),
            "status": [_coverage_status(row) for row in frame.to_dict("records")],
            "missing genes": [_genes(m) for m in frame["missing"].fillna("")],
        }
    )
    if fdr is not None:
        significant = (fdr < FDR_LEVEL).sum(axis=0)
        rows.insert(
            4,
            f"cells FDR < {FDR_LEVEL}",
            [int(significant.get(s, 0)) if s in fdr else np.nan for s in rows["signature"]],
        )
    sentence = (
        f"{int(scored.sum())} of {len(frame)} signatures were scored; a signature is skipped when "
        "too few of its genes are measured in this dataset and its core markers do not make up "
        "for it. Low coverage makes a score less specific: read it with the missing genes in mind."
    )
    if by_core.any():
        sentence += (
            f" {int(by_core.sum())} of them are scored on reduced coverage because enough of "
            "their core markers are measured (status names the markers present)."
        )
    return {"sentence": sentence, "table": table(rows)}


def _coverage_status(row: dict) -> str:
    """Status cell: scored by coverage, scored by core (naming the core markers present), or
    why the signature was skipped (plain "scored" for tables without ``scored_by``)."""
    if not bool(row["scored"]):
        return f"skipped: {row['reason']}"
    if str(row["scored_by"]) != "core":
        return f"scored by {row['scored_by']}" if row["scored_by"] else "scored"
    markers = [
        g for g in f"{row['core_genes_present']},{row['alternates_present']}".split(",") if g
    ]
    return (
        f"scored by core ({int(row['core_groups_present'])} of {int(row['core_groups'])} core "
        f"groups: {_genes(','.join(markers))}) at reduced coverage"
    )


def _genes(missing: str, shown: int = 12) -> str:
    genes = [g for g in str(missing).split(",") if g.strip()]
    if not genes:
        return "–"
    more = f" … (+{len(genes) - shown} more)" if len(genes) > shown else ""
    return ", ".join(g.strip() for g in genes[:shown]) + more


def _groups(labels, order, colours, source) -> dict:
    counts = labels.value_counts().reindex(order)
    fig = plots.bars(counts, xlabel="cells", colours=colours)
    sentence = f"Cell types come from {source}. {len(order)} types; largest first."
    return {"sentence": sentence, "figure": figure(fig, "Cells per cell type.", "cell counts")}


def _assignment(calls, obs) -> dict | None:
    """Signature-based assignment: cells, median confidence and the markers that carried the calls
    per assigned type, and the confusion with the dataset's labels (and with the reference-based
    annotation) when they exist."""
    from seedsoil.interpret.celltypes import UNASSIGNED, confusion_table, has_labels

    if calls is None or "cell_type_assigned" not in calls:
        return None
    assigned = calls["cell_type_assigned"].fillna(UNASSIGNED).astype(str)
    confidence = calls.get("assignment_confidence", pd.Series(np.nan, index=calls.index))
    markers = calls.get("assignment_markers", pd.Series("", index=calls.index)).fillna("")
    method = calls.get("assignment_method", pd.Series("", index=calls.index)).fillna("")
    rows = []
    for kind, cells in assigned.groupby(assigned, sort=False).groups.items():
        genes = markers.loc[cells].str.split(",").explode()
        genes = genes[genes != ""].value_counts().head(3)
        shares = method.loc[cells][lambda m: m != ""].value_counts(normalize=True)
        rows.append(
            {
                "assigned type": kind,
                "cells": len(cells),
                "median confidence": float(confidence.loc[cells].median()),
                "markers most often carrying the call": ", ".join(genes.index),
                "called by": ", ".join(f"{name} {share:.0%}" for name, share in shares.items()),
            }
        )
    summary = pd.DataFrame(rows).sort_values("cells", ascending=False)
    frac = float((assigned == UNASSIGNED).mean()) if len(assigned) else 0.0
    sentence = (
        f"Signature-based assignment: {1 - frac:.1%} of cells assigned, median confidence "
        f"{float(confidence[assigned != UNASSIGNED].median()) if (assigned != UNASSIGNED).any() else 0:.2f} "
        "(posterior probability of the called type; see docs/interpretation.md)."
    )
    filled_in = {
        "classifier": "had too little evidence of their own for a subtype and were typed by a "
        "classifier trained on this sample's confidently typed cells; their confidence is its "
        "probability",
        "transcriptome neighbours": "showed too few marker genes for any call and were typed "
        "by the majority of their nearest cells in the whole transcriptome; their confidence "
        "is that majority's share",
    }
    for how, what in filled_in.items():
        n = int((method == how).sum())
        if n:
            sentence += f' {n} cells ({n / len(assigned):.1%}) {what} ("called by: {how}").'
    comparisons = []
    cells_labels = obs["cell_type"].reindex(calls.index) if "cell_type" in obs else None
    if cells_labels is not None and has_labels(cells_labels):
        comparisons.append(("dataset label", confusion_table(cells_labels, assigned)))
    reference = calls.get("cell_type_reference", pd.Series("", index=calls.index)).fillna("")
    if (reference != "").any():
        comparisons.append(("reference annotation", confusion_table(reference, assigned)))
    return {
        "sentence": sentence,
        "table": table(summary, {"median confidence": 2}),
        "confusions": [
            (
                f"Cells by {name} (rows) and signature-based type (columns).",
                table(t.rename_axis(name), index=True),
            )
            for name, t in comparisons
        ],
    }


def _scores(scores, means, themes, signatures, headline, labels, order, colours) -> dict:
    scaled = (means - means.mean()) / means.std(ddof=0).replace(0, np.nan)
    heat = plots.heatmap(
        scaled.T,
        cmap="RdBu_r",
        centre=0.0,
        colourbar="z-score across cell types",
        row_groups=themes.map(THEMES),
    )
    caption = (
        "Mean score per cell type (columns) and signature (rows, grouped by theme). Colour: the "
        "cell-type means of each signature standardised across cell types (red = highest in "
        "that type), so each row reads on its own scale; raw means are in the table below. "
        "Grey: not defined (a signature constant across cell types, or not scored in this sample)."
    )
    distributions = []
    for theme, members in headline.items():
        fig = plots.boxplots(scores[members], labels, colours, order)
        text = (
            f"{THEMES[theme]}: score per cell by cell type (box: quartiles and median; whiskers: "
            "1.5 × IQR; outliers not drawn)."
        )
        distributions.append(figure(fig, text, f"{THEMES[theme]} score distributions"))
    return {
        "heatmap": figure(heat, caption, "heatmap of mean scores"),
        "means": table(means.T.rename_axis("signature"), index=True),
        "distributions": distributions,
    }


def _embedding_section(coords, labels, colours, scores, headline, meta) -> dict | None:
    if coords is None:
        return None
    source = str(meta.get("embedding", "not recorded"))
    note = _shown_note(coords)
    fig = plots.embedding_categories(coords, labels, colours, "cell type")
    by_type = figure(fig, f"Embedding coloured by cell type.{note}", "embedding by type")
    columns = [members[0] for members in headline.values()]
    by_score = None
    if columns:
        fig = plots.embedding_values(coords, scores[columns])
        caption = (
            "Embedding coloured by one signature per headline theme (viridis; highest-scoring "
            f"cells drawn on top).{note}"
        )
        by_score = figure(fig, caption, "embedding by score")
    located = int(np.isfinite(coords).all(axis=1).sum())
    sentence = f"Coordinates: {source}."
    if located < coords.shape[0]:
        sentence += (
            f" {located:,} of {coords.shape[0]:,} cells have coordinates; cells without are "
            "left out of the embedding plots."
        )
    return {"sentence": sentence, "by_type": by_type, "by_score": by_score}


#: Genes of the CTC marker check: the epithelial core (called cells should detect them), CD45
#: and the myeloid LYZ/S100A8 (contaminating blood cells of CTC enrichments; should stay uncalled).
CTC_CHECK_GENES = ("EPCAM", "KRT8", "KRT18", "KRT19", "KRT7", "PTPRC", "LYZ", "S100A8")


def _ctc_markers(adata, candidate: np.ndarray) -> dict | None:
    """Fraction of candidates and of other cells detecting each of :data:`CTC_CHECK_GENES`,
    read from ``adata.obsm["ctc_markers"]`` (a cells × genes DataFrame, as the report rule
    reads them with ``seedsoil.cellfile.read_genes``) or else from ``adata.X``; None when no
    gene is available or no cell is a candidate."""
    from seedsoil.interpret.ctc import gene_column

    if adata is None or not candidate.any():
        return None
    stored = adata.obsm.get("ctc_markers") if hasattr(adata, "obsm") else None
    rows = []
    for gene in CTC_CHECK_GENES:
        if isinstance(stored, pd.DataFrame):
            column = stored[gene].to_numpy(float) if gene in stored else None
        else:
            column = gene_column(adata, gene) if getattr(adata, "X", None) is not None else None
        if column is None or column.shape[0] != candidate.size:
            continue
        detected = column > 0
        rows.append(
            {
                "gene": gene,
                f"CTC candidates (n={int(candidate.sum()):,})": detected[candidate].mean(),
                f"other cells (n={int((~candidate).sum()):,})": (
                    detected[~candidate].mean() if (~candidate).any() else np.nan
                ),
            }
        )
    return table(pd.DataFrame(rows)) if rows else None


def ctc_candidates(calls) -> np.ndarray | None:
    """Per cell of ``calls``, whether it is a CTC candidate (missing calls count as not);
    None when ``calls`` has no ``ctc_candidate`` column."""
    if calls is None or "ctc_candidate" not in calls:
        return None
    return calls["ctc_candidate"].fillna(False).astype(bool).to_numpy()


def needs_ctc_markers(calls) -> bool:
    """Whether the report's CTC marker check (:func:`_ctc_markers`) has anything to show, so
    the columns of :data:`CTC_CHECK_GENES` are worth reading: some cell is a CTC candidate.
    Reading them is a pass over the whole matrix, the report's costliest step at atlas size."""
    candidate = ctc_candidates(calls)
    return candidate is not None and bool(candidate.any())


def _ctc(calls, labels, order, coords, interpretation, adata=None) -> dict | None:
    candidate = ctc_candidates(calls)
    if candidate is None:
        return None
    n = int(candidate.sum())
    sentence = (
        f"{n:,} of {len(candidate):,} cells ({n / max(len(candidate), 1):.1%}) are CTC candidates."
    )
    frame = pd.DataFrame({"cell type": labels.to_numpy()[candidate]})
    if "ctc_class" in calls:
        frame.insert(0, "class", calls["ctc_class"].fillna("").astype(str).to_numpy()[candidate])
    if "emt_state" in calls:
        frame["EMT state"] = calls["emt_state"].fillna("").astype(str).to_numpy()[candidate]
    result = {"sentence": sentence, "support": None, "table": None, "figures": []}
    result["markers"] = _ctc_markers(adata, candidate)
    if interpretation and "ctc_support" in interpretation:
        result["support"] = str(interpretation["ctc_support"])
    if n:
        by = list(frame.columns)
        counts = frame.value_counts(by).rename("cells").reset_index()
        result["table"] = table(counts.sort_values("cells", ascending=False))
        if coords is not None:
            fig = plots.embedding_highlight(coords, candidate, "CTC candidates", "CTC candidate")
            note = _shown_note(coords, candidate, "CTC candidates")
            note += _shown_note(coords, ~candidate, "other cells")
            result["figures"].append(
                figure(fig, f"CTC candidates (red) on the embedding.{note}", "CTC map")
            )
    if "ctc_confidence" in calls:
        values = calls["ctc_confidence"].to_numpy(float)[candidate] if n else []
        if n:
            fig = plots.histogram(values, xlabel="CTC confidence", bins=20)
            result["figures"].append(
                figure(fig, "Confidence of the CTC candidates (0–1).", "CTC confidence histogram")
            )
    return result


def _neutrophils(scores, themes, labels, coords) -> dict | None:
    members = [s for s in themes.index if themes[s] == "neutrophil_net" and s in scores]
    members += [s for s in ("IMM_neutrophil",) if s in scores]
    if not members:
        return None
    mask = labels.str.contains("neutrophil", case=False).to_numpy()
    n = int(mask.sum())
    rows = pd.DataFrame(
        {
            "signature": members,
            f"neutrophils (n={n:,})": [
                scores[s].to_numpy(float)[mask].mean() if n else np.nan for s in members
            ],
            f"other cells (n={int((~mask).sum()):,})": [
                scores[s].to_numpy(float)[~mask].mean() for s in members
            ],
        }
    )
    sentence = (
        f"{n:,} cells carry a neutrophil label. NET formation is a neutrophil programme, so its "
        "score is most informative within neutrophils."
        if n
        else "No cell carries a neutrophil label in this sample; scores below are for all cells."
    )
    figures = []
    if n and coords is not None:
        fig = plots.embedding_highlight(coords, mask, "neutrophils", "neutrophil")
        note = _shown_note(coords, mask, "neutrophils") + _shown_note(coords, ~mask, "other cells")
        caption = f"Neutrophils (red) on the embedding.{note}"
        figures.append(figure(fig, caption, "neutrophil map"))
    return {"sentence": sentence, "table": table(rows), "figures": figures}


def _absent_reasons(communication, interpretation) -> dict[str, str]:
    """Why a panel is empty: its file was not given, or was computed and holds nothing."""
    return {
        "communication": "communication.tsv not given to the report"
        if communication is None
        else "communication.tsv has no rows: no cell type had interpretation.min_cells cells, or "
        "no curated ligand–receptor pair had all its genes in the data (see interpretation.json)",
        "immune": "interpretation.json not given to the report"
        if interpretation is None
        else "interpretation.json lists no immune cell type in this sample",
    }


def _immune(interpretation) -> dict | None:
    composition = next(
        (
            v
            for k, v in (interpretation or {}).items()
            if "immune" in k and "composition" in k and isinstance(v, dict)
        ),
        None,
    )
    if not composition:
        return None
    series = pd.Series({str(k): float(v) for k, v in composition.items()}).sort_values(
        ascending=False
    )
    fig = plots.bars(series, xlabel="fraction of immune cells")
    return {
        "sentence": "Immune cell types as fractions of the immune cells of this sample "
        "(interpretation step).",
        "figure": figure(fig, "Immune composition.", "immune composition bars"),
    }


def _clusters(calls, labels) -> dict | None:
    if calls is None or "heterotypic_cluster" not in calls:
        return None
    kinds = calls["heterotypic_cluster"].fillna("").astype(str)
    flagged = kinds != ""
    n = int(flagged.sum())
    sentence = (
        f"{n:,} cells are flagged as possible heterotypic clusters (e.g. a CTC bound to a "
        "neutrophil or platelets), or as doublet-like. Droplet data cannot separate true "
        "clusters from doublets with certainty."
    )
    if not n:
        return {"sentence": sentence, "table": None}
    frame = pd.DataFrame(
        {"kind": kinds[flagged].to_numpy(), "cell type": labels[flagged.to_numpy()]}
    )
    counts = frame.value_counts(["kind", "cell type"]).rename("cells").reset_index()
    return {"sentence": sentence, "table": table(counts)}


def _communication(communication) -> dict | None:
    from seedsoil.report.communication_view import communication_panel

    return communication_panel(communication)


def _interpretation_rows(interpretation) -> list[tuple[str, str]] | None:
    """Scalar entries, and flat dicts as "key: value" lists; nested tables and lists (shown
    in their own panels, e.g. top communication pairs) are left out."""
    if not interpretation:
        return None
    rows = []
    for key, value in interpretation.items():
        if isinstance(value, dict):
            if any(isinstance(v, dict | list) for v in value.values()):
                continue
            value = ", ".join(f"{k}: {fmt(v)}" for k, v in value.items()) or "–"
        elif isinstance(value, list):
            continue
        rows.append((str(key).replace("_", " "), fmt(value)))
    return rows


def _rank_window(record) -> str:
    """One sentence on UCell's rank window as scoring resolved it (``scores.attrs["scoring"]``)."""
    if not isinstance(record, dict) or "max_rank" not in record:
        return ""
    how = (
        f"chosen from this sample's depth (a quarter of its cells detect fewer genes; median "
        f"{record['median_genes_detected']:,} of {record['n_genes_panel']:,} in the data)"
        if str(record.get("max_rank_rule", "")).startswith("auto")
        else "as configured"
    )
    return f" UCell ranks the top {record['max_rank']:,} genes of each cell, {how}."


def _methods(config, meta, has_pvalues: bool, scoring_record=None) -> list[tuple[str, str]]:
    from seedsoil.report.html import METHOD_TEXT

    scoring = (config or {}).get("scoring", {}) if isinstance(config, dict) else {}
    method = str(scoring.get("method", "ucell") if isinstance(scoring, dict) else scoring)
    text = METHOD_TEXT.get(method.lower(), f"Method '{method}' as configured.")
    paragraphs = [
        (
            "Scores.",
            f"{text} Each signature's genes come from the seedsoil signature library; genes "
            "absent from this dataset are listed in the coverage table and left out."
            + _rank_window(scoring_record),
        ),
        (
            "What p-values mean.",
            (
                "Each cell's score is compared with the scores of random gene sets matched to the "
                "signature in size and expression; the empirical p-value is the share of random "
                "sets scoring higher (ties shared at random, so shallow and deep cells are judged "
                "alike; a cell expressing none of the signature's genes is never significant), "
                "and the FDR is Benjamini–Hochberg across the cells "
                "of this sample. A small FDR says that this cell expresses the signature more than "
                "random genes of similar expression — not that the cell is of a given type, and not "
                "that the sample differs from another sample. Comparisons between conditions are in "
                "the cohort report, on samples as replicates."
                if has_pvalues
                else "No p-values were computed for this sample."
            ),
        ),
        (
            "Caveats.",
            "Signature scores measure transcriptional programmes, not cell states with "
            "certainty: a high EMT or CTC score is a hypothesis for follow-up. Scores of different "
            "signatures are not on a common scale. Cell-type labels come from the dataset or from "
            "marker-based assignment and inherit their errors.",
        ),
    ]
    if meta.get("version"):
        paragraphs.append(("Provenance.", f"Ingested with seedsoil {meta['version']}."))
    return paragraphs
