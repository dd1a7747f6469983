"""Per-cell QC metrics, QC filters and the split of a dataset into its samples.

Metrics are computed on ``layers["counts"]`` when present, else on ``expm1(X)`` (the
normalised values: ``n_counts`` is then the per-cell total of normalised expression,
10,000 for CP10k input). Mitochondrial genes are those whose symbol starts with ``MT-``
(human) or ``mt-`` (mouse), case-insensitively.
"""

from __future__ import annotations

import anndata as ad
import numpy as np
import pandas as pd
import scipy.sparse as sp

from seedsoil.errors import InputError

#: Reason codes written to ``obs["qc_reason"]`` (joined by ";" when several apply).
REASONS = ("min_genes", "max_mito_fraction", "min_cells_per_sample")


def mito_genes(var_names) -> np.ndarray:
    """Boolean mask of mitochondrially encoded genes (symbol starts with ``MT-``/``mt-``)."""
    return np.array([str(g).upper().startswith("MT-") for g in var_names], dtype=bool)


def cell_metrics(
    counts: sp.csr_matrix | None, X: sp.csr_matrix, mito: np.ndarray
) -> dict[str, np.ndarray]:
    """``n_counts`` (total), ``n_genes`` (genes > 0) and ``mito_fraction`` (total of the ``mito``
    genes / total) of each cell (row), on ``counts`` if given, else on ``expm1(X)``. Neither
    matrix is modified: explicit zeros are left stored and not counted as genes."""
    if counts is not None:
        values = sp.csr_matrix(counts)
    else:
        values = sp.csr_matrix(X, dtype=np.float64, copy=True)
        values.data = np.expm1(values.data)
    totals = np.asarray(values.sum(axis=1), dtype=np.float64).ravel()
    mito_totals = np.asarray(values[:, mito].sum(axis=1), dtype=np.float64).ravel()
    # Stored non-zeros counted per row through a running sum: eliminate_zeros() would compact
    # the arrays this matrix shares with the caller's and leave the caller's indptr stale.
    stored_nonzero = np.concatenate(([0], np.cumsum(values.data != 0, dtype=np.int64)))
    return {
        "n_counts": totals,
        "n_genes": stored_nonzero[values.indptr[1:]] - stored_nonzero[values.indptr[:-1]],
        "mito_fraction": np.divide(
            mito_totals, totals, out=np.zeros_like(totals), where=totals > 0
        ),
    }


def qc_metrics(adata: ad.AnnData) -> pd.DataFrame:
    """:func:`cell_metrics` of every cell of ``adata``, on ``layers["counts"]`` if present."""
    counts = adata.layers.get("counts")
    return pd.DataFrame(
        cell_metrics(counts, adata.X, mito_genes(adata.var_names)), index=adata.obs_names
    )


def add_qc_metrics(adata: ad.AnnData) -> None:
    """Write :func:`qc_metrics` into ``adata.obs`` (in place)."""
    for column, values in qc_metrics(adata).items():
        adata.obs[column] = values.to_numpy()


def cell_filter_fails(
    n_genes: np.ndarray,
    mito_fraction: np.ndarray,
    *,
    min_genes: int = 200,
    max_mito_fraction: float = 0.2,
) -> dict[str, np.ndarray]:
    """The per-cell filters of :func:`apply_qc`: ``{"min_genes": n_genes < min_genes,
    "max_mito_fraction": mito_fraction > max_mito_fraction}`` (True = the cell fails). A cell
    passing both is kept unless its sample is dropped whole by ``min_cells_per_sample``."""
    return {
        "min_genes": np.asarray(n_genes) < min_genes,
        "max_mito_fraction": np.asarray(mito_fraction) > max_mito_fraction,
    }


