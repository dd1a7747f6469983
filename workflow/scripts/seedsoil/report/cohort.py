"""Cohort statistics: per-sample summaries, condition tests and pseudobulk ssGSEA.

Samples, never cells, are the replicates: every comparison between conditions runs on one
number per sample (a per-sample mean score or fraction), because cells of one sample share
its donor, its dissociation and its sequencing run and are not independent observations.
"""

from __future__ import annotations

import itertools
import os
from collections.abc import Iterable, Mapping

import numpy as np
import pandas as pd
import scipy.sparse as sp
from scipy import stats

from seedsoil.cellfile import BLOCK_CELLS
from seedsoil.errors import InputError
from seedsoil.names import MIXED_CONDITION, sample_condition
from seedsoil.scoring.null import benjamini_hochberg

#: Condition labels that mean "no condition given" or several (a sample spanning conditions,
#: :func:`seedsoil.names.sample_condition`); such samples join no comparison.
NO_CONDITION = frozenset({"", "NA", "nan", "None", MIXED_CONDITION})

CONDITION_TEST_COLUMNS = [
    "family",
    "statistic",
    "group_a",
    "group_b",
    "n_a",
    "n_b",
    "effect",
    "pvalue",
    "fdr",
    "test",
]
SSGSEA_COLUMNS = [
    "dataset",
    "sample",
    "cell_type",
    "n_cells",
    "signature",
    "n_genes_matched",
    "es",
    "nes",
]
#: Summary columns compared between conditions: per-sample means and fractions.
STATISTIC_PREFIXES = ("mean", "frac", "composition:")
MANN_WHITNEY = "Mann-Whitney U, two-sided, samples as replicates"


def summarise_sample(adata, scores: pd.DataFrame, calls=None, interpretation=None) -> dict:
    """One row of the cohort summary for one sample.

    Keys: ``dataset``, ``sample``, ``condition``, ``n_cells``, ``n_genes``, then
    ``mean:<signature>`` (mean score over the sample's cells) for every score column; with
    ``calls``: ``n_ctc_candidates``, ``frac_ctc`` and ``n_heterotypic:<kind>``; with
    ``interpretation``: its scalar entries, and its dict entries flattened as
    ``<key>:<item>`` (the immune composition as ``frac:<type>``).
    """
    meta = adata.uns.get("seedsoil", {}) if hasattr(adata, "uns") else {}
    row: dict = {
        "dataset": str(meta.get("dataset", "")),
        "sample": _first(adata.obs, "sample", ""),
        "condition": sample_condition(adata.obs["condition"])
        if "condition" in adata.obs and len(adata.obs)
        else "NA",
        "n_cells": int(adata.n_obs),
        "n_genes": int(adata.n_vars),
    }
    for signature in scores.columns:
        row[f"mean:{signature}"] = float(np.nanmean(scores[signature].to_numpy(float)))
    if calls is not None and "ctc_candidate" in calls:
        candidates = calls["ctc_candidate"].fillna(False).astype(bool)
        row["n_ctc_candidates"] = int(candidates.sum())
        row["frac_ctc"] = float(candidates.mean()) if len(candidates) else float("nan")
    if calls is not None and "heterotypic_cluster" in calls:
        kinds = calls["heterotypic_cluster"].fillna("").astype(str)
        for kind, count in kinds[kinds != ""].value_counts().sort_index().items():
            row[f"n_heterotypic:{kind}"] = int(count)
    for key, value in (interpretation or {}).items():
        if isinstance(value, Mapping):
            prefix = "frac" if ("immune" in key and "composition" in key) else key
            for item, sub in value.items():
                if _is_scalar(sub):
                    row[f"{prefix}:{item}"] = sub
        elif _is_scalar(value) and key not in ("dataset", "sample", "condition"):
            row[key] = value
    return row


