"""Spiked-in CTC benchmark: real epithelial cells in real blood, through seedsoil's own calls.

Tumour cells: the keratin/EPCAM-positive cells of the shipped Hydro-Seq CTC-enriched sample
(``builtin:hydroseq_ctc_enriched``) chosen by a CellSearch-like marker rule stated in
:func:`epithelial_pool` (EPCAM ≥ 1 count AND KRT8 or KRT19 ≥ 1 count AND none of the myeloid
genes LYZ, S100A8, S100A9, CD14 detected). Blood: the UMI blood of the embedded demo
(``celltypist_sample`` and the Blood cells of ``wu2020_200``; ``pbmc68k_reduced`` has no raw
counts to thin and 765 genes, so it is not used). Every condition is a grid point of

* panel: ``full`` (every blood gene; the spiked cells carry zeros outside their 2,545-gene
  panel, i.e. they detect fewer genes than the blood, the reverse of the issue's data) or
  ``panel`` (every cell restricted to the genes shared with the Hydro-Seq panel);
* clusters: a third of the tumour cells carry the reads of a random blood cell (a CTC–leukocyte
  cluster or doublet; PTPRC and a leukocyte programme on an epithelial cell);
* ambient: none, or 5 % of each cell's reads added from a pooled profile: of the blood (free
  RNA of lysed blood cells puts PTPRC, LYZ, S100A8 into the tumour cells, as in real droplets)
  or of the blood and the whole epithelial pool (lysed tumour cells put EPCAM and keratin
  reads into blood cells: the stress case for the marker-positive family of the call, since
  blood cells then enter it);
* depth: every count binomially thinned to a fraction (1, 0.5, 0.25) of its reads;
* spike fraction: 0.1 %, 0.5 %, 1 %, 2 %, 5 % of the blood cell count (at least 1 cell),
  each drawn ``--repeats`` times (default 10) from the mixture's tumour cells.

Per (panel, depth) one mixture holding the blood and the whole epithelial pool is normalised
(log1p CP10k), scored (``seedsoil.scoring.significance``: expression-matched random signatures)
and called (``seedsoil.interpret.ctc.call_ctc``); each spike fraction then draws its tumour cells
from the pool and recomputes Benjamini–Hochberg over that subset (per-cell p-values depend on
the gene bins of the mixture only). Printed: precision, recall and AUROC (of ``-log p`` of the
CTC signature) per condition and the ablation of the call's steps, and the negative control
(random gene sets of the CTC signature's size as the CTC signature).

Empirical p-values of ``n`` nulls cannot go below ``1 / (n + 1)``, and BH then needs at least
``m / (n + 1) / alpha`` cells at that floor among ``m`` cells. ``significance`` therefore compares
the cells at the floor of ``n_null`` nulls with up to ``n_null_max`` (default ``20 n_null``):
with the pipeline's default ``scoring.n_null = 1000`` the floor is 5·10⁻⁵ and the smallest
discoverable fraction 0.1 % (``--n-null-max 1000`` switches the extension off: 2 %). Nothing is written to the
repository; the built-ins are fetched into a temporary directory (wheels from the cache).

    python benchmarks/ctc_spikein.py            # the table in benchmarks/README.md
    python benchmarks/ctc_spikein.py --n-null-max 1000   # no floor extension: floor-limited
"""

from __future__ import annotations

import argparse
import sys
import tempfile
from pathlib import Path

import numpy as np
import pandas as pd
import scipy.sparse as sp

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "workflow" / "scripts"))

import anndata as ad  # noqa: E402

from seedsoil.datasets import BUILTINS, fetch_builtin  # noqa: E402
from seedsoil.harmonise import harmonise, log_normalise  # noqa: E402
from seedsoil.interpret.ctc import (  # noqa: E402
    CTC_SIGNATURE,
    EPITHELIAL_CORE,
    call_ctc,
    core_groups_detected,
    core_marker_groups,
    leukocyte_evidence,
    leukocyte_programme,
    marker_family_fdr,
)
from seedsoil.io import read_matrix  # noqa: E402
from seedsoil.scoring import significance  # noqa: E402
from seedsoil.scoring.null import benjamini_hochberg  # noqa: E402
from seedsoil.signatures import load_library  # noqa: E402

