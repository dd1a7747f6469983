"""Sender → receiver ligand–receptor scores with label-permutation p-values.

For a curated pair (``resources/communication/pairs.tsv``) and cell types ``s`` (sender) and
``r`` (receiver) of one sample::

    L_s = min over ligand subunits g of mean_{cells in s} x_g
    R_r = min over receptor subunits g of mean_{cells in r} x_g
    score = L_s × R_r

with ``x`` the log-normalised expression (``adata.X``). A receptor written ``ITGA4+ITGB1`` is a
complex that needs every subunit, so its expression is its least-expressed subunit (the
CellPhoneDB convention, Efremova et al. 2020). The p-value is the fraction of ``n_perm`` label
permutations (cell-type labels shuffled among the sample's cells, as CellPhoneDB/LIANA do) whose
score is at least the observed one, ``(1 + #{null ≥ obs}) / (1 + n_perm)``; FDR is
Benjamini–Hochberg over all rows of the sample. The product is used rather than the mean of the
two so that a pair scores zero when either side is silent.

Group sums are accumulated in float64 over each group's cells in cell order (a numba kernel that
visits only stored values, :func:`group_sums`), the order of the sparse one-hot × expression
product it replaces, so scores and p-values are bit-identical to it; a permutation costs one
``Generator.permutation`` of the codes plus one pass over the stored values of the needed genes.
"""

from __future__ import annotations

import logging
from pathlib import Path

import numba
import numpy as np
import pandas as pd
import scipy.sparse as sp
from scipy.stats import false_discovery_control

from seedsoil.errors import InputError

log = logging.getLogger(__name__)

PAIR_COLUMNS = ("ligand", "receptor", "theme", "description", "references")
OUTPUT_COLUMNS = [
    "sender", "receiver", "ligand", "receptor", "pair", "theme",
    "score", "pvalue", "fdr", "references", "ligand_mean", "receptor_mean",
]  # fmt: skip
#: Cell × permutation label codes held at once (1-byte codes for < 256 types: ~32 MB; bounds
#: memory, results do not depend on it).
BATCH_ENTRIES = 32_000_000


def default_pairs_path() -> Path:
    """The shipped curated table: ``<repo>/resources/communication/pairs.tsv``."""
    return Path(__file__).resolve().parents[4] / "resources" / "communication" / "pairs.tsv"


def load_pairs(path: str | Path | None = None) -> pd.DataFrame:
    """Read and check a pairs table (tab-separated, columns :data:`PAIR_COLUMNS`)."""
    path = Path(path) if path is not None else default_pairs_path()
    try:
        table = pd.read_csv(path, sep="\t", dtype=str, keep_default_na=False)
    except FileNotFoundError:
        raise InputError(
            f"{path}: communication pairs table not found; give a TSV with columns {', '.join(PAIR_COLUMNS)}"
        ) from None
    missing = [c for c in PAIR_COLUMNS if c not in table.columns]
    if missing:
        raise InputError(
            f"{path}: missing column(s) {', '.join(missing)}; expected {', '.join(PAIR_COLUMNS)}"
        )
    for column in ("ligand", "receptor"):
        empty = table.index[table[column].str.strip() == ""]
        if len(empty):
            raise InputError(
                f"{path}: row {int(empty[0]) + 2} has an empty '{column}'; fill it or delete the row"
            )
    return table[list(PAIR_COLUMNS)].reset_index(drop=True)


def subunits(spec: str) -> list[str]:
    """``"ITGA4+ITGB1"`` → ``["ITGA4", "ITGB1"]`` (all subunits are needed)."""
    return [g.strip() for g in spec.split("+") if g.strip()]


def _subunit_index(specs, position: dict[str, int]) -> np.ndarray:
    """Column indices of each spec's subunits, padded by repeating the first (min is unchanged)."""
    lists = [[position[g] for g in subunits(s)] for s in specs]
    width = max(len(x) for x in lists)
    return np.array([x + [x[0]] * (width - len(x)) for x in lists], dtype=np.int64)


