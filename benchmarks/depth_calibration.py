"""Depth calibration of scores and p-values on real data: random gene sets vs genes detected.

For each data set, ``--sets`` random ``SET_SIZE``-gene sets (drawn from the genes detected in
at least one cell) are scored by ucell, scanpy and aucell and tested by
:func:`seedsoil.significance`. Printed per data set and method: the median over sets of
|Spearman rho| between the per-cell value and the number of genes the cell detects; for the
p-values also the fraction of cells with p <= 0.05 in the shallow and the deep half of the
cells (by genes detected; nominal 0.05) and the fraction with BH FDR <= 0.05 (nominal 0 for
random sets). See :func:`rho_summary` for the three rho figures. Regenerates the table of docs/interpretation.md ("Depth calibration"):

    .venv/bin/python benchmarks/depth_calibration.py [--sets 30] [--n-null 999]

Built-in data sets are fetched into resources/downloads/ as the workflow does.
"""

from __future__ import annotations

import argparse
import logging
import tempfile
from pathlib import Path

import anndata as ad
import numpy as np
import scipy.sparse as sp
from scipy.stats import spearmanr

import seedsoil
from seedsoil.datasets import fetch_builtin, get_builtin
from seedsoil.errors import InputError
from seedsoil.harmonise import harmonise
from seedsoil.io import read_matrix

ROOT = Path(__file__).resolve().parents[1]
DATASETS = {  # name -> (chemistry, how to read it)
    "hydroseq_ctc_enriched_1100": "targeted panel (2,545 genes), integer counts",
    "oligodendroglioma": "full-length (Smart-seq2), TPM-like",
    "celltypist_sample": "droplet UMI",
    "wu2020_200": "droplet UMI (5')",
}
SET_SIZE = 20


def load(name: str, workdir: Path) -> ad.AnnData:
    """The data set harmonised as the workflow's ingest does (X = log1p CP10k)."""
    if name == "hydroseq_ctc_enriched_1100":
        raw = ad.read_h5ad(ROOT / "resources" / "data" / f"{name}.h5ad")
        counts = "X"
    else:
        dataset = get_builtin(name)
        path = fetch_builtin(
            name, workdir / dataset.filename, ROOT / "resources" / "downloads" / "wheels"
        )
        fmt = "csv" if str(path).endswith(".csv") else "h5ad"
        raw = read_matrix(path, fmt)
        counts = dataset.suggested.get("counts", "X")
    return harmonise(raw, dataset=name, counts=counts)


def random_sets(adata: ad.AnnData, n_sets: int, seed: int = 0) -> dict[str, list[str]]:
    detected = np.flatnonzero(np.asarray((adata.X != 0).sum(axis=0)).ravel() > 0)
    rng = np.random.default_rng(seed)
    names = np.asarray(adata.var_names)
    return {
        f"random{i}": list(names[rng.choice(detected, SET_SIZE, replace=False)])
        for i in range(n_sets)
    }


def rhos(table, depth: np.ndarray) -> np.ndarray:
    """Spearman rho of each column with ``depth`` (columns without variation left out)."""
    out = []
    for column in table.columns:
        values = table[column].to_numpy()
        ok = np.isfinite(values)
        if ok.sum() > 2 and np.ptp(values[ok]) > 0:
            out.append(spearmanr(values[ok], depth[ok]).statistic)
    return np.array(out)


def rho_summary(table, depth: np.ndarray) -> str:
    """``median |rho| (median rho; rho of the per-cell mean over sets)``: the first mixes a
    systematic depth effect with each set's own biology (a random set's genes may be those of
    a cell type that happens to be deeper); the signed median and the rho of the cell's
    average over all sets isolate the systematic part, which calibration must remove."""
    values = rhos(table, depth)
    if values.size == 0:
        return "n/a (no variation)"
    ranks = table.rank(axis=0, pct=True).mean(axis=1).to_numpy()
    ok = np.isfinite(ranks)
    average = spearmanr(ranks[ok], depth[ok]).statistic
    return f"{np.median(np.abs(values)):.2f} ({np.median(values):+.2f}; {average:+.2f})"


def measure(adata: ad.AnnData, sets: dict, n_null: int) -> dict[str, str]:
    X = adata.X if sp.issparse(adata.X) else sp.csr_matrix(adata.X)
    depth = np.diff(sp.csr_matrix(X != 0).indptr)
    rows = {}
    for label, method, options in (
        ("ucell (max_rank 1500)", "ucell", {"max_rank": 1500}),
        ("ucell (max_rank auto)", "ucell", {"max_rank": "auto"}),
        ("scanpy", "scanpy", {}),
        ("aucell", "aucell", {}),
    ):
        try:
            scores = seedsoil.score(adata, sets, method, **options)
        except (InputError, ValueError) as error:  # e.g. max_rank="auto" before it existed
            rows[label] = f"n/a ({error})"[:40]
            continue
        rows[label] = rho_summary(scores, depth)
    pvalues, fdr = seedsoil.significance(adata, sets, n_null=n_null)
    shallow = depth <= np.median(depth)
    p = pvalues.to_numpy()
    rows["p-value"] = rho_summary(pvalues, depth)
    rows["p <= 0.05 shallow / deep"] = (
        f"{(p[shallow] <= 0.05).mean():.3f} / {(p[~shallow] <= 0.05).mean():.3f}"
    )
    rows["FDR <= 0.05"] = f"{(fdr.to_numpy() <= 0.05).mean():.4f}"
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sets", type=int, default=30)
    parser.add_argument("--n-null", type=int, default=999)
    parser.add_argument("--datasets", nargs="*", default=list(DATASETS))
    args = parser.parse_args()
    logging.disable(logging.WARNING)
    results = {}
    with tempfile.TemporaryDirectory() as tmp:
        for name in args.datasets:
            adata = load(name, Path(tmp))
            depth = np.diff(sp.csr_matrix(adata.X != 0).indptr)
            q = np.percentile(depth, [10, 50, 90]).astype(int)
            print(f"# {name}: {adata.n_obs} cells x {adata.n_vars} genes; genes detected "
                  f"q10/median/q90 {q[0]}/{q[1]}/{q[2]}", flush=True)  # fmt: skip
            results[name] = measure(adata, random_sets(adata, args.sets), args.n_null)
    names = list(results)
    print(
        "| median abs(rho) with genes detected (median rho; rho of cell's mean rank) | "
        + " | ".join(names)
        + " |"
    )
    print("|---|" + "---|" * len(names))
    for row in results[names[0]]:
        print(f"| {row} | " + " | ".join(results[n][row] for n in names) + " |")


if __name__ == "__main__":
    main()