FRACTIONS = (0.001, 0.005, 0.01, 0.02, 0.05)
#: ambient RNA: name → (fraction of each cell's reads, whether the soup includes tumour cells)
AMBIENT = {"none": (0.0, False), "5% blood": (0.05, False), "5% blood+tumour": (0.05, True)}
CLUSTER_SHARE = 1 / 3  #: spiked tumour cells given the reads of a random blood cell as partner
DEPTHS = (1.0, 0.5, 0.25)
MYELOID = ("LYZ", "S100A8", "S100A9", "CD14")
SHIPPED = "6 + CD45⁻ for single-marker cells (shipped)"
N_NULL_MAX = None  #: --n-null-max (None: significance's default, 20 n_null)
WHEELS = REPO / "resources" / "downloads" / "wheels"


def counts_of(name: str, workdir: Path, **options) -> ad.AnnData:
    """A built-in as harmonised AnnData with integer counts in ``layers["counts"]``."""
    path = fetch_builtin(name, workdir / BUILTINS[name].filename, WHEELS)
    return harmonise(read_matrix(path, BUILTINS[name].format), dataset=name, **options)


def epithelial_pool(hydro: ad.AnnData) -> np.ndarray:
    """Cells passing the marker rule: EPCAM ≥ 1 count, KRT8 or KRT19 ≥ 1 count (the EpCAM⁺ CK⁺
    of CellSearch on transcripts) and no count of LYZ, S100A8, S100A9 or CD14 (myeloid cells
    of the enrichment's blood background, which must not serve as tumour cells)."""
    counts = hydro.layers["counts"]

    def detected(gene):
        return np.asarray(counts[:, hydro.var_names.get_loc(gene)].todense()).ravel() > 0

    keratin = detected("KRT8") | detected("KRT19")
    myeloid = np.any([detected(g) for g in MYELOID if g in hydro.var_names], axis=0)
    return np.flatnonzero(detected("EPCAM") & keratin & ~myeloid)


def thin(counts: sp.csr_matrix, fraction: float, rng) -> sp.csr_matrix:
    """Binomial thinning: every read kept with probability ``fraction``."""
    out = counts.copy().astype(np.float64)
    if fraction < 1:
        out.data = rng.binomial(out.data.astype(np.int64), fraction).astype(np.float64)
        out.eliminate_zeros()
    return out


def add_ambient(counts: sp.csr_matrix, soup: np.ndarray, fraction: float, rng) -> sp.csr_matrix:
    """Ambient RNA: each cell gains ``Poisson(fraction × its total)`` reads drawn from ``soup``
    (the blood's pooled expression profile, as free RNA of lysed blood cells would be)."""
    if fraction <= 0:
        return counts
    totals = np.asarray(counts.sum(axis=1)).ravel()
    extra = np.vstack([rng.multinomial(rng.poisson(fraction * t), soup) for t in totals])
    return (counts + sp.csr_matrix(extra.astype(np.float64))).tocsr()


def mixture(
    blood: ad.AnnData,
    tumour: ad.AnnData,
    genes,
    depth,
    rng,
    ambient: float = 0.0,
    partners: np.ndarray | None = None,
    tumour_soup: bool = False,
) -> ad.AnnData:
    """Blood and tumour cells on ``genes`` (zeros where a source lacks a gene), with ``ambient``
    RNA added (:func:`add_ambient`; the blood's pooled profile, plus every tumour cell's when
    ``tumour_soup``), thinned, log-normalised. ``partners[i] ≥ 0`` adds
    the counts of that blood cell to tumour cell ``i``: a CTC–leukocyte cluster (or doublet),
    flagged in ``obs["cluster"]``."""

    def on(adata):
        index = adata.var_names.get_indexer(genes)
        counts = sp.csr_matrix(adata.layers["counts"], dtype=np.float64)
        present = index >= 0
        block = sp.lil_matrix((adata.n_obs, len(genes)))
        block[:, np.flatnonzero(present)] = counts[:, index[present]]
        return sp.csr_matrix(block)

    blood_counts = on(blood)
    soup = np.asarray(blood_counts.sum(axis=0)).ravel()
    tumour_counts = on(tumour)
    if tumour_soup:
        soup = soup + np.asarray(tumour_counts.sum(axis=0)).ravel()
    if partners is not None and (partners >= 0).any():
        extra = sp.lil_matrix(tumour_counts.shape)
        rows = np.flatnonzero(partners >= 0)
        extra[rows] = blood_counts[partners[rows]]
        tumour_counts = (tumour_counts + sp.csr_matrix(extra)).tocsr()
    mixed_counts = sp.vstack([blood_counts, tumour_counts]).tocsr()
    counts = thin(add_ambient(mixed_counts, soup / soup.sum(), ambient, rng), depth, rng)
    keep = np.asarray(counts.sum(axis=1)).ravel() > 0
    clustered = np.zeros(tumour.n_obs, bool) if partners is None else partners >= 0
    obs = pd.DataFrame(
        {
            "truth": np.r_[np.zeros(blood.n_obs, bool), np.ones(tumour.n_obs, bool)],
            "cluster": np.r_[np.zeros(blood.n_obs, bool), clustered],
        },
        index=[f"b{i}" for i in range(blood.n_obs)] + [f"t{i}" for i in range(tumour.n_obs)],
    )
    mixed = ad.AnnData(log_normalise(counts), obs=obs, var=pd.DataFrame(index=list(genes)))
    return mixed[keep].copy()


