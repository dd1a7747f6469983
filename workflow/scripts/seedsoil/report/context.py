"""Shared pieces of report pages: themes of signatures, cell grouping and table formatting."""

from __future__ import annotations

import numpy as np
import pandas as pd

#: Theme display order and titles; "headline" themes get distributions and embedding panels.
THEMES = {
    "emt": "EMT",
    "ctc": "CTC identity",
    "neutrophil_net": "Neutrophils and NETs",
    "exosome": "Exosomes / extracellular vesicles",
    "immune": "Immune infiltration",
    "identity": "Cell identity",
    "niche": "Metastatic niche",
    "other": "Other",
}
HEADLINE_THEMES = ("emt", "ctc", "neutrophil_net", "exosome", "immune")
#: Theme by name prefix, used when coverage.tsv does not give the theme.
PREFIX_THEMES = {
    "EMT_": "emt",
    "TGFB_": "emt",
    "CTC_": "ctc",
    "NET_": "neutrophil_net",
    "TAN_": "neutrophil_net",
    "EV_": "exosome",
    "IMM_": "immune",
    "ID_": "identity",
    "NICHE_": "niche",
}
#: The signature that stands for a headline theme when it was scored (the first found).
PREFERRED = {
    "emt": ["EMT_bidirectional", "EMT_mesenchymal"],
    "ctc": ["CTC_epithelial_identity"],
    "neutrophil_net": ["NET_formation"],
    "exosome": ["EV_tumour_cargo", "EV_biogenesis"],
    "immune": [],
}
MAX_GROUPS = 20
UNLABELLED = frozenset({"", "unlabelled", "nan", "NA"})


def signature_themes(signatures, coverage: pd.DataFrame | None = None) -> pd.Series:
    """Theme of each signature: coverage.tsv's ``theme`` column, else the name prefix."""
    given = {}
    if coverage is not None and {"signature", "theme"} <= set(coverage.columns):
        given = dict(
            zip(coverage["signature"].astype(str), coverage["theme"].astype(str), strict=False)
        )
    themes = {}
    for name in map(str, signatures):
        theme = given.get(name) or next(
            (t for p, t in PREFIX_THEMES.items() if name.startswith(p)), "other"
        )
        themes[name] = theme if theme in THEMES else "other"
    return pd.Series(themes, dtype=str)


def order_by_theme(themes: pd.Series) -> list[str]:
    """Signature names grouped in :data:`THEMES` order, names kept in given order within."""
    rank = {t: i for i, t in enumerate(THEMES)}
    return sorted(themes.index, key=lambda s: (rank[themes[s]], list(themes.index).index(s)))


def headline_signatures(means: pd.DataFrame, themes: pd.Series, per_theme: int = 4) -> dict:
    """Up to ``per_theme`` signatures per headline theme: preferred names first, then those
    whose mean score varies most across cell types (``means`` = cell types × signatures)."""
    spread = means.var(axis=0).fillna(0)
    chosen = {}
    for theme in HEADLINE_THEMES:
        members = [s for s in themes.index if themes[s] == theme and s in means]
        first = [s for s in PREFERRED[theme] if s in members]
        rest = sorted(set(members) - set(first), key=lambda s: (-spread[s], s))
        if members:
            chosen[theme] = (first + rest)[:per_theme]
    return chosen


def cell_groups(obs: pd.DataFrame, calls: pd.DataFrame | None) -> tuple[pd.Series, str]:
    """Cell-type label per cell and where it came from.

    The dataset's ``obs["cell_type"]`` unless all cells are unlabelled and ``calls`` has
    ``cell_type_assigned``. Beyond :data:`MAX_GROUPS` types the smallest are pooled as
    "other types" so plots stay legible.
    """
    labels = obs.get("cell_type", pd.Series("unlabelled", index=obs.index)).astype(str)
    source = "dataset labels (obs['cell_type'])"
    if set(labels.unique()) <= UNLABELLED and calls is not None and "cell_type_assigned" in calls:
        labels = calls["cell_type_assigned"].reindex(obs.index).fillna("unassigned").astype(str)
        source = "assigned by seedsoil (calls.parquet: cell_type_assigned)"
    counts = labels.value_counts()
    if len(counts) > MAX_GROUPS:
        keep = set(counts.index[: MAX_GROUPS - 1])
        labels = labels.where(labels.isin(keep), "other types")
    return labels, source


def group_order(labels: pd.Series) -> list[str]:
    """Groups by decreasing size, ties by name."""
    counts = labels.value_counts()
    return sorted(counts.index, key=lambda g: (-counts[g], g))


def fmt(value, digits: int = 3) -> str:
    """A cell of an HTML table: integers plain, floats to ``digits`` significant digits."""
    if value is None or (isinstance(value, float | np.floating) and not np.isfinite(value)):
        return "–"
    if isinstance(value, bool | np.bool_):
        return "yes" if value else "no"
    if isinstance(value, int | np.integer):
        return f"{value:,}"
    if isinstance(value, float | np.floating):
        return f"{value:.{digits}g}"
    return str(value)


def table(frame: pd.DataFrame, digits: dict[str, int] | None = None, index: bool = False) -> dict:
    """A DataFrame as ``{"columns": [(name, numeric)], "rows": [[(text, numeric)]]}``."""
    frame = frame.reset_index() if index else frame
    digits = digits or {}
    numeric = [pd.api.types.is_numeric_dtype(frame[c]) for c in frame.columns]
    rows = [
        [
            (fmt(v, digits.get(c, 3)), n)
            for v, c, n in zip(row, frame.columns, numeric, strict=False)
        ]
        for row in frame.itertuples(index=False)
    ]
    return {
        "columns": [(str(c), n) for c, n in zip(frame.columns, numeric, strict=False)],
        "rows": rows,
    }


def figure(fig, caption: str, alt: str) -> dict:
    """A rendered figure for the ``figure`` template macro."""
    return {"uri": _uri(fig), "caption": caption, "alt": alt}


def _uri(fig) -> str:
    from seedsoil.report.plots import to_data_uri

    return to_data_uri(fig)
