"""Self-contained HTML reports: one per sample (:func:`write_sample_report`) and the cohort
index (:func:`write_cohort`).

Templates are Jinja2 with autoescape on, so every string from data or config (sample names,
cell-type labels, gene names) reaches the page as text. Figures are PNG ``data:`` URIs and
the stylesheet is inlined: opening a report makes no network request.
"""

from __future__ import annotations

import datetime as _dt
import functools
import json
import os
import platform
from importlib import metadata
from pathlib import Path

import pandas as pd
from jinja2 import Environment, FileSystemLoader, StrictUndefined
from markupsafe import Markup

from seedsoil.errors import InputError
from seedsoil.util import atomic_path

TEMPLATES = Path(__file__).parent / "templates"
PACKAGES = ("numpy", "pandas", "scipy", "anndata", "scanpy", "matplotlib", "gseapy", "pyucell")
PACKAGES += ("decoupler", "jinja2", "snakemake")

METHOD_TEXT = {
    "ucell": "UCell (Andreatta & Carmona 2021, Comput Struct Biotechnol J 19:3796): for each cell, "
    "genes are ranked by expression and the score is 1 − U/(n·maxRank), a normalised Mann–Whitney U "
    "statistic of the signature genes' ranks; it lies in [0, 1] and does not depend on other cells.",
    "scanpy": "scanpy.tl.score_genes (Satija et al. 2015; Tirosh et al. 2016): the mean log-normalised "
    "expression of the signature genes minus the mean of a reference set drawn from genes in the same "
    "expression bins; 0 means 'like random genes of similar expression'.",
    "aucell": "AUCell (Aibar et al. 2017, Nat Methods 14:1083): the area under the recovery curve of the "
    "signature genes among each cell's top-ranked genes; it lies in [0, 1].",
    "mean": "Mean log-normalised expression (log1p CP10k) of the signature genes in each cell.",
}


@functools.cache
def _environment() -> Environment:
    return Environment(
        loader=FileSystemLoader(TEMPLATES),
        autoescape=True,
        undefined=StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
    )


def render(template: str, context: dict) -> str:
    """Render ``templates/<template>`` with the shared page context (inlined CSS, versions)."""
    base = {
        "css": Markup((TEMPLATES / "report.css").read_text()),
        "seedsoil_version": _version("seedsoil"),
        "generated": _dt.datetime.now(_dt.UTC).strftime("%Y-%m-%d %H:%M UTC"),
    }
    return _environment().get_template(template).render(**base, **context)


def write_html(out_html, text: str) -> None:
    """Write ``text`` to ``out_html`` atomically (UTF-8)."""
    with atomic_path(out_html) as tmp:
        Path(tmp).write_text(text, encoding="utf-8")
        _readable(tmp)


def write_sample_report(
    out_html,
    *,
    adata,
    scores: pd.DataFrame,
    coverage: pd.DataFrame,
    pvalues: pd.DataFrame | None = None,
    fdr: pd.DataFrame | None = None,
    calls: pd.DataFrame | None = None,
    communication: pd.DataFrame | None = None,
    interpretation: dict | None = None,
    config: dict | None = None,
    links: dict[str, str] | None = None,
    versions: dict[str, str] | None = None,
) -> None:
    """Write one sample's self-contained HTML report to ``out_html``.

    ``adata`` is the sample's ``cells.h5ad`` (AnnData convention of docs/architecture.md);
    only its annotations are read (``obs``, ``obsm``, ``uns``, the number of genes), so
    ``seedsoil.cellfile.read_annotations(path)`` serves, whatever the number of cells;
    ``scores``/``pvalues``/``fdr`` are cells × signatures; ``coverage`` is ``coverage.tsv``;
    ``calls``, ``communication`` and ``interpretation`` (from the interpret stage) add their
    panels when given and show "not computed" otherwise. ``links`` maps a label to a
    relative href of a per-cell table (default: the standard file names of the tables given);
    ``versions`` adds or overrides software versions (e.g. ``{"signature library": "1.0"}``).
    """
    from seedsoil.report.sample import sample_context

    scores = _align(scores, adata.obs_names, "scores")
    pvalues = None if pvalues is None else _align(pvalues, adata.obs_names, "pvalues")
    fdr = None if fdr is None else _align(fdr, adata.obs_names, "fdr")
    calls = None if calls is None else _align(calls, adata.obs_names, "calls")
    given = {
        "scores": scores,
        "pvalues": pvalues,
        "fdr": fdr,
        "coverage": coverage,
        "calls": calls,
        "communication": communication,
    }
    context = sample_context(
        adata,
        scores=scores,
        coverage=coverage,
        fdr=fdr,
        calls=calls,
        communication=communication,
        interpretation=interpretation,
        config=config,
    )
    context["versions"] = list(software_versions(versions).items())
    context["config_text"] = config_text(config)
    context["links"] = default_links(links, {k for k, v in given.items() if v is not None})
    write_html(out_html, render("sample.html.j2", context))


def software_versions(extra: dict[str, str] | None = None) -> dict[str, str]:
    """Versions of Python, seedsoil and the scientific packages, updated with ``extra``."""
    versions = {"python": platform.python_version(), "seedsoil": _version("seedsoil")}
    versions.update({name: _version(name) for name in PACKAGES})
    versions.update({str(k): str(v) for k, v in (extra or {}).items()})
    versions.setdefault("signature library", "not recorded")
    return versions


def config_text(config: dict | None) -> str:
    """The configuration as indented JSON (rendered escaped inside ``<pre>``)."""
    if not config:
        return "not provided"
    return json.dumps(config, indent=2, sort_keys=True, default=str)