def pair_genes(pairs: pd.DataFrame) -> list[str]:
    """Every ligand and receptor subunit of ``pairs``, sorted (the genes scoring reads)."""
    return sorted({g for s in pd.concat([pairs["ligand"], pairs["receptor"]]) for g in subunits(s)})


@numba.njit(parallel=True, cache=True)
def group_sums(indptr, indices, data, rows, codes, n_groups, n_genes):
    """``out[b, g, k]`` = sum of ``X[i, k]`` over cells ``i`` with ``codes[i, b] == g``.

    ``X`` is CSR (``indptr``, ``indices``, ``data``); only ``rows`` (the cells with a stored
    value) are visited. ``codes`` is cells × permutations, so each stored value is read once for
    a block of permutations. Every sum is float64 over its cells in increasing order whatever the
    thread count (threads split the permutations).
    """
    n_batch = codes.shape[1]
    block = 16  # permutations per pass over the values (measured fastest of 4–32)
    out = np.zeros((n_genes, n_groups, n_batch), dtype=np.float64)
    for part in numba.prange((n_batch + block - 1) // block):
        lo, hi = part * block, min(n_batch, (part + 1) * block)
        for r in range(rows.size):
            i = rows[r]
            for jj in range(indptr[i], indptr[i + 1]):
                gene, value = indices[jj], np.float64(data[jj])
                for b in range(lo, hi):
                    out[gene, codes[i, b], b] += value
    return out.transpose(2, 1, 0)


def _pair_scores(sums: np.ndarray, sizes: np.ndarray, lig: np.ndarray, rec: np.ndarray):
    """Scores (n_batch, sender, receiver, pair) and the ligand/receptor means from group sums."""
    means = sums / sizes[None, :, None]  # (n_batch, n_groups, n_genes)
    ligand = means[:, :, lig].min(axis=3)  # (n_batch, n_groups, n_pairs)
    receptor = means[:, :, rec].min(axis=3)
    return ligand[:, :, None, :] * receptor[:, None, :, :], ligand, receptor


def _expression(adata, cells: np.ndarray, genes: list[str]) -> sp.csr_matrix:
    """CSR of ``cells`` × ``genes`` from ``adata.X`` with summed duplicates (float32 stays float32:
    the kernel sums in float64, and the float32 → float64 cast is exact)."""
    columns = adata.var_names.get_indexer(genes)
    matrix = adata.X
    matrix = matrix[:, columns] if sp.issparse(matrix) else np.asarray(matrix)[:, columns]
    dtype = matrix.dtype if matrix.dtype in (np.float32, np.float64) else np.float64
    matrix = sp.csr_matrix(matrix[cells], dtype=dtype)
    matrix.sum_duplicates()
    return matrix


def score_communication(
    adata,
    groups: pd.Series,
    pairs: pd.DataFrame,
    *,
    n_perm: int = 1000,
    random_state: int = 0,
    min_cells: int = 5,
) -> tuple[pd.DataFrame, dict]:
    """Score every pair for every sender → receiver cell-type combination of one sample.

    ``groups``: cell type per cell (aligned to ``adata.obs_names``; NaN or ``"unassigned"`` cells
    are left out). Types with fewer than ``min_cells`` cells and pairs with a gene absent from
    ``adata.var_names`` are skipped and listed in the returned dict
    (``{"pairs": [{"pair", "missing"}], "cell_types": {type: n_cells}}``).
    Permutations come from ``numpy.random.default_rng(random_state)``, one ``permutation`` call
    each in order, so results are bit-identical across runs, batch sizes and thread counts.
    ``adata.X`` may hold only the genes of ``pairs`` (:func:`seedsoil.cellfile.read_genes`).

    Returns (table with :data:`OUTPUT_COLUMNS`, skipped).
    """
    labels = groups.reindex(adata.obs_names).astype(object)
    labels = labels.where(labels.notna() & (labels != "unassigned"))
    counts = labels.value_counts()
    kept_types = sorted(counts.index[counts >= min_cells])
    skipped = {
        "pairs": [],
        "cell_types": {str(t): int(n) for t, n in counts.items() if n < min_cells},
    }
    genes = set(adata.var_names)
    usable = []
    for i, row in pairs.iterrows():
        missing = [g for g in subunits(row["ligand"]) + subunits(row["receptor"]) if g not in genes]
        if missing:
            skipped["pairs"].append(
                {"pair": f"{row['ligand']}|{row['receptor']}", "missing": sorted(set(missing))}
            )
        else:
            usable.append(i)
    for item in skipped["pairs"]:
        log.info(
            "communication: skipping %s (absent: %s)", item["pair"], ", ".join(item["missing"])
        )
    if not usable or len(kept_types) < 1:
        return pd.DataFrame(columns=OUTPUT_COLUMNS), skipped
    pairs = pairs.loc[usable].reset_index(drop=True)

    cells = np.flatnonzero(labels.isin(kept_types).to_numpy())
    n_groups = len(kept_types)
    # Codes as small as the type count allows: a shuffle draws the same swaps for any dtype.
    codes = pd.Categorical(labels.iloc[cells], categories=kept_types).codes.astype(
        np.min_scalar_type(n_groups - 1)
    )
    needed = pair_genes(pairs)
    position = {g: k for k, g in enumerate(needed)}
    expression = _expression(adata, cells, needed)
    nonempty = np.flatnonzero(np.diff(expression.indptr)).astype(np.int64)
    csr = (expression.indptr, expression.indices, expression.data, nonempty)
    n_genes = len(needed)
    lig = _subunit_index(pairs["ligand"], position)
    rec = _subunit_index(pairs["receptor"], position)
    sizes = np.bincount(codes, minlength=n_groups).astype(np.float64)

    observed_sums = group_sums(*csr, codes[:, None], n_groups, n_genes)
    observed, ligand_mean, receptor_mean = _pair_scores(observed_sums, sizes, lig, rec)
    observed = observed[0]
    tolerance = 1e-10 * np.abs(observed)  # equal scores summed in another order still count as ≥
    exceed = np.zeros(observed.shape, dtype=np.int64)
    rng = np.random.default_rng(random_state)
    batch_size = max(1, min(n_perm, BATCH_ENTRIES // max(codes.size, 1)))
    for start in range(0, n_perm, batch_size):
        batch = np.stack(
            [rng.permutation(codes) for _ in range(min(batch_size, n_perm - start))], axis=1
        )
        null, _, _ = _pair_scores(group_sums(*csr, batch, n_groups, n_genes), sizes, lig, rec)
        exceed += (null >= observed - tolerance).sum(axis=0)
    pvalue = (1.0 + exceed) / (1.0 + n_perm)

    sender, receiver, pair = np.meshgrid(
        np.arange(n_groups), np.arange(n_groups), np.arange(len(pairs)), indexing="ij"
    )
    sender, receiver, pair = sender.ravel(), receiver.ravel(), pair.ravel()
    types = np.array(kept_types, dtype=object)
    table = pd.DataFrame(
        {
            "sender": types[sender],
            "receiver": types[receiver],
            "ligand": pairs["ligand"].to_numpy()[pair],
            "receptor": pairs["receptor"].to_numpy()[pair],
            "pair": (pairs["ligand"] + "|" + pairs["receptor"]).to_numpy()[pair],
            "theme": pairs["theme"].to_numpy()[pair],
            "score": observed[sender, receiver, pair],
            "pvalue": pvalue[sender, receiver, pair],
            "fdr": false_discovery_control(pvalue[sender, receiver, pair], method="bh"),
            "references": pairs["references"].to_numpy()[pair],
            "ligand_mean": ligand_mean[0][sender, pair],
            "receptor_mean": receptor_mean[0][receiver, pair],
        }
    )
    return table[OUTPUT_COLUMNS], skipped