def condition_tests(
    summary: pd.DataFrame, *, condition: str = "condition", within: str | None = "dataset"
) -> pd.DataFrame:
    """Compare every pair of conditions on every per-sample statistic of ``summary``.

    Statistics are the numeric columns named ``mean…``, ``frac…`` or ``composition:…``
    (per-sample means and fractions; counts depend on sequencing depth). For each statistic and pair
    (``group_a`` < ``group_b`` alphabetically) the test is a two-sided Mann–Whitney U on the
    samples' values (``scipy.stats.mannwhitneyu``, exact when small and tie-free).
    A rank test because a cohort has few samples per condition and per-sample means of
    bounded scores or fractions need not be normal; it is robust to one outlying sample.
    Its price is power: with 3 vs 3 samples the smallest possible p-value is 0.1, which
    says honestly how little three samples can show. ``effect`` = median(a) − median(b).
    Groups with fewer than 2 samples are not tested (p-value NaN).

    Conditions are compared within each value of ``within`` (default: within each dataset,
    so samples of different technologies and gene panels are never pooled; ``None`` pools the
    cohort). ``family`` names the Benjamini–Hochberg family of each row: ``fdr`` is corrected
    over the tested rows of the same family (one dataset's comparisons, or ``"cohort"``).
    """
    if condition not in summary:
        return pd.DataFrame(columns=CONDITION_TEST_COLUMNS)
    if within is not None and within in summary:
        families = summary[within].astype(str)
    else:
        families = pd.Series("cohort", index=summary.index)
    numeric = summary.select_dtypes(include=[np.number, "bool"]).columns
    statistics = [c for c in numeric if str(c).startswith(STATISTIC_PREFIXES)]
    tables = []
    for family in sorted(set(families)):
        part = summary[families == family]
        labels = part[condition].astype(str)
        groups = sorted(set(labels) - NO_CONDITION)
        rows = []
        for statistic in statistics:
            values = part[statistic].astype(float)
            for group_a, group_b in itertools.combinations(groups, 2):
                a = values[labels == group_a].dropna().to_numpy()
                b = values[labels == group_b].dropna().to_numpy()
                pvalue, test = _mann_whitney(a, b)
                effect = float(np.median(a) - np.median(b)) if a.size and b.size else np.nan
                rows.append(
                    [
                        family,
                        statistic,
                        group_a,
                        group_b,
                        a.size,
                        b.size,
                        effect,
                        pvalue,
                        np.nan,
                        test,
                    ]
                )
        if rows:
            table = pd.DataFrame(rows, columns=CONDITION_TEST_COLUMNS)
            table["fdr"] = bh_fdr_finite(table["pvalue"].to_numpy(float))
            tables.append(table)
    if not tables:
        return pd.DataFrame(columns=CONDITION_TEST_COLUMNS)
    return pd.concat(tables, ignore_index=True)


def bh_fdr_finite(pvalues) -> np.ndarray:
    """Benjamini–Hochberg q-values over the finite p-values; NaN (untested) stays NaN and
    does not count towards the number of tests."""
    p = np.asarray(pvalues, dtype=float)
    q = np.full(p.shape, np.nan)
    finite = np.isfinite(p)
    if finite.any():
        q[finite] = benjamini_hochberg(p[finite])
    return q


def _mann_whitney(a: np.ndarray, b: np.ndarray) -> tuple[float, str]:
    if a.size < 2 or b.size < 2:
        return np.nan, "not tested: fewer than 2 samples in a group"
    if np.unique(np.concatenate([a, b])).size == 1:
        return 1.0, MANN_WHITNEY  # all samples equal: no evidence of a difference
    return float(stats.mannwhitneyu(a, b, alternative="two-sided").pvalue), MANN_WHITNEY


def pseudobulk(data, *, groupby: str = "cell_type", block_cells: int = BLOCK_CELLS) -> pd.DataFrame:
    """Summed expression per cell type of one sample: a genes × cell types DataFrame.

    ``table.loc[gene, group]`` = sum over the cells ``i`` with ``obs[groupby][i] == group``
    of ``M[i, gene]``, where ``M`` is ``layers["counts"]`` when present, else ``expm1(X)``
    (per-cell CP10k, what ``X`` was made from; expm1 in X's dtype), summed in float64, so
    :func:`log_cp10k` can renormalise each column. ``data`` is the sample's AnnData or the
    path of its ``cells.h5ad``; either is read ``block_cells`` rows at a time (a file from
    disk), so memory does not grow with the number of cells.
    Columns are the sorted labels of ``obs[groupby]``; the number of cells behind each
    column is kept in ``attrs["n_cells"]`` (preserved by ``to_parquet``), and the summed
    quantity in ``attrs["source"]``.
    """
    from seedsoil.scoring._input import open_source

    labels, has_counts = _pseudobulk_input(data, groupby)
    source = open_source(data, layer="counts" if has_counts else None)
    blocks = source.chunks(block_cells, check_finite=False)
    if not has_counts:
        blocks = (block.expm1() for block in blocks)
    return _pseudobulk_table(labels, blocks, source.var_names, has_counts)