def auroc(truth: np.ndarray, evidence: np.ndarray) -> float:
    """Mann–Whitney AUROC (ties count one half)."""
    ranks = pd.Series(evidence).rank().to_numpy()
    n_pos, n_neg = truth.sum(), (~truth).sum()
    return float((ranks[truth].sum() - n_pos * (n_pos + 1) / 2) / (n_pos * n_neg))


def steps(cells: ad.AnnData, pvalues: pd.DataFrame, alpha: float, core) -> dict[str, np.ndarray]:
    """The ablation: each step's calls on one subset (BH recomputed on it), ``core`` the
    signature's declared core groups. Rows 1–4 run BH over every cell (the previous rule, row 4
    as shipped before); row 5 over the marker-positive family; row 6 is the shipped
    :func:`seedsoil.interpret.ctc.call_ctc`; row 7 the same with the built-in EPCAM/keratin
    groups in place of the declared core."""
    fdr = pvalues.apply(lambda column: benjamini_hochberg(column.to_numpy()), raw=False)
    q = fdr[CTC_SIGNATURE].to_numpy()
    k = core_groups_detected(cells, core)
    ptprc = (
        np.asarray(cells[:, "PTPRC"].X.todense()).ravel()
        if "PTPRC" in cells.var_names
        else np.zeros(cells.n_obs)
    )
    veto = leukocyte_programme(fdr, alpha) | (ptprc > 0)
    epithelial = (q <= alpha) & (k >= 1)
    leukocyte = leukocyte_evidence(cells, fdr, alpha, epithelial)
    q_family = marker_family_fdr(pvalues[CTC_SIGNATURE].to_numpy(), k >= 1)
    family = (q_family <= alpha) & (k >= 1)
    family_leukocyte = leukocyte_evidence(cells, fdr, alpha, family)

    def shipped(groups):
        return call_ctc(cells, pvalues, fdr, alpha, core=groups)["ctc_candidate"].to_numpy()

    return {
        "1 signature FDR over all cells": q <= alpha,
        "2 + core marker": epithelial,
        "3 + CD45 veto (old rule)": epithelial & ~veto,
        "4 + leukocyte evidence model instead": epithelial & (~leukocyte | (k >= 2)),
        "5 BH over marker-positive cells": family & (~family_leukocyte | (k >= 2)),
        SHIPPED: shipped(core),
        "7 = 6 with the built-in EPCAM/keratin core": shipped(EPITHELIAL_CORE),
    }


def pvalues_of(cells, ctc, leukocytes, n_null: int, n_null_ctc: int, seed: int) -> pd.DataFrame:
    """Per-cell p-values: the CTC programme ``ctc`` with ``n_null_ctc`` nulls (extended to
    ``N_NULL_MAX``), the leukocyte programmes with ``n_null``."""
    ctc_p, _ = significance(
        cells, {CTC_SIGNATURE: ctc}, n_null=n_null_ctc, random_state=seed, n_null_max=N_NULL_MAX
    )
    leuk_p, _ = significance(cells, leukocytes, n_null=n_null, random_state=seed)
    return pd.concat([ctc_p, leuk_p], axis=1)