def apply_qc(
    adata: ad.AnnData,
    *,
    min_genes: int = 200,
    max_mito_fraction: float = 0.2,
    min_cells_per_sample: int = 1,
) -> ad.AnnData:
    """Flag cells (in place; returns ``adata``): ``obs["qc_pass"]`` and ``obs["qc_reason"]``.

    A cell fails ``min_genes`` if ``n_genes < min_genes`` and ``max_mito_fraction`` if
    ``mito_fraction > max_mito_fraction``. Cells passing both fail ``min_cells_per_sample`` when
    fewer than ``min_cells_per_sample`` cells of their sample pass both (such samples are
    dropped deliberately by :func:`split_samples`). Thresholds, the number of cells failing
    each reason and per-sample counts go to ``uns["seedsoil"]["qc"]``.
    """
    if "n_genes" not in adata.obs:
        add_qc_metrics(adata)
    fails = pd.DataFrame(
        cell_filter_fails(
            adata.obs["n_genes"].to_numpy(),
            adata.obs["mito_fraction"].to_numpy(),
            min_genes=min_genes,
            max_mito_fraction=max_mito_fraction,
        ),
        index=adata.obs_names,
    )
    cell_pass = ~fails.any(axis=1)
    passing_per_sample = cell_pass.groupby(adata.obs["sample"].to_numpy()).transform("sum")
    fails["min_cells_per_sample"] = cell_pass & (passing_per_sample < min_cells_per_sample)
    adata.obs["qc_pass"] = ~fails.any(axis=1).to_numpy()
    adata.obs["qc_reason"] = [
        ";".join(r for r in REASONS if row[r]) for row in fails.to_dict("records")
    ]

    samples = adata.obs.groupby("sample", observed=True)["qc_pass"]
    uns = adata.uns.setdefault("seedsoil", {})
    uns["qc"] = {
        "min_genes": int(min_genes),
        "max_mito_fraction": float(max_mito_fraction),
        "min_cells_per_sample": int(min_cells_per_sample),
        "metrics_on": "counts" if _has_counts(adata) else "expm1(X)",
        "n_mito_genes": int(mito_genes(adata.var_names).sum()),
        "n_cells": int(adata.n_obs),
        "n_pass": int(adata.obs["qc_pass"].sum()),
        "failed": {reason: int(fails[reason].sum()) for reason in REASONS},
        "per_sample": {
            str(s): {"n_cells": int(v.size), "n_pass": int(v.sum())} for s, v in samples
        },
    }
    if uns["qc"]["n_mito_genes"] == 0:
        uns.setdefault("warnings", []).append(
            "no mitochondrial genes (MT-/mt-) in the data: mito_fraction is 0 and "
            "max_mito_fraction removes no cell"
        )
    return adata


def _has_counts(adata: ad.AnnData) -> bool:
    # an AnnData of annotations only (a streamed ingest) says so through its input scale
    scale = adata.uns.get("seedsoil", {}).get("input_scale")
    return "counts" in adata.layers or scale == "counts"


def kept_samples(adata: ad.AnnData) -> list[str]:
    """Names (sorted) of the samples with QC-passed cells; reads ``obs`` and ``uns`` only.

    A sample with no cell left raises :class:`InputError` naming the sample, the thresholds and
    how many of its cells each removed — unless its cells passed the per-cell filters and were
    removed only by ``min_cells_per_sample``, which drops the sample on purpose.
    """
    if "qc_pass" not in adata.obs:
        raise ValueError("kept_samples needs qc_pass: call apply_qc first")
    qc = adata.uns.get("seedsoil", {}).get("qc", {})
    dataset = adata.uns.get("seedsoil", {}).get("dataset", "?")
    source = adata.uns.get("seedsoil", {}).get("source")
    where = f"dataset {dataset!r}" + (f" ({source})" if source else "")
    samples = adata.obs["sample"].astype(str).to_numpy()
    passed = adata.obs["qc_pass"].to_numpy(dtype=bool)
    kept = []
    for sample in sorted(pd.unique(samples)):
        in_sample = samples == sample
        if passed[in_sample].any():
            kept.append(sample)
            continue
        reasons = adata.obs["qc_reason"][in_sample]
        if reasons.str.contains("min_cells_per_sample").any():
            continue
        n_genes = adata.obs["n_genes"][in_sample]
        nothing_expressed = (
            " None of its cells has any count: check that the sheet's counts column names the "
            "matrix that holds the data and that the file's matrix is not empty."
            if (adata.obs["n_counts"][in_sample] == 0).all()
            else ""
        )
        raise InputError(
            f"{where}, sample {sample!r}: no cells left after QC. Of its "
            f"{int(in_sample.sum())} cells, {int(reasons.str.contains('min_genes').sum())} have "
            f"fewer than min_genes={qc.get('min_genes')} genes (median n_genes "
            f"{float(n_genes.median()):.0f}) and {int(reasons.str.contains('max_mito_fraction').sum())} "
            f"a mitochondrial fraction above max_mito_fraction={qc.get('max_mito_fraction')}. "
            "Relax min_genes / max_mito_fraction for this dataset in the sheet." + nothing_expressed
        )
    return kept


def split_samples(adata: ad.AnnData) -> dict[str, ad.AnnData]:
    """QC-passed cells of each sample of :func:`kept_samples`, by sample name (sorted)."""
    kept = kept_samples(adata)
    samples = adata.obs["sample"].astype(str).to_numpy()
    passed = adata.obs["qc_pass"].to_numpy(dtype=bool)
    return {sample: adata[(samples == sample) & passed].copy() for sample in kept}
