"""Sender → receiver ligand–receptor statistics with label-permutation p-values (CellPhoneDB's).

For a pair (ligand ``L``, receptor ``R``; a complex ``ITGA4+ITGB1`` needs every subunit) and
cell types ``s`` (sender) and ``r`` (receiver) of one sample::

    L_s  = min over ligand subunits g of mean_{cells in s} x_g
    R_r  = min over receptor subunits g of mean_{cells in r} x_g
    score = (L_s + R_r) / 2, and 0 when L_s or R_r is 0

with ``x`` the log-normalised expression (``adata.X``): CellPhoneDB's statistic (Efremova et al.
2020, Nat Protoc 15:1484) as LIANA+ computes it (``li.mt.cellphonedb``, column ``lr_means``;
Dimitrov et al. 2024, Nat Cell Biol 26:1613). The permuted scores are plain means, as in LIANA
(CellPhoneDB's own null applies the zero rule too); with ``expr_prop`` > 0 no tested row has a
zero side, so the rule only matters for ``expr_prop=0``.

Before any test, a row is kept only when every ligand subunit is detected (``x > 0``) in at
least ``expr_prop`` of the sender's cells and every receptor subunit in at least ``expr_prop``
of the receiver's cells (LIANA's ``expr_prop``, default 0.1): a type where almost no cell
expresses a gene cannot be said to send or receive through it, however extreme its rank.

The null permutes the cells among the labels as LIANA does: draw ``p =
rng.permutation(n_cells)`` from ``numpy.random.default_rng(random_state)``, one call per
permutation in order; cell ``p[j]`` then carries the label of cell ``j``. The p-value is
``(1 + #{null ≥ observed}) / (1 + n_perm)`` (never 0; Phipson & Smyth 2010), where LIANA reports
``#{null ≥ observed} / n_perm``. The counts equal LIANA's for every row whose ligand and
receptor are single genes; for a complex LIANA's null uses the subunit that was least
expressed in the observed data, the kernel the least expressed in each permutation
(CellPhoneDB's definition), so its count is at most LIANA's (``tests/test_communication_liana.py``).
FDR is Benjamini–Hochberg over the kept rows of the sample.

Samples with more than ``max_cells`` cells (atlas size) are tested on a seeded subsample of
``max_cells`` cells, each type keeping its share (at least ``min_cells``): the permutation
cost grows with cells × permutations, and a subsample of tens of thousands of cells estimates
each type's mean far more precisely than the test needs. Reported means, proportions and
scores are always from every cell.

Group sums are accumulated in float64 over each group's cells in cell order (a numba kernel that
visits only stored values, :func:`group_sums`), so results are bit-identical across runs, batch
sizes and thread counts; a permutation costs one ``Generator.permutation`` plus one pass over
the stored values of the needed genes.

The means and detection fractions over every cell are summed block by block
(:data:`BLOCK_CELLS` cells, for in-memory and on-disk input alike), from ``adata.X`` or
streamed from the sample's ``cells.h5ad`` (``expression``, the workflow's path); only the rows
of the cells the permutations use are kept. At atlas size the job therefore holds the
permutation subsample, not every cell's resource genes (docs/cluster.md, "Atlas-size
datasets").
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
#: Columns of the kernel's table; extra columns of the pairs table (theme, references, chapter…)
#: follow them.
OUTPUT_COLUMNS = [
    "sender", "receiver", "ligand", "receptor", "pair", "score", "pvalue", "fdr",
    "ligand_mean", "receptor_mean", "ligand_prop", "receptor_prop",
]  # fmt: skip
#: LIANA's defaults: the fraction of a type's cells that must express every subunit, and the
#: cells above which a sample's permutations run on a subsample.
EXPR_PROP = 0.1
MAX_CELLS = 50_000
#: Entries of the largest per-batch array (cells × permutations label codes, or permutations ×
#: groups × genes sums, or permutations × rows × subunits): bounds memory; results do not
#: depend on it.
BATCH_ENTRIES = 16_000_000
#: Cells per block of the group means and detection fractions (seedsoil.cellfile's). A block
#: holds the pairs' genes only: a file is read in pieces of a few million stored values, each
#: cut to those genes. The sums do not depend on it beyond float rounding.
BLOCK_CELLS = 20_000


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


def _gene_blocks(source, genes: list[str], block_cells: int | None = None):
    """CSR blocks of every cell of ``source`` (a :class:`~seedsoil.scoring._input.MatrixSource`),
    in order, holding the columns of ``genes`` in that order: float, summed duplicates. A file
    is read a few million stored values at a time, each piece cut to the genes
    (:meth:`~seedsoil.scoring._input.MatrixSource.selected_chunks`), so a block's full rows
    are never held at once; the blocks, and so the sums, do not depend on the pieces."""
    columns = source.var_names.get_indexer(genes)
    for _, block in source.selected_chunks(block_cells or BLOCK_CELLS, columns=columns):
        dtype = block.dtype if block.dtype in (np.float32, np.float64) else np.float64
        block = sp.csr_matrix(block, dtype=dtype)
        block.sum_duplicates()
        yield block


def _stream_statistics(blocks, codes, n_groups, n_genes, keep):
    """Per group and gene the sum of values and the number of cells with a value > 0, summed
    block by block in cell order, and the CSR of the cells at sorted positions ``keep``.

    ``codes``: group of every cell of the blocks, -1 for cells left out.
    """
    sums = np.zeros((1, n_groups, n_genes))
    detected = np.zeros((1, n_groups, n_genes))
    kept, start = [], 0
    for block in blocks:
        stop = start + block.shape[0]
        block_codes = codes[start:stop]
        rows = np.flatnonzero((np.diff(block.indptr) > 0) & (block_codes >= 0)).astype(np.int64)
        labels = np.maximum(block_codes, 0)[:, None]  # rows left out are never visited
        sums += group_sums(block.indptr, block.indices, block.data, rows, labels, n_groups, n_genes)
        positive = (block.data > 0).astype(np.float64)
        detected += group_sums(
            block.indptr, block.indices, positive, rows, labels, n_groups, n_genes
        )
        lo, hi = np.searchsorted(keep, [start, stop])
        if hi > lo:
            kept.append(block[keep[lo:hi] - start])
        start = stop
    matrix = sp.vstack(kept, format="csr") if kept else sp.csr_matrix((0, n_genes))
    return sums, detected, matrix


def lr_mean(ligand: np.ndarray, receptor: np.ndarray) -> np.ndarray:
    """CellPhoneDB's statistic: the mean of ligand and receptor expression, 0 when either is 0."""
    return np.where((ligand == 0) | (receptor == 0), 0.0, (ligand + receptor) / 2.0)


