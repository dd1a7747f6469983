"""The sample report's communication panel: sender × receiver counts, a dot plot of the top
interactions (the chapter's pairs marked) and tables per sender and for the chapter's pairs."""

from __future__ import annotations

import numpy as np
import pandas as pd
from matplotlib.figure import Figure

from seedsoil.report import plots
from seedsoil.report.context import figure, table

FDR_LEVEL = 0.05
N_TOP = 25
N_CHAPTER = 10
N_PER_SENDER = 30
CHAPTER_MARK = "★ "
TABLE_COLUMNS = [
    "sender", "receiver", "ligand", "receptor", "theme", "score", "ligand_prop",
    "receptor_prop", "pvalue", "fdr", "magnitude_rank", "specificity_rank",
]  # fmt: skip
MAGNITUDE = (
    "Magnitude (score): CellPhoneDB's ligand–receptor mean, the mean of the ligand's expression "
    "in the sender and the receptor's in the receiver (least-expressed subunit of a complex; "
    "log-normalised units): how much of both is there."
)
SPECIFICITY = (
    "Specificity (p-value, FDR): how often shuffling the cell-type labels gives a score at "
    "least as high (1,000 permutations by default): is this pair higher in this sender → "
    "receiver combination than in the sample at large? LIANA+'s magnitude_rank and "
    "specificity_rank aggregate five methods' rankings of the same two aspects (smaller = "
    "stronger)."
)


def _is_chapter(frame: pd.DataFrame) -> pd.Series:
    if "chapter" not in frame:
        return pd.Series(False, index=frame.index)
    return frame["chapter"].astype(str).str.lower().eq("true")


def _ordered(frame: pd.DataFrame) -> pd.DataFrame:
    """Strongest first: by LIANA's aggregate specificity rank when present, else by FDR; then score."""
    keys = ["fdr", "score"]
    if "specificity_rank" in frame and frame["specificity_rank"].notna().any():
        keys = ["specificity_rank", "fdr", "score"]
    ascending = [True] * (len(keys) - 1) + [False]
    return frame.sort_values(keys, ascending=ascending, na_position="last")


def top_interactions(frame: pd.DataFrame) -> pd.DataFrame:
    """The ``N_TOP`` strongest rows with FDR < ``FDR_LEVEL`` (or overall when none), plus the
    ``N_CHAPTER`` strongest rows of the chapter's pairs."""
    ordered = _ordered(frame)
    significant = ordered[ordered["fdr"] < FDR_LEVEL]
    top = (significant if len(significant) else ordered).head(N_TOP)
    chapter = ordered[_is_chapter(ordered)].head(N_CHAPTER)
    return pd.concat([top, chapter[~chapter.index.isin(top.index)]])


def interaction_dots(rows: pd.DataFrame) -> Figure:
    """Dot plot: ligand → receptor (rows; ★ the chapter's pairs) × sender → receiver (columns);
    colour = score (magnitude), size = −log10 p-value (specificity), ring = FDR < 0.05."""
    pair = np.where(_is_chapter(rows), CHAPTER_MARK, "") + rows["ligand"] + " → " + rows["receptor"]
    combo = rows["sender"].astype(str) + " → " + rows["receiver"].astype(str)
    pairs, combos = list(dict.fromkeys(pair)), sorted(set(combo))
    y = pd.Index(pairs).get_indexer(pair)
    x = pd.Index(combos).get_indexer(combo)
    fig = Figure(
        figsize=(min(11.0, 3.5 + 0.3 * len(combos)), 1.6 + 0.24 * len(pairs)), layout="constrained"
    )
    ax = fig.subplots()
    size = 12 + 60 * -np.log10(rows["pvalue"].to_numpy(float)) / 3
    dots = ax.scatter(x, y, s=size, c=rows["score"].to_numpy(float), cmap="viridis")
    strong = rows["fdr"].to_numpy(float) < FDR_LEVEL
    ax.scatter(x[strong], y[strong], s=size[strong], facecolors="none", edgecolors="black", lw=0.8)
    ax.set_xticks(range(len(combos)), [plots.label(c) for c in combos], rotation=60, ha="right")
    ax.set_yticks(range(len(pairs)), [plots.label(p) for p in pairs])
    for tick, text in zip(ax.get_yticklabels(), pairs, strict=True):
        if text.startswith(CHAPTER_MARK):
            tick.set_fontweight("bold")
    ax.set_xlim(-0.7, len(combos) - 0.3)
    ax.set_ylim(len(pairs) - 0.5, -0.5)
    ax.grid(color="#eeeeee", linewidth=0.5)
    ax.set_axisbelow(True)
    bar = fig.colorbar(dots, ax=ax, location="top", shrink=0.6, aspect=30, pad=0.02)
    bar.set_label("score (magnitude)", fontsize=8)
    return fig


def communication_panel(communication: pd.DataFrame | None) -> dict | None:
    """Context of the sample report's communication section (None when there is nothing)."""
    if communication is None or not len(communication):
        return None
    frame = communication.copy()
    for column in ("fdr", "pvalue", "score"):
        frame[column] = frame[column].astype(float)
    types = sorted(set(frame["sender"].astype(str)) | set(frame["receiver"].astype(str)))
    significant = frame["fdr"] < FDR_LEVEL
    counts = (
        significant.groupby([frame["sender"], frame["receiver"]])
        .sum()
        .unstack()
        .reindex(index=types, columns=types)
        .fillna(0)
        .astype(int)
    )
    heat = plots.heatmap(
        counts, cmap="magma", colourbar=f"interactions with FDR < {FDR_LEVEL}", annotate=counts
    )
    columns = [c for c in TABLE_COLUMNS if c in frame]
    ordered = _ordered(frame)
    chapter = ordered[_is_chapter(ordered)]
    per_sender = [
        (str(sender), table(rows.head(N_PER_SENDER)[columns], digits={"pvalue": 2, "fdr": 2}))
        for sender, rows in ordered.groupby("sender", sort=True)
    ]
    n_chapter = int(_is_chapter(frame).sum())
    sentence = (
        f"{len(frame):,} sender → receiver ligand–receptor rows passed the expression filter and "
        f"were tested ({int(significant.sum()):,} with FDR < {FDR_LEVEL}); {n_chapter:,} of them "
        f"are the chapter's curated pairs (★). {MAGNITUDE} {SPECIFICITY}"
    )
    return {
        "sentence": sentence,
        "figure": figure(
            heat,
            f"Senders (rows) → receivers (columns): number of ligand–receptor interactions with "
            f"FDR < {FDR_LEVEL}.",
            "communication heatmap",
        ),
        "dots": figure(
            interaction_dots(top_interactions(frame)),
            f"Top interactions (FDR < {FDR_LEVEL}, strongest by LIANA+'s specificity rank, then "
            f"FDR) and the chapter's strongest pairs (★, bold). Colour: magnitude (score); size: "
            f"specificity (−log10 p-value); black ring: FDR < {FDR_LEVEL}.",
            "communication dot plot",
        ),
        "table": table(_ordered(frame).head(N_TOP)[columns], digits={"pvalue": 2, "fdr": 2}),
        "chapter": table(chapter[columns], digits={"pvalue": 2, "fdr": 2})
        if len(chapter)
        else None,
        "per_sender": per_sender,
    }