def pseudobulk_with_columns(
    path: str | os.PathLike,
    genes,
    *,
    groupby: str = "cell_type",
    block_cells: int = BLOCK_CELLS,
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """``(pseudobulk(path), columns)``: :func:`pseudobulk` of the cell file ``path`` and the
    values of ``X`` in the columns of ``genes`` (a cells × genes DataFrame in ``X``'s dtype,
    genes in file order, those the file lacks left out), as
    ``seedsoil.cellfile.read_genes(path, genes).X`` holds them.

    One pass over the file when its counts layer shares ``X``'s indices and row pointers
    (:func:`seedsoil.cellfile.shares_structure`, as the workflow writes cell files): the
    shared indices are read once per block, not once for each matrix. Otherwise the two are
    read one after the other. The values are the same either way."""
    from seedsoil.cellfile import block_pairs, read_genes, shares_structure
    from seedsoil.scoring._input import open_source

    if not shares_structure(path, "layers/counts", "X"):
        check = read_genes(path, genes, block_cells=block_cells)
        columns = pd.DataFrame(check.X.toarray(), index=check.obs_names, columns=check.var_names)
        return pseudobulk(path, groupby=groupby, block_cells=block_cells), columns
    labels, _ = _pseudobulk_input(path, groupby)
    source = open_source(os.fspath(path))  # names only: blocks come from block_pairs
    wanted = np.flatnonzero(source.var_names.isin(list(genes)))
    parts = []

    def counts_blocks():  # the counts summed; X's wanted columns kept on the way
        for counts, values in block_pairs(path, "layers/counts", "X", block_cells):
            parts.append(values[:, wanted])
            yield counts

    table = _pseudobulk_table(labels, counts_blocks(), source.var_names, True)
    matrix = (
        sp.vstack(parts, format="csr")
        if parts
        else sp.csr_matrix((source.n_cells, wanted.size), dtype=np.float32)
    )
    columns = pd.DataFrame(
        matrix.toarray(), index=source.obs_names, columns=source.var_names[wanted]
    )
    return table, columns


def _pseudobulk_table(labels, blocks, var_names, has_counts: bool) -> pd.DataFrame:
    """The genes × groups frame of :func:`pseudobulk` with its ``attrs``: ``blocks`` (the
    summed quantity, consecutive CSR row blocks) summed per label of ``labels``."""
    codes, groups = pd.factorize(labels, sort=True)
    sums = np.zeros((groups.size, len(var_names)))
    start = 0
    for block in blocks:
        stop = start + block.shape[0]
        sums += _group_sums(block, codes[start:stop], groups.size)
        start = stop
    table = pd.DataFrame(sums.T, index=var_names, columns=groups)
    table.attrs["n_cells"] = {
        str(g): int(n)
        for g, n in zip(groups, np.bincount(codes, minlength=groups.size), strict=True)
    }
    table.attrs["source"] = "counts" if has_counts else "expm1(X)"
    return table


def _group_sums(block, codes: np.ndarray, n_groups: int) -> np.ndarray:
    """Row sums of ``block`` per group code: an n_groups × genes float64 array."""
    indicator = sp.csr_matrix(
        (np.ones(codes.size), (codes, np.arange(codes.size))), shape=(n_groups, codes.size)
    )
    return (indicator @ sp.csr_matrix(block, dtype=np.float64)).toarray()


def _pseudobulk_input(data, groupby: str) -> tuple[np.ndarray, bool]:
    """Group label of each cell (as str) and whether ``data`` has ``layers["counts"]``."""
    if isinstance(data, str | os.PathLike):
        import h5py
        from anndata.io import read_elem

        try:
            f = h5py.File(data, "r")
        except OSError as error:
            raise InputError(
                f"cannot read {data} as h5ad ({error}); re-run the split step"
            ) from None
        with f:
            if groupby not in f["obs"]:
                raise InputError(
                    f"{data}: obs has no column {groupby!r} to group cells by; "
                    "re-run the split step, which writes it"
                )
            column = pd.Series(read_elem(f["obs"][groupby]))
            has_counts = "layers" in f and "counts" in f["layers"]
    else:
        if groupby not in data.obs:
            raise InputError(f"AnnData obs has no column {groupby!r} to group cells by")
        column, has_counts = data.obs[groupby], "counts" in data.layers
        if data.X is None and not has_counts:
            raise InputError(
                "AnnData has neither X nor layers['counts'] (annotations only); "
                "pass the path of its cells.h5ad so the matrix is read block by block"
            )
    return column.astype(str).to_numpy(), has_counts


def log_cp10k(table: pd.DataFrame) -> pd.DataFrame:
    """``log1p(x / column total * 1e4)``; columns with a zero total are dropped."""
    totals = table.sum(axis=0)
    kept = table.loc[:, totals > 0]
    return np.log1p(kept / totals[totals > 0] * 1e4)


def up_gene_sets(library) -> dict[str, list[str]]:
    """The up (positively weighted) genes of each signature of ``library``.

    Accepts a mapping ``name -> genes`` (a list, or a dict/object with ``up``), or a long
    DataFrame with columns ``signature``, ``gene`` and optionally ``direction`` (kept when
    ``up``/``+``/positive) or ``weight`` (kept when > 0).
    """
    if library is None:
        return {}
    if isinstance(library, pd.DataFrame):
        table = library
        if "direction" in table:
            direction = table["direction"].astype(str).str.lower()
            table = table[direction.isin(["up", "+", "1", "+1", "positive"])]
        elif "weight" in table:
            table = table[table["weight"].astype(float) > 0]
        return {str(k): list(v) for k, v in table.groupby("signature", sort=True)["gene"]}
    sets = {}
    for name, entry in dict(library).items():
        if isinstance(entry, Mapping):
            genes = entry.get("up", [])
        elif hasattr(entry, "up"):
            genes = entry.up
        else:
            genes = entry
        sets[str(name)] = [str(g) for g in genes]
    return sets


def pseudobulk_ssgsea(
    pseudobulks: Mapping[tuple[str, str], pd.DataFrame],
    gene_sets: Mapping[str, Iterable[str]],
    *,
    min_size: int = 3,
    min_cells: int = 10,
    seed: int = 0,
) -> pd.DataFrame:
    """ssGSEA (Barbie et al. 2009, Nature 462:108) of each sample × cell-type pseudobulk.

    Runs ``gseapy.ssgsea`` on log-CP10k pseudobulks (:func:`log_cp10k`), one run per
    dataset (samples of a dataset share a gene space; NES is ES scaled by the ES range of
    that run, so compare NES within a dataset). Gene-set genes match data genes ignoring
    case (human symbols then also find their mouse orthologues' capitalised symbols).
    Sets with fewer than ``min_size`` matched genes and pseudobulks of fewer than
    ``min_cells`` cells are left out. Returns one row per pseudobulk × signature.
    """
    import gseapy  # heavy import, only needed here

    rows = []
    by_dataset: dict[str, list[tuple[str, str, pd.DataFrame]]] = {}
    for (dataset, sample), table in pseudobulks.items():
        by_dataset.setdefault(str(dataset), []).append((str(dataset), str(sample), table))
    for dataset, members in sorted(by_dataset.items()):
        columns, meta = [], {}
        for _, sample, table in members:
            n_cells = table.attrs.get("n_cells", {})
            normalised = log_cp10k(table)
            for cell_type in normalised.columns:
                n = n_cells.get(str(cell_type))
                if n is not None and n < min_cells:
                    continue
                key = f"c{len(meta)}"
                meta[key] = (sample, str(cell_type), n)
                columns.append(normalised[cell_type].rename(key))
        if not columns:
            continue
        data = pd.concat(columns, axis=1, join="outer").fillna(0.0)
        matched = _match_gene_sets(data.index, gene_sets, min_size)
        if not matched:
            continue
        result = gseapy.ssgsea(
            data=data,
            gene_sets=matched,
            min_size=min_size,
            max_size=max(len(g) for g in matched.values()) + 1,
            threads=1,
            seed=seed,
            outdir=None,
            no_plot=True,
            verbose=False,
        ).res2d
        for name, term, es, nes in result[["Name", "Term", "ES", "NES"]].itertuples(index=False):
            sample, cell_type, n = meta[name]
            rows.append([dataset, sample, cell_type, n, term, len(matched[term]), es, nes])
    table = pd.DataFrame(rows, columns=SSGSEA_COLUMNS)
    table[["es", "nes"]] = table[["es", "nes"]].astype(float)
    return table.sort_values(["dataset", "sample", "cell_type", "signature"], ignore_index=True)


def _match_gene_sets(genes: pd.Index, gene_sets, min_size: int) -> dict[str, list[str]]:
    by_upper = {}
    for gene in genes:
        by_upper.setdefault(str(gene).upper(), str(gene))
    matched = {}
    for name, members in gene_sets.items():
        hits = sorted({by_upper[g.upper()] for g in members if g.upper() in by_upper})
        if len(hits) >= min_size:
            matched[str(name)] = hits
    return matched


def _first(obs: pd.DataFrame, column: str, default: str) -> str:
    if column not in obs or len(obs) == 0:
        return default
    return str(obs[column].astype(str).mode().iloc[0])


def _is_scalar(value) -> bool:
    return isinstance(value, str | bool | int | float | np.integer | np.floating)