FILE_NOTES = {
    "scores": ("scores.parquet", "cells × signatures, one score per cell"),
    "pvalues": ("pvalues.parquet", "cells × signatures, empirical p-values vs matched random sets"),
    "fdr": ("fdr.parquet", "cells × signatures, Benjamini–Hochberg FDR across cells"),
    "coverage": ("coverage.tsv", "genes of each signature found in this sample"),
    "calls": ("calls.parquet", "per-cell CTC, cell-type and cluster calls"),
    "communication": ("communication.tsv", "sender → receiver ligand–receptor scores"),
}


def default_links(links: dict[str, str] | None, given: set[str]) -> list[tuple[str, str, str]]:
    """(label, href, note) triples: ``links`` when given, else the standard names of ``given``."""
    if links is not None:
        notes = {name: note for name, note in FILE_NOTES.values()}
        return [(str(k), str(v), notes.get(Path(str(v)).name, "")) for k, v in links.items()]
    return [(name, name, note) for k, (name, note) in FILE_NOTES.items() if k in given]


def _align(frame: pd.DataFrame, cells: pd.Index, name: str) -> pd.DataFrame:
    """``frame`` reindexed to the AnnData's cells; an error when they share no cell."""
    if frame.index.equals(cells):  # the usual case: no copy of an atlas-size table
        return frame
    frame = frame.set_axis(frame.index.astype(str))
    shared = frame.index.intersection(cells)
    if len(cells) and not len(shared):
        raise InputError(
            f"{name}: its index shares no cell name with cells.h5ad obs_names "
            f"(first {name} index: {frame.index[:1].tolist()}, first cell: {cells[:1].tolist()}); "
            "pass the table produced for this same sample."
        )
    return frame.reindex(cells)


def _readable(path) -> None:
    """Give the file the usual umask-based mode (temporary files are created 0600)."""
    umask = os.umask(0)
    os.umask(umask)
    os.chmod(path, 0o666 & ~umask)


def _version(package: str) -> str:
    try:
        return metadata.version(package)
    except metadata.PackageNotFoundError:
        return "not installed"


def write_cohort(
    out_dir,
    *,
    summary: pd.DataFrame,
    sample_reports: dict[tuple[str, str], str],
    pseudobulk: dict[tuple[str, str], pd.DataFrame] | None = None,
    communication: dict[tuple[str, str], pd.DataFrame] | None = None,
    library=None,
    config: dict | None = None,
    versions: dict[str, str] | None = None,
    condition: str = "condition",
    within: str | None = "dataset",
    seed: int = 0,
    min_size: int = 3,
    min_cells: int = 10,
) -> None:
    """Write ``index.html``, ``summary.tsv``, ``condition_tests.tsv``, ``ssgsea.tsv`` and
    ``communication_tests.tsv``.

    ``summary`` has one row per sample (rows of :func:`summarise_sample`);
    ``sample_reports`` maps (dataset, sample) to the report's href relative to ``out_dir``;
    ``pseudobulk`` maps (dataset, sample) to that sample's :func:`pseudobulk` table and
    ``library`` gives the signatures' up genes (see :func:`up_gene_sets`); without either,
    ``ssgsea.tsv`` has its header only and the page says "not computed". ``communication``
    maps (dataset, sample) to its ``communication.tsv`` (see
    :func:`~seedsoil.report.cohort_communication.communication_condition_tests`). ``within``
    (config ``cohort.compare_within``): conditions compared within each dataset, or across the
    cohort when None.
    """
    from seedsoil.report.cohort import condition_tests, pseudobulk_ssgsea, up_gene_sets
    from seedsoil.report.cohort_communication import (
        cell_types_tested,
        communication_condition_tests,
    )
    from seedsoil.report.cohort_page import cohort_context

    out_dir = Path(out_dir)
    summary = summary.sort_values(["dataset", "sample"], ignore_index=True)
    tests = condition_tests(summary, condition=condition, within=within)
    gene_sets = up_gene_sets(library)
    ssgsea = None
    if pseudobulk and gene_sets:
        ssgsea = pseudobulk_ssgsea(
            pseudobulk, gene_sets, min_size=min_size, min_cells=min_cells, seed=seed
        )
    labels = summary[condition] if condition in summary else pd.Series("NA", index=summary.index)
    keys = zip(summary["dataset"].astype(str), summary["sample"].astype(str), strict=True)
    conditions = dict(zip(keys, labels.astype(str), strict=True))
    communication_tests = communication_condition_tests(
        communication or {}, conditions, within=within, cell_types=cell_types_tested(summary)
    )
    for name, frame in (
        ("communication_tests.tsv", communication_tests),
        ("summary.tsv", summary),
        ("condition_tests.tsv", tests),
        ("ssgsea.tsv", ssgsea if ssgsea is not None else _empty_ssgsea()),
    ):
        with atomic_path(out_dir / name) as tmp:
            frame.to_csv(tmp, sep="\t", index=False)
            _readable(tmp)
    context = cohort_context(
        summary, sample_reports, tests, ssgsea, condition=condition, within=within,
        communication_tests=communication_tests,
    )  # fmt: skip
    context["config_text"] = config_text(config)
    context["versions"] = list(software_versions(versions).items())
    context["min_cells"] = min_cells
    write_html(out_dir / "index.html", render("cohort.html.j2", context))


def _empty_ssgsea() -> pd.DataFrame:
    from seedsoil.report.cohort import SSGSEA_COLUMNS

    return pd.DataFrame(columns=SSGSEA_COLUMNS)