def _row_values(means: np.ndarray, groups: np.ndarray, genes: np.ndarray) -> np.ndarray:
    """``min_w means[b, groups[k], genes[k, w]]`` for every batch ``b`` and row ``k``."""
    n_genes = means.shape[2]
    flat = means.reshape(means.shape[0], -1)
    return flat[:, groups[:, None] * n_genes + genes].min(axis=2)


def permutation_cells(codes: np.ndarray, max_cells: int, min_cells: int, random_state: int):
    """Positions of the cells the permutations run on: all when there are at most ``max_cells``,
    else a seeded subsample where each type keeps ``round(n_type × max_cells / n)`` cells (at
    least ``min_cells``, at most all of its cells), in cell order."""
    if codes.size <= max_cells:
        return np.arange(codes.size)
    rng = np.random.default_rng(random_state)
    keep = []
    for group in range(int(codes.max()) + 1):
        members = np.flatnonzero(codes == group)
        size = min(members.size, max(min_cells, round(members.size * max_cells / codes.size)))
        keep.append(rng.choice(members, size, replace=False))
    return np.sort(np.concatenate(keep))


def _exceedances(csr, codes, n_groups, n_genes, rows, n_perm, random_state) -> np.ndarray:
    """``#{permutations with null ≥ observed}`` per row; ``csr`` holds only the tested cells."""
    senders, receivers, lig, rec = rows
    sizes = np.bincount(codes, minlength=n_groups).astype(np.float64)

    def sides(batch):
        means = group_sums(*csr, batch, n_groups, n_genes) / sizes[None, :, None]
        return _row_values(means, senders, lig), _row_values(means, receivers, rec)

    observed = lr_mean(*(side[0] for side in sides(codes[:, None])))
    tolerance = 1e-10 * np.abs(observed)  # equal scores summed in another order still count as ≥
    exceed = np.zeros(observed.shape, dtype=np.int64)
    rng = np.random.default_rng(random_state)
    widest = max(codes.size, n_groups * n_genes, senders.size * max(lig.shape[1], rec.shape[1]))
    batch_size = max(1, min(n_perm, BATCH_ENTRIES // max(widest, 1)))
    for start in range(0, n_perm, batch_size):
        batch = np.empty((codes.size, min(batch_size, n_perm - start)), dtype=codes.dtype)
        for b in range(batch.shape[1]):
            batch[rng.permutation(codes.size), b] = codes  # cell p[j] takes the label of cell j
        ligand, receptor = sides(batch)
        exceed += ((ligand + receptor) / 2.0 >= observed - tolerance).sum(axis=0)
    return exceed


def score_communication(
    adata,
    groups: pd.Series,
    pairs: pd.DataFrame,
    *,
    n_perm: int = 1000,
    random_state: int = 0,
    min_cells: int = 5,
    expr_prop: float = EXPR_PROP,
    max_cells: int = MAX_CELLS,
    expression=None,
) -> tuple[pd.DataFrame, dict]:
    """Test every pair for every sender → receiver cell-type combination of one sample.

    ``groups``: cell type per cell (aligned to ``adata.obs_names``; NaN or ``"unassigned"`` cells
    are left out). Types with fewer than ``min_cells`` cells and pairs with a gene absent from
    ``adata.var_names`` are skipped and listed in the returned dict
    (``{"pairs": [{"pair", "missing"}], "cell_types": {type: n_cells}}``); rows failing the
    ``expr_prop`` filter are left out of the table (and of the FDR). Results are bit-identical
    across runs, batch sizes and thread counts. ``adata.X`` may hold only the genes of
    ``pairs`` (:func:`seedsoil.cellfile.read_genes`).

    ``expression``: where the values come from, when not ``adata.X``: a ``cells.h5ad`` path
    (or anything :func:`seedsoil.scoring._input.open_source` reads) holding ``adata``'s cells in
    the same order. It is read in blocks of :data:`BLOCK_CELLS` cells (as ``adata.X`` is):
    only the permutation subsample's rows are held, so memory does not grow with the cells.

    Returns (table with :data:`OUTPUT_COLUMNS` then the other columns of ``pairs``, skipped).
    """
    extra = [c for c in pairs.columns if c not in ("ligand", "receptor")]
    columns = OUTPUT_COLUMNS + extra
    labels = groups.reindex(adata.obs_names).astype(object)
    labels = labels.where(labels.notna() & (labels != "unassigned"))
    counts = labels.value_counts()
    kept_types = sorted(counts.index[counts >= min_cells])
    skipped = {
        "pairs": [],
        "cell_types": {str(t): int(n) for t, n in counts.items() if n < min_cells},
    }
    from seedsoil.scoring._input import open_source

    source = open_source(adata if expression is None else expression)
    if expression is not None and not source.obs_names.equals(adata.obs_names):
        raise InputError(
            f"{source.label}: its cells differ from the interpreted cells; give the same "
            "cells.h5ad the annotations were read from"
        )
    genes = set(source.var_names)
    usable = []
    for i, (ligand, receptor) in enumerate(zip(pairs["ligand"], pairs["receptor"], strict=True)):
        missing = [g for g in subunits(ligand) + subunits(receptor) if g not in genes]
        if missing:
            skipped["pairs"].append(
                {"pair": f"{ligand}|{receptor}", "missing": sorted(set(missing))}
            )
        else:
            usable.append(i)
    log.info("communication: %d pair(s) skipped for absent genes", len(skipped["pairs"]))
    if not usable or len(kept_types) < 1:
        return pd.DataFrame(columns=columns), skipped
    pairs = pairs.iloc[usable].reset_index(drop=True)

    n_groups = len(kept_types)
    # Codes as small as the type count allows: a permutation draws the same for any dtype.
    all_codes = pd.Categorical(labels, categories=kept_types).codes.astype(np.int64)
    cells = np.flatnonzero(all_codes >= 0)
    codes = all_codes[cells].astype(np.min_scalar_type(n_groups - 1))
    tested = permutation_cells(codes, max_cells, min_cells, random_state)
    if tested.size < codes.size:
        log.info("communication: permutations on %d of %d cells", tested.size, codes.size)
    needed = pair_genes(pairs)
    position = {g: k for k, g in enumerate(needed)}
    n_genes = len(needed)
    blocks = _gene_blocks(source, needed)
    sums, detected, sub = _stream_statistics(blocks, all_codes, n_groups, n_genes, cells[tested])
    lig = _subunit_index(pairs["ligand"], position)
    rec = _subunit_index(pairs["receptor"], position)
    sizes = np.bincount(codes, minlength=n_groups).astype(np.float64)
    means = sums / sizes[None, :, None]
    props = detected / sizes[None, :, None]

    sender, receiver, pair = (
        a.ravel()
        for a in np.meshgrid(
            np.arange(n_groups), np.arange(n_groups), np.arange(len(pairs)), indexing="ij"
        )
    )
    ligand_prop = _row_values(props, sender, lig[pair])[0]
    receptor_prop = _row_values(props, receiver, rec[pair])[0]
    keep = (ligand_prop >= expr_prop) & (receptor_prop >= expr_prop)
    sender, receiver, pair = sender[keep], receiver[keep], pair[keep]
    ligand_mean = _row_values(means, sender, lig[pair])[0]
    receptor_mean = _row_values(means, receiver, rec[pair])[0]
    if not keep.any():
        return pd.DataFrame(columns=columns), skipped

    csr = (sub.indptr, sub.indices, sub.data, np.flatnonzero(np.diff(sub.indptr)).astype(np.int64))
    rows = (sender, receiver, lig[pair], rec[pair])
    exceed = _exceedances(csr, codes[tested], n_groups, n_genes, rows, n_perm, random_state)
    pvalue = (1.0 + exceed) / (1.0 + n_perm)

    types = np.array(kept_types, dtype=object)
    table = pd.DataFrame(
        {
            "sender": types[sender],
            "receiver": types[receiver],
            "ligand": pairs["ligand"].to_numpy()[pair],
            "receptor": pairs["receptor"].to_numpy()[pair],
            "pair": (pairs["ligand"] + "|" + pairs["receptor"]).to_numpy()[pair],
            "score": lr_mean(ligand_mean, receptor_mean),
            "pvalue": pvalue,
            "fdr": false_discovery_control(pvalue, method="bh"),
            "ligand_mean": ligand_mean,
            "receptor_mean": receptor_mean,
            "ligand_prop": ligand_prop[keep],
            "receptor_prop": receptor_prop[keep],
        }
    )
    for column in extra:
        table[column] = pairs[column].to_numpy()[pair]
    return table[columns], skipped
