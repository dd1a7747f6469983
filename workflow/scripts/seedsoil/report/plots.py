"""Static figures for the reports, drawn with matplotlib's Agg canvas and embedded as PNG.

Every function takes plain arrays/DataFrames and returns a :class:`matplotlib.figure.Figure`;
:func:`to_data_uri` turns one into a ``data:`` URI so the HTML needs no other file and makes
no network request. Figures are built without pyplot (no global state, no GUI backend).
"""

from __future__ import annotations

import base64
import io

import numpy as np
import pandas as pd
from matplotlib import colormaps, rcParams
from matplotlib.colors import TwoSlopeNorm
from matplotlib.figure import Figure

#: Most cells drawn in one embedding scatter; beyond it a seeded random subsample is drawn (reruns
#: give the same figure). 50,000 points already cover a report-sized panel (more only overdraw),
#: keep a population of 0.1% of the cells visible as ~50 points, and draw in well under a second,
#: whereas an atlas of 10^6 cells would take tens of seconds per panel for the same picture.
MAX_POINTS = 50_000
DPI = 110

rcParams.update(
    {
        "font.size": 9,
        "axes.titlesize": 10,
        "axes.spines.top": False,
        "axes.spines.right": False,
        "axes.titleweight": "bold",
        "figure.dpi": DPI,
    }
)


def to_data_uri(fig: Figure) -> str:
    """PNG ``data:`` URI of ``fig``."""
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=DPI, bbox_inches="tight", facecolor="white")
    return "data:image/png;base64," + base64.b64encode(buffer.getvalue()).decode("ascii")


def label(text, width: int = 40) -> str:
    """A data string made safe for matplotlib: ``$`` would start mathtext; long names are cut."""
    text = str(text).replace("$", r"\$")
    return text if len(text) <= width else text[: width - 1] + "…"


def category_colours(categories) -> dict[str, tuple]:
    """A distinct colour per category (tab10, then tab20, then a cycle of tab20)."""
    categories = list(categories)
    palette = colormaps["tab10" if len(categories) <= 10 else "tab20"].colors
    return {c: palette[i % len(palette)] for i, c in enumerate(categories)}


def shown_cells(
    coords: np.ndarray,
    among: np.ndarray | None = None,
    *,
    max_points: int | None = None,
    seed: int = 0,
) -> np.ndarray:
    """Rows of ``coords`` an embedding plot draws, in a seeded random drawing order.

    The rows whose coordinates are all finite (an embedding may be computed for a subsample
    of cells only; the others are NaN) and, when given, true in the boolean ``among``; of
    those, a seeded random ``max_points`` (default :data:`MAX_POINTS`) when there are more.
    """
    max_points = MAX_POINTS if max_points is None else max_points
    keep = np.isfinite(coords).all(axis=1)
    if among is not None:
        keep &= np.asarray(among, dtype=bool)
    rows = np.flatnonzero(keep)
    rng = np.random.default_rng(seed)
    if rows.size <= max_points:
        return rows[rng.permutation(rows.size)]
    return rows[rng.choice(rows.size, size=max_points, replace=False)]


def _point_size(n: int) -> float:
    return float(np.clip(20_000 / max(n, 1), 0.8, 18))


def qc_distributions(
    obs: pd.DataFrame, thresholds: dict[str, list[float]], *, on_counts: bool = True
) -> Figure:
    """Histograms of ``n_counts``, ``n_genes`` and ``mito_fraction`` with threshold lines.

    ``on_counts=False`` (metrics computed on ``expm1(X)`` of normalised input) titles the first
    panel as the per-cell total of normalised values, not UMIs."""
    metrics = [
        ("n_counts", "counts per cell" if on_counts else "total of normalised values per cell"),
        ("n_genes", "genes detected per cell"),
        ("mito_fraction", "mitochondrial fraction"),
    ]
    fig = Figure(figsize=(9.5, 2.6), layout="constrained")
    axes = fig.subplots(1, 3)
    for ax, (column, title) in zip(axes, metrics, strict=False):
        values = pd.to_numeric(obs.get(column, pd.Series(dtype=float)), errors="coerce").dropna()
        ax.set_title(title)
        if values.empty:
            ax.text(0.5, 0.5, "not recorded", ha="center", va="center", transform=ax.transAxes)
            ax.set_axis_off()
            continue
        log = column != "mito_fraction" and values.min() > 0 and values.max() / values.min() > 50
        bins = np.geomspace(values.min(), values.max(), 50) if log else 50
        ax.hist(values, bins=bins, color="#4c72b0", edgecolor="white", linewidth=0.3)
        if log:
            ax.set_xscale("log")
        for threshold in thresholds.get(column, []):
            ax.axvline(threshold, color="#c44e52", linestyle="--", linewidth=1)
        ax.set_ylabel("cells")
    return fig


