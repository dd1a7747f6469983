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

**Full-length arm** (``--arm full_length``; :func:`full_length_cells`): no real full-length
blood or carcinoma cells exist offline, so the arm is assembled from real full-length values.
Leukocytes: the 19 microglia/macrophages of the Smart-seq2 oligodendroglioma built-in (real
full-length immune cells, PTPRC⁺), each drawn :data:`FL_REPLICATES` times at a lower sequencing
depth (:func:`thin_full_length`) so that the tumour cells detect :data:`FL_DEPTH_RATIO` times as
many genes (the issue's CTCs detect 2–3× the leukocytes' genes). Tumour cells: the 142 malignant
Smart-seq2 cells, into each of which the epithelial programme of a random Hydro-Seq epithelial
cell (:func:`epithelial_pool`) is transplanted by rank-matching (:func:`rank_transplant`: a gene
at quantile ``q`` of what the Hydro-Seq cell detects gets the value at quantile ``q`` of what the
recipient detects, so every value is one of the recipient's own full-length values); the
leukocytes get the same genes from Hydro-Seq blood cells (myeloid gene detected, no EPCAM), i.e.
the background keratin reads of a real CTC-enriched sample. :data:`FL_PARTNER_SHARE` of the
tumour cells share their well with a leukocyte (:data:`FL_PARTNER_WEIGHT` of the well's
transcripts, a CTC–leukocyte cluster), which with the malignant cells' own PTPRC puts PTPRC into
about 40 % of them. Values stay non-integer (TPM-like) and are log-normalised as ingest does
for ``normalised`` input. Conditions: 70 tumour cells vs 70 leukocytes (the issue's design) and
1, 2, 5, 10 % of the 152 leukocytes; the negative control adds random 20-gene sets' AUROC
(tumour vs leukocyte) of the call's ``-log10 p`` and of UCell, the depth confound.

    python benchmarks/ctc_spikein.py            # the table in benchmarks/README.md
    python benchmarks/ctc_spikein.py --n-null-max 1000   # no floor extension: floor-limited
    python benchmarks/ctc_spikein.py --arm full_length   # the full-length arm
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
    blood_background_pvalues,
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
from seedsoil.signatures import coverage, load_library  # noqa: E402

FRACTIONS = (0.001, 0.005, 0.01, 0.02, 0.05)
#: ambient RNA: name → (fraction of each cell's reads, whether the soup includes tumour cells)
AMBIENT = {"none": (0.0, False), "5% blood": (0.05, False), "5% blood+tumour": (0.05, True)}
CLUSTER_SHARE = 1 / 3  #: spiked tumour cells given the reads of a random blood cell as partner
DEPTHS = (1.0, 0.5, 0.25)
MYELOID = ("LYZ", "S100A8", "S100A9", "CD14")
BEFORE = "6 + CD45⁻ for single-marker cells (before)"
SHIPPED = "7 + leukocyte-matched null for two-marker cells (shipped)"
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


def steps(
    cells: ad.AnnData, pvalues: pd.DataFrame, alpha: float, core, background: dict
) -> dict[str, np.ndarray]:
    """The ablation: each step's calls on one subset (BH recomputed on it), ``core`` the
    signature's declared core groups, ``background`` the CTC programme's blood-background
    p-values of the subset's cells per core (``"declared"``, ``"built-in"``; NaN or None where
    not computed). Rows 1–4 run BH over every cell (the previous rule, row 4 as shipped
    before the marker family); row 5 over the marker-positive family; row 6 is
    :func:`seedsoil.interpret.ctc.call_ctc` without the background null (shipped before it),
    row 7 with it (shipped); row 8 the same with the built-in EPCAM/keratin groups in place of
    the declared core."""
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

    def shipped(groups, blood=None):
        calls = call_ctc(cells, pvalues, fdr, alpha, core=groups, background=blood)
        return calls["ctc_candidate"].to_numpy()

    return {
        "1 signature FDR over all cells": q <= alpha,
        "2 + core marker": epithelial,
        "3 + CD45 veto (old rule)": epithelial & ~veto,
        "4 + leukocyte evidence model instead": epithelial & (~leukocyte | (k >= 2)),
        "5 BH over marker-positive cells": family & (~family_leukocyte | (k >= 2)),
        BEFORE: shipped(core),
        SHIPPED: shipped(core, background["declared"]),
        "8 = 7 with the built-in EPCAM/keratin core": shipped(
            EPITHELIAL_CORE, background["built-in"]
        ),
    }


def backgrounds_of(cells, ctc, core, pvalues, alpha: float, n_null_ctc: int, seed: int) -> dict:
    """The CTC programme ``ctc``'s blood-background p-values (:func:`blood_background_pvalues`:
    against the cells whose leukocyte programmes, in ``pvalues``, are significant) per core
    (declared, built-in), all-NaN where there is no background."""
    fdr = pvalues.apply(lambda column: benjamini_hochberg(column.to_numpy()), raw=False)
    leukocytes = leukocyte_programme(fdr, alpha)
    out = {}
    for name, groups in (("declared", core), ("built-in", EPITHELIAL_CORE)):
        blood = blood_background_pvalues(
            cells, ctc, core_groups_detected(cells, groups), leukocytes, n_null=n_null_ctc,
            random_state=seed, n_null_max=N_NULL_MAX,
        )  # fmt: skip
        out[name] = np.full(cells.n_obs, np.nan) if blood is None else blood
    return out


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
        blood_p = backgrounds_of(
            cells, library[CTC_SIGNATURE], core, pvalues, alpha, n_null_ctc, seed
        )
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
            blood_sub = {name: values[subset] for name, values in blood_p.items()}
            rows += step_rows(row, sub, p, alpha, core, blood_sub)
        if n_random and depth == 1.0 and ambient_name in ("none", "5% blood+tumour"):
            control = negative_control(
                cells, pvalues, library, panel, n_null_ctc, seed, alpha, n_random
            )
            controls.append(control.assign(ambient=ambient_name))
    return pd.DataFrame(rows), pd.concat(controls)


def step_rows(row: dict, sub, p, alpha: float, core, background: dict) -> list[dict]:
    """One table row per ablation step (:func:`steps`) of one subset, ``row`` its condition."""
    truth, cluster = sub.obs["truth"].to_numpy(), sub.obs["cluster"].to_numpy()
    return [
        {
            **row,
            "step": step,
            "tp": int((truth & called).sum()),
            "n_clusters": int(cluster.sum()),
            "tp_clusters": int((cluster & called).sum()),
            "n_called": int(called.sum()),
        }
        for step, called in steps(sub, p, alpha, core, background).items()
    ]


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
        core = core_marker_groups(library[CTC_SIGNATURE])
        blood = backgrounds_of(cells, random_set, core, trial, alpha, n_null_ctc, seed)["declared"]
        calls = call_ctc(cells, trial, fdr, alpha, core=core, background=blood)
        rows.append({"panel": panel, "random_set": k, "n_calls": int(calls["ctc_candidate"].sum())})
    return pd.DataFrame(rows)


# --- full-length arm -------------------------------------------------------------------------

FL_LEUKOCYTES = "Microglia/Macrophage"  #: oligodendroglioma label of the full-length leukocytes
FL_REPLICATES = 8  #: thinned draws of each of the 19 leukocytes (152 leukocytes)
FL_DEPTH_RATIO = 2.5  #: tumour cells detect this many times the leukocytes' genes (issue: 2–3×)
FL_PARTNER_SHARE = 1 / 3  #: tumour cells whose well also holds a leukocyte (a cluster)
#: share of a cluster well's transcripts from the leukocyte: a leukocyte holds several-fold less
#: RNA than a carcinoma cell
FL_PARTNER_WEIGHT = 0.25
FL_BALANCED = 70  #: the issue's design: ~70 CTCs and ~70 leukocytes
FL_FRACTIONS = (0.01, 0.02, 0.05, 0.1)  #: rarer: CTCs as a fraction of the 152 leukocytes
#: signatures whose up genes form the transplanted epithelial programme
EPITHELIAL_PROGRAMMES = (
    CTC_SIGNATURE, "EMT_epithelial", "ID_epithelial_tumour", "CTC_cluster_adhesion"
)  # fmt: skip


def rank_transplant(
    donor: np.ndarray, genes: np.ndarray, recipient: np.ndarray, scale: float = 1.0
) -> np.ndarray:
    """Values of a donor cell's ``genes`` on a recipient cell's scale, by rank-matching.

    ``donor``: the donor cell's values over its whole panel; ``genes``: indices into it;
    ``recipient``: the recipient cell's values. A gene the donor does not detect stays 0. A
    detected one has mid-rank quantile ``q = (#{d < c} + ½ #{d = c}) / n`` among the donor's
    ``n`` detected values ``d`` and gets the value at quantile ``q`` of the recipient's detected
    values (``numpy.quantile``, ``method="inverted_cdf"``: always one of the recipient's own
    values). The donor's integer counts thus become real full-length values of the recipient,
    keeping where each gene stands in its own cell (EPCAM among the top of a Hydro-Seq cell's
    reads lands among the top of the Smart-seq2 cell's TPM). ``scale < 1`` uses quantile
    ``scale q`` instead: a dimmer programme (``--dim``)."""
    detected = np.sort(donor[donor > 0])
    pool = np.sort(recipient[recipient > 0])
    out = np.zeros(genes.size)
    values = donor[genes]
    hit = values > 0
    if not hit.any() or pool.size == 0:
        return out
    below = np.searchsorted(detected, values[hit], side="left")
    tied = np.searchsorted(detected, values[hit], side="right") - below
    q = scale * (below + 0.5 * tied) / detected.size
    out[hit] = np.quantile(pool, q, method="inverted_cdf")
    return out


def thin_full_length(values: np.ndarray, keep_fraction: float, rng) -> np.ndarray:
    """A full-length cell sequenced shallower: gene ``g`` stays detected with probability
    ``1 − exp(−λ v_g / Σv)``, the chance that a Poisson number of reads of mean ``λ v_g / Σv``
    is at least one, with ``λ`` (reads) solved so that ``keep_fraction`` of the detected genes
    stay detected in expectation; kept genes keep their real value (expected counts of the
    reads that remain are rescaled with the cell at normalisation)."""
    p = values / values.sum()
    detected = p > 0
    target = keep_fraction * detected.sum()
    low, high = 0.0, 1.0
    while (1 - np.exp(-high * p[detected])).sum() < target:
        high *= 2
    for _ in range(60):  # bisection on the expected number of genes kept
        mid = (low + high) / 2
        low, high = (mid, high) if (1 - np.exp(-mid * p[detected])).sum() < target else (low, mid)
    kept = rng.random(values.size) < 1 - np.exp(-high * p)
    return np.where(kept, values, 0.0)


def dense_rows(adata: ad.AnnData, rows=None) -> np.ndarray:
    """``X`` (or its ``rows``) as a dense float64 array."""
    X = adata.X if rows is None else adata.X[rows]
    return np.asarray(X.toarray() if sp.issparse(X) else X, dtype=np.float64)


def hydroseq_blood(hydro: ad.AnnData) -> np.ndarray:
    """Hydro-Seq blood cells: a myeloid gene (:data:`MYELOID`) detected and no EPCAM count."""
    counts = hydro.layers["counts"]
    columns = [hydro.var_names.get_loc(g) for g in MYELOID if g in hydro.var_names]
    myeloid = np.asarray((counts[:, columns] > 0).sum(axis=1)).ravel() > 0
    epcam = np.asarray(counts[:, hydro.var_names.get_loc("EPCAM")].todense()).ravel() > 0
    return np.flatnonzero(myeloid & ~epcam)


def full_length_cells(
    oligo: ad.AnnData, hydro: ad.AnnData, library, rng, scale: float = 1.0
) -> ad.AnnData:
    """The full-length arm's cells (module docstring): every malignant Smart-seq2 cell with a
    transplanted epithelial programme, a third of them sharing the well with a leukocyte, and
    :data:`FL_REPLICATES` shallower draws of each microglia/macrophage; TPM-like values
    (``obs``: ``truth``, ``cluster``, ``origin`` = the source cell), not log-normalised."""
    programme = sorted(
        {g for name in EPITHELIAL_PROGRAMMES for g in library[name].up}
        & set(hydro.var_names) - set(oligo.var_names)
    )
    genes = list(oligo.var_names) + programme
    donor_genes = hydro.var_names.get_indexer(programme)
    hydro_counts = hydro.layers["counts"]
    epithelial, blood = epithelial_pool(hydro), hydroseq_blood(hydro)
    labels = oligo.obs["cell_type"].astype(str).to_numpy()
    malignant = np.flatnonzero(np.char.startswith(labels.astype(str), "malignant"))
    leukocytes = np.flatnonzero(labels == FL_LEUKOCYTES)
    values = dense_rows(oligo)

    def transplanted(cell: int, donors: np.ndarray, q: float = 1.0) -> np.ndarray:
        donor = np.asarray(hydro_counts[rng.choice(donors)].todense(), np.float64).ravel()
        return np.r_[values[cell], rank_transplant(donor, donor_genes, values[cell], q)]

    tumour = np.vstack([transplanted(c, epithelial, scale) for c in malignant])
    leuk = np.vstack([transplanted(c, blood) for c in leukocytes])
    tumour_detected = np.median((tumour > 0).sum(axis=1))
    keep = tumour_detected / FL_DEPTH_RATIO / np.median((leuk > 0).sum(axis=1))
    thinned = np.vstack(
        [thin_full_length(row, keep, rng) for row in leuk for _ in range(FL_REPLICATES)]
    )
    partner = np.where(
        rng.random(tumour.shape[0]) < FL_PARTNER_SHARE,
        rng.integers(0, leuk.shape[0], tumour.shape[0]),
        -1,
    )
    share = lambda m: m / m.sum(axis=1, keepdims=True)  # noqa: E731
    wells = share(tumour)
    wells[partner >= 0] = (1 - FL_PARTNER_WEIGHT) * wells[partner >= 0] + FL_PARTNER_WEIGHT * share(
        leuk[partner[partner >= 0]]
    )
    matrix = np.vstack([share(thinned), wells]) * 1e5  # the built-in's per-cell total
    n_leuk = thinned.shape[0]
    obs = pd.DataFrame(
        {
            "truth": np.r_[np.zeros(n_leuk, bool), np.ones(tumour.shape[0], bool)],
            "cluster": np.r_[np.zeros(n_leuk, bool), partner >= 0],
            "origin": np.r_[
                np.repeat(oligo.obs_names[leukocytes], FL_REPLICATES), oligo.obs_names[malignant]
            ],
        },
        index=[f"leukocyte{i}" for i in range(n_leuk)]
        + [f"tumour{i}" for i in range(tumour.shape[0])],
    )
    return ad.AnnData(sp.csr_matrix(matrix), obs=obs, var=pd.DataFrame(index=genes))


def full_length_mixture(workdir: Path, library, rng, scale: float = 1.0) -> ad.AnnData:
    """:func:`full_length_cells` from the built-ins, log-normalised as ingest treats
    ``normalised`` input (``layers["tpm"]`` keeps the TPM-like values)."""
    oligo = ad.read_h5ad(
        fetch_builtin("oligodendroglioma", workdir / BUILTINS["oligodendroglioma"].filename, WHEELS)
    )
    hydro = counts_of("hydroseq_ctc_enriched", workdir, counts="X")
    cells = full_length_cells(oligo, hydro, library, rng, scale)
    cells.layers["tpm"] = cells.X.copy()
    cells.X = log_normalise(cells.X)
    return cells


def depth_confound(
    cells, truth, leukocytes: np.ndarray, n_sets: int, seed: int, n_null: int
) -> pd.DataFrame:
    """AUROC (tumour vs leukocyte) of random 20-gene sets: of the call's evidence ``-log10 p``
    (the engine's whole-sample null, and the null matched on the ``leukocytes``, computed here
    for every cell), of UCell with ``max_rank="auto"`` and 1500, and of the mean; sets drawn
    from the genes detected in at least one cell. A score that rises with genes detected
    separates the classes of this arm (tumour cells detect 2.5× the genes) for no biological
    reason."""
    from seedsoil.interpret.ctc import background_pvalues
    from seedsoil.scoring import score

    rng = np.random.default_rng(seed + 2)
    detected = cells.var_names[np.asarray((cells.X > 0).sum(axis=0)).ravel() > 0]
    sets = {f"random{k}": list(rng.choice(detected, 20, replace=False)) for k in range(n_sets)}
    pvalues, _ = significance(cells, sets, n_null=n_null, random_state=seed)
    every = np.ones(cells.n_obs, bool)
    blood = pd.DataFrame(
        {
            name: background_pvalues(
                cells, genes, leukocytes, every, n_null=n_null, random_state=seed
            )
            for name, genes in sets.items()
        },
        index=cells.obs_names,
    )
    frames = {
        "-log10 p, whole-sample null": -np.log10(pvalues),
        "-log10 p, leukocyte-matched null": -np.log10(blood),
        "ucell, max_rank auto": score(cells, sets, "ucell", max_rank="auto"),
        "ucell, max_rank 1500": score(cells, sets, "ucell", max_rank=1500),
        "mean": score(cells, sets, "mean"),
    }
    return pd.DataFrame(
        {name: [auroc(truth, frame[s].to_numpy()) for s in sets] for name, frame in frames.items()}
    )


def run_full_length(
    n_null: int,
    n_null_ctc: int,
    seed: int,
    alpha: float,
    n_random: int,
    repeats: int = 10,
    scale: float = 1.0,
) -> tuple[pd.DataFrame, pd.DataFrame, pd.DataFrame]:
    """The full-length arm: (per-condition rows as :func:`run`'s, negative control, random
    20-gene sets' AUROC)."""
    from seedsoil.scoring import score

    rng = np.random.default_rng(seed)
    library = load_library([REPO / "resources" / "signatures"])
    core = core_marker_groups(library[CTC_SIGNATURE])
    with tempfile.TemporaryDirectory() as tmp:
        cells = full_length_mixture(Path(tmp), library, rng, scale)
    # the leukocyte programmes the workflow would score here (its coverage rule)
    scored = coverage(library, cells.var_names).set_index("signature")["scored"]
    leukocytes = {n: s for n, s in library.items() if n.startswith("IMM_") and scored[n]}
    truth_all = cells.obs["truth"].to_numpy()
    n_detected = np.asarray((cells.X > 0).sum(axis=1)).ravel()
    ptprc = np.asarray(cells[:, "PTPRC"].X.todense()).ravel() > 0
    marker = core_groups_detected(cells, core)
    ucell = {
        m: score(cells, {CTC_SIGNATURE: library[CTC_SIGNATURE]}, "ucell", max_rank=m)
        for m in ("auto", 1500)
    }
    print(
        f"full-length arm: {int((~truth_all).sum())} leukocytes, {int(truth_all.sum())} tumour "
        f"cells ({int(cells.obs['cluster'].sum())} with a leukocyte partner); genes detected "
        f"(median) leukocytes {np.median(n_detected[~truth_all]):.0f}, tumour "
        f"{np.median(n_detected[truth_all]):.0f}; PTPRC detected in "
        f"{ptprc[truth_all].mean():.0%} of tumour cells, {ptprc[~truth_all].mean():.0%} of "
        f"leukocytes; a core marker in {(marker[truth_all] >= 1).mean():.0%} of tumour cells, "
        f"{(marker[~truth_all] >= 1).mean():.0%} of leukocytes; max_rank auto = "
        f"{ucell['auto'].attrs['options']['max_rank']}; AUROC of {CTC_SIGNATURE} with ucell "
        f"auto {auroc(truth_all, ucell['auto'][CTC_SIGNATURE].to_numpy()):.3f}, 1500 "
        f"{auroc(truth_all, ucell[1500][CTC_SIGNATURE].to_numpy()):.3f}"
    )
    leuk_idx, tumour_idx = np.flatnonzero(~truth_all), np.flatnonzero(truth_all)
    designs = [("70 vs 70", None)] + [(f"{100 * f:g}% of leukocytes", f) for f in FL_FRACTIONS]
    rows = []
    for (design, fraction), repeat in ((d, r) for d in designs for r in range(repeats)):
        if fraction is None:
            blood = rng.choice(leuk_idx, FL_BALANCED, replace=False)
            n_spike = FL_BALANCED
        else:
            blood, n_spike = leuk_idx, max(1, round(fraction * leuk_idx.size))
        subset = np.r_[blood, rng.choice(tumour_idx, n_spike, replace=False)]
        # each design is its own sample: the nulls' expression bins depend on its composition
        sub = cells[subset].copy()
        p = pvalues_of(sub, library[CTC_SIGNATURE], leukocytes, n_null, n_null_ctc, seed)
        blood_p = backgrounds_of(sub, library[CTC_SIGNATURE], core, p, alpha, n_null_ctc, seed)
        row = {"design": design, "repeat": repeat, "n_ctc": n_spike}
        row["auroc"] = auroc(sub.obs["truth"].to_numpy(), -np.log10(p[CTC_SIGNATURE].to_numpy()))
        rows += step_rows(row, sub, p, alpha, core, blood_p)
    pvalues = pvalues_of(cells, library[CTC_SIGNATURE], leukocytes, n_null, n_null_ctc, seed)
    control = negative_control(
        cells, pvalues, library, "full_length", n_null_ctc, seed, alpha, n_random
    )
    leukocyte_fdr = pvalues.apply(lambda column: benjamini_hochberg(column.to_numpy()))
    confound = depth_confound(
        cells, truth_all, leukocyte_programme(leukocyte_fdr), max(n_random, 10), seed, n_null
    )
    return pd.DataFrame(rows), control, confound


def summarise_full_length(table: pd.DataFrame) -> pd.DataFrame:
    """Per design and step: precision, recall (pooled over the draws), recall of the clusters,
    median AUROC of the CTC programme's ``-log10 p``."""
    pooled = table.groupby(["design", "step"], sort=False)[
        ["tp", "n_called", "n_ctc", "tp_clusters", "n_clusters"]
    ].sum()
    out = pd.DataFrame(
        {
            "precision": pooled["tp"] / pooled["n_called"].where(pooled["n_called"] > 0),
            "recall": pooled["tp"] / pooled["n_ctc"],
            "recall of clusters": pooled["tp_clusters"] / pooled["n_clusters"],
            "auroc": table.groupby(["design", "step"], sort=False)["auroc"].median(),
        }
    )
    return out.reset_index()


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
    parser.add_argument(
        "--arm",
        choices=("droplet", "full_length"),
        default="droplet",
        help="droplet: Hydro-Seq cells in UMI blood (the grid); full_length: the Smart-seq2 arm",
    )
    parser.add_argument(
        "--dim",
        type=float,
        default=1.0,
        help="full_length: transplant the epithelial genes at this fraction of their quantile",
    )
    args = parser.parse_args(argv)
    global N_NULL_MAX
    N_NULL_MAX = args.n_null_max
    if args.arm == "full_length":
        table, control, confound = run_full_length(
            args.n_null, args.n_null_ctc, args.seed, args.alpha, args.n_random, args.repeats,
            args.dim,
        )  # fmt: skip
        print(summarise_full_length(table).to_markdown(index=False, floatfmt=".3f"))
        print()
        print(control["n_calls"].agg(["count", "sum", "max"]).to_frame().T.to_markdown(index=False))
        print()
        summary = confound.agg(["median", "min", "max"]).T
        summary["median |AUROC - 0.5|"] = (confound - 0.5).abs().median()
        print(summary.to_markdown(floatfmt=".3f"))
        return
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