def run(
    n_null: int, n_null_ctc: int, seed: int, alpha: float, n_random: int, repeats: int = 1
) -> tuple[pd.DataFrame, pd.DataFrame]:
    rng = np.random.default_rng(seed)
    library = load_library([REPO / "resources" / "signatures"])
    leukocytes = {n: s for n, s in library.items() if n.startswith("IMM_")}
    core = core_marker_groups(library[CTC_SIGNATURE])
    with tempfile.TemporaryDirectory() as tmp:
        workdir = Path(tmp)
        hydro = counts_of("hydroseq_ctc_enriched", workdir, counts="X")
        celltypist = counts_of("celltypist_sample", workdir, counts="X")
        wu = counts_of("wu2020_200", workdir, counts="X", sample_key="source")
    wu = wu[wu.obs["sample"].astype(str) == "Blood"]
    shared = celltypist.var_names.intersection(wu.var_names)
    blood = ad.concat([celltypist[:, shared], wu[:, shared]], index_unique="-")
    tumour = hydro[epithelial_pool(hydro)]
    print(
        f"blood cells: {blood.n_obs}; epithelial pool: {tumour.n_obs} of {hydro.n_obs} Hydro-Seq cells"
    )
    panels = {
        "full": list(blood.var_names),
        "panel": list(blood.var_names.intersection(hydro.var_names)),
    }
    rows, controls = [], []
    grid = [(p, a, d) for p in panels for a in AMBIENT for d in DEPTHS]
    for panel, ambient_name, depth in grid:
        ambient, tumour_soup = AMBIENT[ambient_name]
        genes = panels[panel]
        # a third of the spiked tumour cells carry a leukocyte partner (CTC–leukocyte clusters)
        partners = np.where(
            rng.random(tumour.n_obs) < CLUSTER_SHARE, rng.integers(0, blood.n_obs, tumour.n_obs), -1
        )
        cells = mixture(blood, tumour, genes, depth, rng, ambient, partners, tumour_soup)
        blood_marker = (core_groups_detected(cells, core) >= 1) & ~cells.obs["truth"].to_numpy()
        pvalues = pvalues_of(cells, library[CTC_SIGNATURE], leukocytes, n_null, n_null_ctc, seed)
        truth_all = cells.obs["truth"].to_numpy()
        blood_idx, tumour_idx = np.flatnonzero(~truth_all), np.flatnonzero(truth_all)
        for fraction, repeat in ((f, r) for f in FRACTIONS for r in range(repeats)):
            n_spike = max(1, round(fraction * blood_idx.size))
            subset = np.r_[blood_idx, rng.choice(tumour_idx, n_spike, replace=False)]
            sub, p = cells[subset], pvalues.iloc[subset]
            truth = truth_all[subset]
            row = {
                "panel": panel,
                "ambient": ambient_name,
                "n_blood_marker+": int(blood_marker[subset].sum()),
                "depth": depth,
                "spike_pct": 100 * fraction,
                "repeat": repeat,
                "n_ctc": n_spike,
            }
            row["auroc"] = auroc(truth, -np.log10(p[CTC_SIGNATURE].to_numpy()))
            for step, called in steps(sub, p, alpha, core).items():
                rows.append(
                    {
                        **row,
                        "step": step,
                        "tp": int((truth & called).sum()),
                        "n_clusters": int(sub.obs["cluster"].sum()),
                        "tp_clusters": int((sub.obs["cluster"].to_numpy() & called).sum()),
                        "n_called": int(called.sum()),
                    }
                )
        if n_random and depth == 1.0 and ambient_name in ("none", "5% blood+tumour"):
            control = negative_control(
                cells, pvalues, library, panel, n_null_ctc, seed, alpha, n_random
            )
            controls.append(control.assign(ambient=ambient_name))
    return pd.DataFrame(rows), pd.concat(controls)