def heatmap(
    matrix: pd.DataFrame,
    *,
    cmap: str = "viridis",
    centre: float | None = None,
    colourbar: str = "",
    row_groups: pd.Series | None = None,
    annotate: pd.DataFrame | None = None,
    max_width: float = 11.0,
) -> Figure:
    """Heatmap of ``matrix`` (rows top to bottom as given). ``centre`` gives a diverging scale.

    ``row_groups`` (same index as ``matrix``) draws a line between groups and names each group
    on the right; ``annotate`` writes its formatted values in the cells.
    """
    n_rows, n_cols = matrix.shape
    width = min(max_width, 4.2 + 0.34 * n_cols)
    # Rows get at least 1.2 in together and the 60°-rotated column labels (≈ 0.06 in per
    # character at this font size) their own room, so few rows never shrink into a strip.
    longest = max((len(label(c)) for c in matrix.columns), default=0)
    height = 0.9 + max(0.22 * n_rows, 1.2) + 0.06 * longest
    fig = Figure(figsize=(width, height), layout="constrained")
    ax = fig.subplots()
    values = matrix.to_numpy(float)
    finite = values[np.isfinite(values)]
    norm = None
    if centre is not None and finite.size:
        spread = max(np.abs(finite - centre).max(), 1e-9)
        norm = TwoSlopeNorm(vcenter=centre, vmin=centre - spread, vmax=centre + spread)
    colour_map = colormaps[cmap].with_extremes(bad="#eeeeee")
    image = ax.imshow(np.ma.masked_invalid(values), aspect="auto", cmap=colour_map, norm=norm)
    ax.set_xticks(range(n_cols), [label(c) for c in matrix.columns], rotation=60, ha="right")
    ax.set_yticks(range(n_rows), [label(r) for r in matrix.index])
    ax.tick_params(length=0)
    for spine in ax.spines.values():
        spine.set_visible(False)
    if annotate is not None and n_rows * n_cols <= 400:
        rgba = colour_map(image.norm(np.ma.masked_invalid(values)))
        luminance = rgba[..., :3] @ np.array([0.299, 0.587, 0.114])
        for (i, j), text in np.ndenumerate(annotate.to_numpy(str)):
            colour = "black" if luminance[i, j] > 0.55 else "white"
            ax.text(j, i, text, ha="center", va="center", fontsize=7, color=colour)
    if row_groups is not None:
        groups = row_groups.reindex(matrix.index).astype(str).to_numpy()
        starts = [0] + [i for i in range(1, n_rows) if groups[i] != groups[i - 1]]
        for start, end in zip(starts, starts[1:] + [n_rows], strict=False):
            if start:
                ax.axhline(start - 0.5, color="white", linewidth=2)
            ax.annotate(
                label(groups[start], 34),
                xy=(1.01, (start + end - 1) / 2),
                xycoords=("axes fraction", "data"),
                va="center",
                fontsize=8,
                color="#444444",
            )
    bar = fig.colorbar(image, ax=ax, location="top", shrink=0.6, aspect=30, pad=0.02)
    bar.set_label(colourbar, fontsize=8)
    return fig


def boxplots(
    values: pd.DataFrame, groups: pd.Series, colours: dict[str, tuple], order: list[str]
) -> Figure:
    """One panel per column of ``values``: a horizontal box per group (whiskers 1.5 IQR)."""
    n = values.shape[1]
    ncols = 2 if n == 4 else min(n, 3)
    nrows = int(np.ceil(n / ncols))
    fig = Figure(
        figsize=(2.7 * ncols + 1.4, 0.6 + nrows * (0.7 + 0.22 * len(order))), layout="constrained"
    )
    axes = np.atleast_1d(fig.subplots(nrows, ncols, sharey=True, squeeze=False)).ravel()
    group_values = groups.astype(str).to_numpy()
    members = [group_values == g for g in order]  # once, not per panel: an atlas has 10^6 cells
    for ax, column in zip(axes, values.columns, strict=False):
        data = values[column].to_numpy(float)
        finite = np.isfinite(data)
        series = [data[member & finite] for member in members]
        boxes = ax.boxplot(
            series,
            orientation="horizontal",
            showfliers=False,
            patch_artist=True,
            widths=0.6,
            medianprops={"color": "black", "linewidth": 1},
        )
        for patch, group in zip(boxes["boxes"], order, strict=False):
            patch.set_facecolor(colours[group])
            patch.set_alpha(0.85)
        ax.set_title(label(column, 34))
        ax.set_yticks(range(1, len(order) + 1), [label(g) for g in order])
        ax.set_xlabel("score")
    axes[0].invert_yaxis()  # the y axis is shared: invert once, largest group on top
    for ax in axes[n:]:
        ax.set_axis_off()
    return fig


