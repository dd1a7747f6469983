"""The cohort index's content, assembled for ``templates/cohort.html.j2``."""

from __future__ import annotations

import numpy as np
import pandas as pd

from seedsoil.report import plots
from seedsoil.report.cohort import NO_CONDITION
from seedsoil.report.context import THEMES, figure, fmt, order_by_theme, signature_themes, table

FDR_LEVEL = 0.05
MAX_SSGSEA_ROWS = 60
TOC = [
    ("samples", "Samples"),
    ("heatmap", "Samples × signatures"),
    ("conditions", "Condition comparison"),
    ("communication", "Communication by condition"),
    ("ssgsea", "Pseudobulk ssGSEA"),
    ("files", "Tables"),
    ("methods", "Methods and caveats"),
]


def cohort_context(
    summary,
    sample_reports,
    tests,
    ssgsea,
    *,
    condition="condition",
    within="dataset",
    communication_tests=None,
) -> dict:
    """Everything the cohort template shows (strings are escaped by the template)."""
    context = {
        "title": "seedsoil cohort report",
        "facts": [
            ("datasets", fmt(int(summary["dataset"].nunique()))),
            ("samples", fmt(len(summary))),
            ("cells", fmt(int(summary["n_cells"].sum())) if "n_cells" in summary else "–"),
            ("conditions", fmt(len(_conditions(summary, condition)))),
        ],
        "samples": _samples(summary, sample_reports, condition),
        "heatmap": _heatmap(summary),
        "conditions": _conditions_section(tests, summary, condition, within),
        "ssgsea": _ssgsea(ssgsea),
    }
    context["communication"] = communication_section(communication_tests, within)
    context["toc"] = [(i, name, context.get(i, True) is not None) for i, name in TOC]
    return context


def _conditions(summary, condition) -> list[str]:
    if condition not in summary:
        return []
    return sorted(set(summary[condition].astype(str)) - NO_CONDITION)


def _samples(summary, sample_reports, condition) -> dict:
    extra = [c for c in ("n_cells", "frac_ctc", "n_ctc_candidates") if c in summary]
    rows = []
    for record in summary.to_dict("records"):
        key = (str(record["dataset"]), str(record["sample"]))
        rows.append(
            {
                "dataset": key[0],
                "sample": key[1],
                "href": sample_reports.get(key),
                "condition": str(record.get(condition, "NA")),
                "values": [fmt(record[c]) for c in extra],
            }
        )
    return {"columns": extra, "rows": rows}


def _mean_columns(summary) -> pd.DataFrame:
    columns = [c for c in summary.columns if str(c).startswith("mean:")]
    means = summary[columns].astype(float)
    means.columns = [c[len("mean:") :] for c in columns]
    single = summary["dataset"].nunique() == 1
    means.index = [
        s if single else f"{d} · {s}"
        for d, s in zip(summary["dataset"], summary["sample"], strict=False)
    ]
    return means


def _heatmap(summary) -> dict | None:
    means = _mean_columns(summary)
    if means.empty:
        return None
    themes = signature_themes(means.columns)
    order = order_by_theme(themes)
    scaled = (means - means.mean()) / means.std(ddof=0).replace(0, np.nan)
    fig = plots.heatmap(
        scaled[order].T,
        cmap="RdBu_r",
        centre=0.0,
        colourbar="z-score across samples",
        row_groups=themes.map(THEMES),
    )
    caption = (
        "Mean score per sample (columns) and signature (rows, grouped by theme), standardised "
        "across samples for each signature (red = highest). Grey: constant across samples, or not scored in that sample. "
        "Samples of different datasets differ also by technology and gene coverage."
    )
    return {
        "figure": figure(fig, caption, "samples by signatures heatmap"),
        "table": table(means[order].rename_axis("sample"), index=True),
    }


def _families_sentence(within) -> str:
    """Which samples a comparison uses and which FDR family it belongs to (cohort.compare_within)."""
    if within == "dataset":
        return (
            "Conditions are compared within each dataset (never across technologies), and each "
            "FDR is Benjamini–Hochberg over its dataset's comparisons (column family)."
        )
    return (
        "Conditions are compared across every dataset of the cohort (config "
        "cohort.compare_within: null), and every FDR is Benjamini–Hochberg over all the "
        "comparisons (family cohort): differences may come from technology or gene panel."
    )