def negative_control(
    cells, pvalues, library, panel, n_null_ctc, seed, alpha, n_random
) -> pd.DataFrame:
    """Calls when random gene sets (as many genes as the CTC signature has present) replace it;
    the leukocyte programmes keep their p-values from ``pvalues``."""
    rng = np.random.default_rng(seed + 1)
    size = len([g for g in library[CTC_SIGNATURE].up if g in cells.var_names])
    rows = []
    for k in range(n_random):
        random_set = list(rng.choice(cells.var_names, size, replace=False))
        ctc_p, _ = significance(
            cells, {CTC_SIGNATURE: random_set}, n_null=n_null_ctc, random_state=seed,
            n_null_max=N_NULL_MAX,
        )  # fmt: skip
        trial = pvalues.copy()
        trial[CTC_SIGNATURE] = ctc_p[CTC_SIGNATURE]
        fdr = trial.apply(lambda column: benjamini_hochberg(column.to_numpy()), raw=False)
        calls = call_ctc(cells, trial, fdr, alpha, core=core_marker_groups(library[CTC_SIGNATURE]))
        rows.append({"panel": panel, "random_set": k, "n_calls": int(calls["ctc_candidate"].sum())})
    return pd.DataFrame(rows)


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--n-null",
        type=int,
        default=1000,
        help="nulls of the leukocyte programmes (pipeline default)",
    )
    parser.add_argument("--n-null-ctc", type=int, default=1000, help="nulls of the CTC programme")
    parser.add_argument(
        "--n-null-max", type=int, default=None, help="floor extension of the CTC programme's nulls"
    )
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--alpha", type=float, default=0.05)
    parser.add_argument(
        "--n-random", type=int, default=5, help="random gene sets of the negative control"
    )
    parser.add_argument(
        "--repeats", type=int, default=10, help="spike-in draws per fraction from each mixture"
    )
    args = parser.parse_args(argv)
    global N_NULL_MAX
    N_NULL_MAX = args.n_null_max
    table, controls = run(
        args.n_null, args.n_null_ctc, args.seed, args.alpha, args.n_random, args.repeats
    )
    print(summarise(table).to_markdown(index=False, floatfmt=".3f"))
    print()
    print(by_prevalence(table).to_markdown(index=False, floatfmt=".3f"))
    print()
    print(ablation(table).to_markdown(index=False, floatfmt=".3f"))
    print()
    print(
        controls.groupby(["panel", "ambient"])["n_calls"].agg(["count", "sum", "max"]).to_markdown()
    )


def summarise(table: pd.DataFrame) -> pd.DataFrame:
    """Precision, recall (pooled over the repeats) and median AUROC of the shipped call per
    condition, with the number of blood cells that detect a core marker (and so are tested)."""
    full = table[table["step"] == SHIPPED]
    keys = ["panel", "ambient", "depth", "spike_pct"]
    pooled = full.groupby(keys)[["n_ctc", "n_called", "tp"]].sum()
    # marker-positive blood cells: every repeat holds all blood cells, so one count per condition
    pooled["n_blood_marker+"] = full.groupby(keys)["n_blood_marker+"].max()
    pooled["precision"] = pooled["tp"] / pooled["n_called"].where(pooled["n_called"] > 0)
    pooled["recall"] = pooled["tp"] / pooled["n_ctc"]
    pooled["auroc"] = full.groupby(keys)["auroc"].median()
    return pooled.drop(columns="tp").reset_index()


def by_prevalence(table: pd.DataFrame) -> pd.DataFrame:
    """Precision, recall (pooled over ambient levels) and median AUROC of the shipped call per
    gene set, depth and spike-in fraction."""
    full = table[table["step"] == SHIPPED]
    keys = ["panel", "depth", "spike_pct"]
    pooled = full.groupby(keys)[["tp", "n_called", "n_ctc"]].sum()
    out = pd.DataFrame(
        {
            "precision": pooled["tp"] / pooled["n_called"].where(pooled["n_called"] > 0),
            "recall": pooled["tp"] / pooled["n_ctc"],
            "auroc": full.groupby(keys)["auroc"].median(),
        }
    )
    return out.reset_index()


def ablation(table: pd.DataFrame) -> pd.DataFrame:
    """Per step, panel and ambient level: precision and recall pooled over depths and fractions
    (sum of true calls over sum of calls and of spiked cells)."""
    columns = ["tp", "n_called", "n_ctc", "tp_clusters", "n_clusters"]
    pooled = table.groupby(["step", "panel", "ambient"], sort=False)[columns].sum()
    out = pd.DataFrame(
        {
            "precision": pooled["tp"] / pooled["n_called"],
            "recall": pooled["tp"] / pooled["n_ctc"],
            "recall of clusters": pooled["tp_clusters"] / pooled["n_clusters"],
        }
    )
    return out.reset_index()


if __name__ == "__main__":
    main()