def embedding_categories(
    coords: np.ndarray, labels: pd.Series, colours: dict[str, tuple], title: str
) -> Figure:
    """Scatter of the embedding (the :func:`shown_cells`) coloured by a categorical label."""
    fig = Figure(figsize=(7.2, 4.8), layout="constrained")
    ax = fig.subplots()
    index = shown_cells(coords)
    values = labels.astype(str).to_numpy()[index]
    colour_array = np.array([colours[v] for v in values]) if index.size else None
    ax.scatter(*coords[index].T, c=colour_array, s=_point_size(index.size), linewidths=0)
    for name, colour in colours.items():
        ax.scatter([], [], color=colour, label=label(name, 30), s=30)
    ax.legend(loc="center left", bbox_to_anchor=(1.0, 0.5), frameon=False, fontsize=8)
    _embedding_axes(ax, title)
    return fig


def embedding_values(coords: np.ndarray, values: pd.DataFrame, ncols: int = 3) -> Figure:
    """One embedding panel (the :func:`shown_cells`) per column of ``values``, highest values
    drawn on top."""
    n = values.shape[1]
    ncols = min(ncols, n)
    nrows = int(np.ceil(n / ncols))
    fig = Figure(figsize=(3.3 * ncols, 2.9 * nrows), layout="constrained")
    axes = np.atleast_1d(fig.subplots(nrows, ncols, squeeze=False)).ravel()
    index = shown_cells(coords)
    for ax, column in zip(axes, values.columns, strict=False):
        data = values[column].to_numpy(float)[index]
        order = np.argsort(np.nan_to_num(data, nan=-np.inf), kind="stable")
        points = ax.scatter(
            *coords[index][order].T,
            c=data[order],
            cmap="viridis",
            s=_point_size(index.size),
            linewidths=0,
            plotnonfinite=True,
        )
        fig.colorbar(points, ax=ax, shrink=0.8)
        _embedding_axes(ax, label(column, 34))
    for ax in axes[n:]:
        ax.set_axis_off()
    return fig


def embedding_highlight(coords: np.ndarray, mask: np.ndarray, title: str, name: str) -> Figure:
    """Embedding with the cells of ``mask`` drawn in red over grey others; each of the two
    sets is drawn as its own :func:`shown_cells`, so a rare marked set (up to
    :data:`MAX_POINTS` cells) is drawn whole however many other cells there are."""
    fig = Figure(figsize=(5.2, 4.2), layout="constrained")
    ax = fig.subplots()
    rest, marked = shown_cells(coords, ~mask), shown_cells(coords, mask)
    size = _point_size(rest.size + marked.size)
    ax.scatter(*coords[rest].T, color="#d0d0d0", s=size, linewidths=0, label="other cells")
    ax.scatter(*coords[marked].T, color="#c0392b", s=max(size * 2, 4), linewidths=0, label=name)
    ax.legend(loc="upper right", frameon=False, fontsize=8, markerscale=2)
    _embedding_axes(ax, title)
    return fig


def _embedding_axes(ax, title: str) -> None:
    ax.set_title(title)
    ax.set_xticks([])
    ax.set_yticks([])
    ax.set_aspect("equal", adjustable="datalim")
    for spine in ax.spines.values():
        spine.set_visible(False)


def bars(counts: pd.Series, *, xlabel: str, colours: dict | None = None) -> Figure:
    """Horizontal bars of ``counts`` (index = names) in the given order, values written."""
    fig = Figure(figsize=(6.4, 0.6 + 0.26 * len(counts)), layout="constrained")
    ax = fig.subplots()
    colour = [colours.get(str(i), "#4c72b0") for i in counts.index] if colours else "#4c72b0"
    positions = np.arange(len(counts))
    ax.barh(positions, counts.to_numpy(float), color=colour)
    ax.set_yticks(positions, [label(i) for i in counts.index])
    ax.invert_yaxis()
    ax.set_xlabel(xlabel)
    top = float(np.nanmax(counts.to_numpy(float))) if len(counts) else 0
    for y, value in zip(positions, counts.to_numpy(float), strict=False):
        text = f"{value:.0f}" if float(value).is_integer() else f"{value:.2f}"
        ax.text(value + top * 0.01, y, text, va="center", fontsize=7)
    ax.set_xlim(0, top * 1.12 if top > 0 else 1)
    return fig


def histogram(values: np.ndarray, *, xlabel: str, bins: int = 30) -> Figure:
    """Plain histogram of finite ``values``."""
    fig = Figure(figsize=(4.4, 2.6), layout="constrained")
    ax = fig.subplots()
    values = np.asarray(values, float)
    ax.hist(values[np.isfinite(values)], bins=bins, color="#c0392b", edgecolor="white", lw=0.3)
    ax.set_xlabel(xlabel)
    ax.set_ylabel("cells")
    return fig