def _conditions_section(tests, summary, condition, within="dataset") -> dict | None:
    groups = _conditions(summary, condition)
    if len(groups) < 2 or tests.empty:
        return None
    counts = summary[condition].astype(str).value_counts()
    shown = tests.sort_values(["pvalue", "statistic"], na_position="last").head(40)
    n_significant = int((tests["fdr"] < FDR_LEVEL).sum())
    sentence = (
        f"Conditions: {', '.join(f'{g} ({counts[g]} samples)' for g in groups)}. "
        f"{len(tests)} comparisons, {n_significant} with FDR < {FDR_LEVEL}. "
        f"{_families_sentence(within)} Each sample contributes one value (its mean score or "
        "fraction); cells are never treated as replicates."
    )
    return {
        "sentence": sentence,
        "table": table(shown, digits={"pvalue": 2, "fdr": 2}),
        "n_rows": len(tests),
    }


def _ssgsea(ssgsea) -> dict | None:
    if ssgsea is None or ssgsea.empty:
        return None
    # samples are keyed by dataset too: two datasets may both have a sample "P1"
    frame = ssgsea.assign(
        row=ssgsea["dataset"] + "/" + ssgsea["sample"] + " · " + ssgsea["cell_type"],
        dataset_cell_type=ssgsea["dataset"] + " · " + ssgsea["cell_type"],
    )
    per_row = frame["row"].nunique() <= MAX_SSGSEA_ROWS
    key = "row" if per_row else "dataset_cell_type"
    matrix = frame.pivot_table(index=key, columns="signature", values="nes", aggfunc="mean")
    themes = signature_themes(matrix.columns)
    matrix = matrix[order_by_theme(themes)]
    fig = plots.heatmap(matrix, cmap="RdBu_r", centre=0.0, colourbar="NES")
    what = (
        "dataset/sample · cell type pseudobulk"
        if per_row
        else "dataset · cell type (mean NES over the dataset's samples)"
    )
    caption = (
        f"ssGSEA normalised enrichment score per {what} (rows) and signature (columns). NES is "
        "the enrichment score divided by the range of scores of its dataset's run: compare "
        "within a dataset."
    )
    return {
        "figure": figure(fig, caption, "ssGSEA heatmap"),
        "sentence": f"{len(ssgsea):,} scores for {frame['row'].nunique()} pseudobulks.",
    }


def communication_section(tests, within="dataset") -> dict | None:
    """Interactions compared between conditions (``communication_tests.tsv``), strongest first."""
    if tests is None or tests["pvalue"].notna().sum() == 0:
        return None  # e.g. one sample per condition: rows listed in the file, none testable
    tested = tests[tests["pvalue"].notna()]
    shown = tested.sort_values(["pvalue", "chapter"], ascending=[True, False]).head(40)
    chapter = tested[tested["chapter"].astype(bool)].sort_values("pvalue").head(20)
    n_significant = int((tests["fdr"] < FDR_LEVEL).sum())
    sentence = (
        f"{len(tested):,} interaction × condition-pair comparisons in "
        f"{tests['family'].nunique()} FDR famil{'y' if tests['family'].nunique() == 1 else 'ies'}"
        f", {n_significant} with FDR < {FDR_LEVEL}. {_families_sentence(within)} "
        "Each sample contributes one magnitude per interaction (CellPhoneDB's ligand–receptor "
        "mean; 0 where the pair is below the expression filter); samples are the replicates."
    )
    columns = ["family", "sender", "receiver", "ligand", "receptor", "group_a", "group_b",
               "n_a", "n_b", "effect", "pvalue", "fdr"]  # fmt: skip
    return {
        "sentence": sentence,
        "table": table(shown[columns], digits={"pvalue": 2, "fdr": 2}),
        "chapter": table(chapter[columns], digits={"pvalue": 2, "fdr": 2})
        if len(chapter)
        else None,
        "n_rows": len(tested),
    }
