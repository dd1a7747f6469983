"""Cell-type assignment from identity and immune signatures, and agreement with given labels.

:func:`assign_cell_types` turns the identity (``ID_*``) and immune (``IMM_*``) signature scores of
one sample into a type per cell, a posterior-like confidence and the marker genes that carried the
call. Every cell with evidence gets a type; a cell stays ``"unassigned"`` only when no type is
admissible (core markers) or its best type has no evidence (it does not beat half of the matched
random signatures, in the cell and its neighbourhood, and no sibling of its lineage does). The exact definition is in :func:`assign_cell_types` and
``docs/interpretation.md``; the figures on labelled data are from
``benchmarks/evaluate_celltypes.py``.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from pathlib import Path

import numpy as np
import pandas as pd

from ..util import return_freed_memory
from .knn import EXACT_MAX_CELLS, N_NEIGHBORS, neighbour_index
from .refine import refine_calls
from .transfer import transfer_labels

UNASSIGNED = "unassigned"
UNLABELLED = "unlabelled"

#: Signature name → cell type it identifies. Immune types come first (IMM_*), then
#: tumour/stromal identities (ID_*). Signatures missing from a sample's scores are skipped.
CELL_TYPE_SIGNATURES: dict[str, str] = {
    "IMM_macrophage_TAM": "macrophage",
    "IMM_monocyte_classical": "classical monocyte",
    "IMM_monocyte_nonclassical": "non-classical monocyte",
    "IMM_dendritic": "dendritic",
    "IMM_neutrophil": "neutrophil",
    "IMM_mast": "mast",
    "IMM_CD8_cytotoxic": "CD8 T",
    "IMM_CD4_T": "CD4 T",
    "IMM_Treg": "Treg",
    "IMM_gammadelta_IL17": "gammadelta T",
    "IMM_NK": "NK",
    "IMM_B": "B",
    "IMM_plasma": "plasma",
    "IMM_MDSC": "MDSC",
    "IMM_platelet": "platelet",
    "ID_epithelial_tumour": "epithelial/tumour",
    "ID_fibroblast": "fibroblast",
    "ID_endothelial": "endothelial",
    "ID_pericyte_smooth_muscle": "pericyte/smooth muscle",
    "ID_glial": "glial",
}

#: Subtype → lineage-level type (CHETAH-style intermediate node). A cell whose own best subtype
#: has no evidence while a sibling subtype of the same lineage does gets the lineage: its lineage
#: programme is there, its subtype is not resolved on this panel.
LINEAGE_TYPES: dict[str, str] = {
    **dict.fromkeys(["CD8 T", "CD4 T", "Treg", "gammadelta T", "NK"], "T/NK cell"),
    **dict.fromkeys(["B", "plasma"], "B lineage"),
    **dict.fromkeys(
        ["macrophage", "classical monocyte", "non-classical monocyte", "dendritic"],
        "mononuclear phagocyte",
    ),
}

#: Types that count as immune (haematopoietic) in immune-composition summaries.
IMMUNE_TYPES: frozenset[str] = frozenset(
    t for s, t in CELL_TYPE_SIGNATURES.items() if s.startswith("IMM_")
) | frozenset(LINEAGE_TYPES.values())

#: Columns :func:`assign_cell_types` returns, in order.
ASSIGNMENT_COLUMNS = [
    "cell_type_assigned", "assignment_score", "assignment_confidence", "assignment_markers",
    "assignment_method",
]  # fmt: skip

#: Most markers listed per call in ``assignment_markers``.
MAX_MARKERS = 5
#: Cells per block of the row-wise steps (neighbourhood means, posterior): their temporaries are
#: block × types rather than cells × types (a few MB instead of hundreds at a million cells).
#: Every row is computed by the same operations as in one block, so results do not depend on it.
BLOCK_CELLS = 65_536

#: Sibling contrasts within a lineage: ``(types_a, genes_a, types_b, genes_b, b_needs_genes)``.
#: Sibling types share most of their signature genes (B and plasma cells the immunoglobulin
#: programme), so their scores barely separate them; a few genes do, by biology: the B-cell surface
#: genes MS4A1/CD19, lost on plasma differentiation, vs the plasma-cell genes JCHAIN/PRDM1/SDC1
#: (CD138; BCMA/TNFRSF17 is left out: memory B cells express it too). ``b_needs_genes``: side b
#: is a differentiated state that needs its own genes, so on a panel without them a plasma call
#: falls back to B where MS4A1/CD19 is detected. T cells vs NK cells: the CD3 complex, which NK
#: cells lack, vs the NK receptors KLRF1/NCR1/SH2D1B and CD56/CD16 (NCAM1/FCGR3A): the
#: cytotoxic programme both share cannot tell them apart. Platelets vs endothelial cells:
#: megakaryocytes and platelets carry VWF, EGFL7, ESAM and PECAM1 of the endothelial programme,
#: so in blood an "endothelial" call is decided by the platelet glycoproteins/chemokines
#: (ITGA2B, GP9, GP1BA/B, GP6, PPBP, PF4) vs endothelium-only genes (CDH5, KDR, TEK, CLDN5,
#: EMCN, PLVAP, ROBO4, FLT1); endothelial needs its own genes. A CD8 (CD8A/CD8B) vs CD4
#: (CD4/CD40LG) contrast was tried and rejected: CD4 transcripts drop out in droplet data, and on
#: Wu 2020 it moved 36 instead of 17 of 86 CD4 T cells to CD8 T.
SIBLING_CONTRASTS = (
    (("B",), ("MS4A1", "CD19"), ("plasma",), ("JCHAIN", "PRDM1", "SDC1"), True),
    (
        ("CD8 T", "CD4 T", "Treg", "gammadelta T"),
        ("CD3E", "CD3D", "CD3G"),
        ("NK",),
        ("KLRF1", "NCR1", "SH2D1B", "NCAM1", "FCGR3A"),
        False,
    ),
    (
        ("platelet",),
        ("ITGA2B", "GP9", "GP1BA", "GP1BB", "GP6", "PPBP", "PF4"),
        ("endothelial",),
        ("CDH5", "KDR", "TEK", "CLDN5", "EMCN", "PLVAP", "ROBO4", "FLT1"),
        True,
    ),
    (
        ("classical monocyte", "non-classical monocyte", "macrophage"),
        ("CD14", "FCN1", "VCAN", "S100A8", "S100A9", "S100A12", "C1QA", "C1QB", "C1QC", "CD163"),
        ("dendritic",),
        ("FCER1A", "CD1C", "CLEC10A", "CLEC9A", "XCR1", "LILRA4", "CLEC4C", "LAMP3"),
        True,
    ),
)


def contrast_genes() -> list[str]:
    """Every gene of :data:`SIBLING_CONTRASTS`, in order (read from ``X`` for the assignment)."""
    return list(dict.fromkeys(g for c in SIBLING_CONTRASTS for g in (*c[1], *c[3])))


def robust_z(values: np.ndarray) -> np.ndarray:
    """Column-wise robust z-scores ``(x − median) / (1.4826 · MAD)`` (MAD scaled to the standard
    deviation of a normal); a column with MAD 0 uses its standard deviation, and a constant
    column gives zeros. Standardising within the sample puts signatures of different length and
    gene detection on one scale (as Seurat's module scores are compared after scaling)."""
    # Column by column and in place: the same operations per value as on the whole array, with
    # one cells × signatures result instead of five temporaries of that size.
    values = np.asarray(values, dtype=np.float64)
    out = np.empty_like(values)
    median = np.median(values, axis=0)
    scale = np.empty(values.shape[1])
    for j in range(values.shape[1]):
        np.subtract(values[:, j], median[j], out=out[:, j])
        scale[j] = 1.4826 * np.median(np.abs(out[:, j]))
    flat = np.flatnonzero(~(scale > 0))
    if flat.size:  # the standard deviation where the MAD is 0; computed on the whole array,
        # whose summation order a column subset would not keep (last-bit differences)
        scale[flat] = values.std(axis=0)[flat]
    for j in range(values.shape[1]):
        if scale[j] > 0:
            out[:, j] /= scale[j]
        else:
            out[:, j] = 0.0
    return out


def neighbourhood_mean(values: np.ndarray, neighbours: np.ndarray) -> np.ndarray:
    """Mean of ``values`` (cells × m) over each cell's neighbours; the cell's own row when it has
    none."""
    if neighbours.shape[1] == 0:
        return values.copy()
    out = np.empty(values.shape, dtype=np.float64)
    for start in range(0, values.shape[0], BLOCK_CELLS):  # block × m temporaries
        rows = neighbours[start : start + BLOCK_CELLS]
        total = np.zeros((rows.shape[0], *values.shape[1:]), dtype=np.float64)
        for column in rows.T:  # the neighbours summed in order, as in one block
            total += values[column]
        out[start : start + rows.shape[0]] = total / neighbours.shape[1]
    return out


def smoothed_at_most(values: np.ndarray, neighbours: np.ndarray, limit: float) -> np.ndarray:
    """``(values + neighbourhood_mean(values)) / 2 <= limit`` (cells × m booleans), block by
    block with the same operations per value: no cells × m floating-point array is kept."""
    out = np.empty(values.shape, dtype=bool)
    k = neighbours.shape[1]
    for start in range(0, values.shape[0], BLOCK_CELLS):
        rows = neighbours[start : start + BLOCK_CELLS]
        own = values[start : start + rows.shape[0]]
        if k == 0:
            mean = own.copy()
        else:
            mean = np.zeros(own.shape, dtype=np.float64)
            for column in rows.T:  # the neighbours summed in order, as neighbourhood_mean
                mean += values[column]
            mean /= k
        out[start : start + rows.shape[0]] = (own + mean) / 2.0 <= limit
    return out


def near_detection(detected: np.ndarray, neighbours: np.ndarray) -> np.ndarray:
    """Per cell and column of ``detected`` (cells × m booleans): true when at least a third of
    the cell's neighbours are true — ``neighbourhood_mean(detected) >= 1/3`` counted in
    integers (``3 · count ≥ k``, the same comparison without floating point), block by block;
    the cell's own value when it has no neighbours."""
    k = neighbours.shape[1]
    if k == 0:
        return detected.copy()
    out = np.empty(detected.shape, dtype=bool)
    for start in range(0, detected.shape[0], BLOCK_CELLS):
        rows = neighbours[start : start + BLOCK_CELLS]
        count = np.zeros((rows.shape[0], detected.shape[1]), dtype=np.int32)
        for column in rows.T:
            count += detected[column]
        out[start : start + rows.shape[0]] = 3 * count >= k
    return out


def finite_values(table: pd.DataFrame, columns: Sequence[str], nan: float) -> np.ndarray:
    """``np.nan_to_num(table[columns].to_numpy(dtype=np.float64), nan=nan)``, in the same memory
    layout, for reading only: the table's own float64 values (no copy) when ``columns`` are
    all of its columns in order and every value is finite — where the expression made up to
    three cells × columns copies (~400 MB at a million cells × 20 signatures)."""
    if list(table.columns) != list(columns):
        table = table[list(columns)]
    values = table.to_numpy(dtype=np.float64)
    if np.isfinite(values).all():
        return values  # what nan_to_num would copy, value for value
    return np.nan_to_num(values, nan=nan)


def shared_strings(values) -> np.ndarray:
    """``values`` (strings) as an object array in which equal strings are one Python object:
    per-cell labels of a million cells hold 8 bytes each rather than a string each."""
    codes, uniques = pd.factorize(np.asarray(values, dtype=object))
    return (
        np.asarray([str(u) for u in uniques], dtype=object)[codes]
        if len(codes)
        else (np.empty(0, dtype=object))
    )


def evidence_scale(values: np.ndarray) -> float:
    """The sample's typical spread of a cell-type score: the median over signatures of the
    within-sample MAD × 1.4826 (the standard deviation of a normal), or 1 when every score is
    constant. Dividing scores by it makes the posterior's temperature a property of the data."""
    # Column by column: the same medians and differences as the whole-array expression, with
    # temporaries of one column instead of three of cells × signatures (~480 MB at 1M cells)
    mad = np.empty(values.shape[1])
    for j in range(values.shape[1]):
        column = values[:, j]
        mad[j] = 1.4826 * np.median(np.abs(column - np.median(column)))
    positive = mad[mad > 0]
    return float(np.median(positive)) if positive.size else 1.0


def softmax(evidence: np.ndarray, out: np.ndarray | None = None) -> np.ndarray:
    """Row-wise softmax ``exp(e_t) / Σ_u exp(e_u)``; ``−inf`` entries get probability 0 and a row
    of only ``−inf`` gets zeros. ``out`` (may be ``evidence`` itself, float64): where to write it,
    block by block of rows (each block is read before it is written)."""
    evidence = np.asarray(evidence)
    if out is None:
        # the layout of ``evidence`` (as the whole-array expression gave): row sums of the
        # posterior downstream then add in the same order
        out = np.zeros_like(evidence, dtype=np.result_type(evidence.dtype, np.float64))
    for start in range(0, evidence.shape[0], BLOCK_CELLS):  # rows are independent
        block = evidence[start : start + BLOCK_CELLS]
        finite = np.isfinite(block)
        top = np.where(finite.any(axis=1), np.max(np.where(finite, block, -np.inf), axis=1), 0.0)
        weights = np.where(finite, np.exp(np.where(finite, block, 0.0) - top[:, None]), 0.0)
        total = weights.sum(axis=1, keepdims=True)
        rows = out[start : start + block.shape[0]]
        rows[...] = 0.0
        np.divide(weights, total, out=rows, where=total > 0)
    return out


def shipped_markers(directory: str | Path | None = None) -> tuple[dict, dict]:
    """``(core_markers, marker_genes)`` of the cell-type signatures in the shipped library
    (``<repo>/resources/signatures/*.yaml``, or ``directory``), contract C1: each signature's core
    groups, and its core genes followed by its alternates (both empty when a signature declares
    none). Only these few genes are read from ``X`` for the assignment."""
    from seedsoil.signatures import load_library

    if directory is None:
        directory = Path(__file__).resolve().parents[4] / "resources" / "signatures"
    library = load_library(sorted(Path(directory).glob("*.yaml")))
    chosen = {n: sig for n, sig in library.items() if n in CELL_TYPE_SIGNATURES}
    core = {n: tuple(tuple(g) for g in getattr(sig, "core", ())) for n, sig in chosen.items()}
    markers = {
        n: tuple(
            dict.fromkeys(
                [g for group in core[n] for g in group] + list(getattr(sig, "alternates", ()))
            )
        )
        for n, sig in chosen.items()
    }
    return core, markers


class MarkerColumns(Mapping):
    """Gene → dense float64 values per cell of a few genes of an expression matrix, densified
    on access from one compressed-column copy: a million cells × a few hundred marker genes
    would take gigabytes dense, their stored values a few hundred MB. ``X``'s values (float32
    in the workflow's files) are widened exactly, so comparisons and orderings are those of the
    dense columns."""

    def __init__(self, matrix, genes: Sequence[str]):
        import scipy.sparse as sp

        self._csc = sp.csc_matrix(matrix) if sp.issparse(matrix) else np.asarray(matrix)
        self._position = {g: k for k, g in enumerate(genes)}

    def __getitem__(self, gene: str) -> np.ndarray:
        return self.rows([gene], None)[:, 0]

    def __iter__(self):
        return iter(self._position)

    def __len__(self) -> int:
        return len(self._position)

    def rows(self, genes: Sequence[str], cells: np.ndarray | None) -> np.ndarray:
        """Dense float64 (cells × genes) values of ``genes`` in ``cells`` (None: every cell)."""
        block = self._csc
        if cells is not None:
            # the cells first: a copy of their stored values, not of every cell's (selecting the
            # genes first copied the whole matrix per block of the classifier's candidates)
            block = block[cells]
        block = block[:, [self._position[g] for g in genes]]
        if hasattr(block, "toarray"):  # widened before densifying: no float32 dense copy
            return block.astype(np.float64).toarray()
        return np.asarray(block, dtype=np.float64)


def _expression_columns(expression, genes: Sequence[str]) -> Mapping[str, np.ndarray]:
    """Per-cell values of ``genes`` present in ``expression`` (an AnnData), as
    :class:`MarkerColumns` (each gene a dense float64 column when read)."""
    present = [g for g in dict.fromkeys(genes) if g in expression.var_names]
    if not present:
        return {}
    return MarkerColumns(expression[:, present].X, present)


def assign_cell_types(
    scores: pd.DataFrame | Callable[[], pd.DataFrame],
    fdr: pd.DataFrame,
    alpha: float = 0.05,
    *,
    pvalues: pd.DataFrame | Callable[[], pd.DataFrame] | None = None,
    expression=None,
    core_markers: Mapping[str, Sequence[Sequence[str]]] | None = None,
    marker_genes: Mapping[str, Sequence[str]] | None = None,
    n_neighbors: int = N_NEIGHBORS,
    min_confidence: float = 0.0,
    max_pvalue: float = 0.5,
    own_markers: bool = True,
    cluster_vote: bool = False,
    seed: int = 0,
    neighbour_evidence: bool = False,
    lineage_gate: bool = False,
    marker_evidence: bool = True,
    classifier: bool = True,
    transcriptome=None,
    neighbours: np.ndarray | None = None,
) -> pd.DataFrame:
    """Assign each cell a type from the evidence of every identity/immune signature.

    Definition, per sample, over the candidate signatures ``T`` of :data:`CELL_TYPE_SIGNATURES`
    present in ``scores`` (significance enters through the p-values below; ``alpha`` only in
    step 4b; the steps are numbered as in ``docs/interpretation.md``):

    1. **Evidence and neighbourhood**: a kNN graph (``n_neighbors``, Euclidean) on the
       :func:`robust_z` scores of the candidate cell-type signatures ``T`` (the sample's
       identity-space embedding, cells × types, already in memory; the graph holds cells × k
       indices — state signatures such as CTC, EMT or cycling programmes are left out because
       they cut across types). The evidence for type ``t`` is the cell's own score,
       ``e[c, t] = x[c, t] / σ``, with ``x`` the raw score (comparable between signatures for
       rank-based scores such as UCell, each a normalised rank statistic in [0, 1]) and ``σ`` =
       :func:`evidence_scale`. The neighbourhood lends strength where absence is weak evidence —
       marker detection (step 2) and the p-value (step 6) — not to the ranking of types: averaged
       scores ``(x[c, t] + mean_{n in N(c)} x[n, t]) / 2 / σ`` (``neighbour_evidence=True``, the
       previous default) pull a cell of a minority subtype towards the sample's majority type,
       and lowered accuracy on every labelled set (``docs/interpretation.md``). Raw scores rather
       than scores standardised per signature: a sample made mostly of one type (a T-cell sample,
       a tumour) would otherwise push that type's own cells below zero.
    2. **Core markers** (contract C1): for a type with core groups present in ``expression`` (a
       group is present when one of its genes is), the type is admissible for cell ``c`` only when
       at least half of those groups (rounded up) are detected — a gene of the group > 0 in ``c``,
       or in at least a third of its neighbours; otherwise ``e[c, t] = −inf`` (e.g. no neutrophil
       call without FCGR3B/CXCR2/… when the data hold them). A programme is identified by most of
       its marker groups, not by one gene it shares with a neighbour type. With ``own_markers``
       (default) the cell itself must also detect at least one of the type's core genes on the
       panel: neighbours can lend strength, not a type whose markers the cell lacks. With
       ``lineage_gate`` (default off: evaluated, it gained on one Wu 2020 panel and lost on
       two, reopening gamma-delta T and CD4 T for CD8 T cells; ``docs/interpretation.md``) the
       gate is applied at the lineage node (:func:`lineage_admissible`).
    3. **Posterior** ``P[c, ·] = softmax(e[c, ·])``: one typical spread of evidence is a factor
       ``e`` in odds; the call is ``t* = argmax P``; ``assignment_confidence = P[c, t*]`` (for a
       call a sibling contrast moved from ``t*`` to ``t'``, ``P[c, t*] + P[c, t']``).
    4. **Contrasts**: (a) the :data:`SIBLING_CONTRASTS` (:func:`apply_sibling_contrasts`: B
       vs plasma, T vs NK, platelet vs endothelial, monocyte/macrophage vs dendritic) and (b)
       :func:`nucleated_over_anucleate`: a platelet call yields to a tissue identity
       (:data:`TISSUE_IDENTITIES`) whose core rule the cell meets, or whose core gene the cell
       detects with p ≤ ``alpha`` below the platelet p-value (confidence: at least the platelet
       call's posterior).
       (c) With ``cluster_vote`` (default off: it lowered accuracy on pbmc68k and Wu 2020, see
       ``docs/interpretation.md``), :func:`majority_vote` over :func:`over_cluster` (``seed``).
    5. **Lineage level**: when the p-value rule of step 6 rejects ``t*`` but accepts a sibling
       of the same lineage (:data:`LINEAGE_TYPES`), the call is the lineage (e.g. ``"T/NK
       cell"``) with confidence = the posterior summed over that lineage's types.
    6. **Unassigned** when no type is admissible; when the evidence is absent — the p-value of
       ``t*`` (``pvalues``, else ``fdr``) averaged as ``(p_c + mean_{N(c)} p) / 2`` exceeds
       ``max_pvalue`` (0.5: the score does not beat even half of the expression-matched random
       signatures), no sibling of its lineage passes (step 5) and, with ``marker_evidence``
       (default), the cell does not itself show ``t*``'s core markers (core rule met with a core
       gene detected in the cell: marker presence is the identity evidence a partial panel still
       measures when the signature's score has too few genes to beat the null); or, when
       ``min_confidence`` > 0 (default 0: the confidence is reported, not thresholded), when it
       is ambiguous — ``P[c, t*] < min_confidence``.
    7. **Classifier** (``classifier``, default on; :func:`~.refine.refine_calls`): cells left
       unassigned by step 6 while a type is admissible for them, and lineage-level calls, get
       the type a logistic regression trained on the sample's subtype calls predicts from the
       marker genes in ``expression`` — among the types admissible for the cell (for a lineage
       call, that lineage's subtypes) and only at probability ≥ 0.5, which becomes the
       confidence. It never overrules a call.
    8. **Transcriptome neighbours** (when ``transcriptome``, the sample's log-normalised matrix
       or its ``.h5ad`` path, is given; :func:`~.transfer.transfer_labels`): cells still
       unassigned or at lineage level get the subtype that more than half of their
       ``n_neighbors`` nearest cells in the principal components of the most variable genes
       carry, with that share as the confidence: the whole transcriptome places a cell whose
       marker genes dropped out (or are not on the panel) among cells of its type. It never
       overrules a call; cells with no majority keep theirs.

    ``scores`` and ``pvalues`` may also be functions of no arguments returning those tables:
    ``pvalues`` is then called once, when step 6's p-values are made, and ``scores`` twice, for
    the evidence and for ``assignment_score`` at the end; neither table is held in between (a
    caller reading them from files keeps two cells × types tables less through the steps).
    ``fdr`` is then read for its columns only (with ``pvalues`` given, its values never are).

    ``neighbours``: the kNN graph of step 1 when already computed (:func:`identity_neighbours`
    of ``scores`` with ``n_neighbors``, same cells in the same order); None computes it here.

    ``assignment_method`` says which step made each call: ``"signature"`` (step 6's p-value
    rule), ``"markers"`` (marker evidence), ``"contrast"`` (step 4a/4b changed the score-based
    subtype), ``"lineage"``, ``"classifier"``, ``"transcriptome neighbours"``, ``"cluster
    vote"``; ``""`` when unassigned.
    ``assignment_score`` = ``scores[c, t*]`` (NaN when unassigned). ``assignment_markers`` = up to
    :data:`MAX_MARKERS` genes that carried the call, highest expression first: the type's core
    markers detected in the cell, else its ``marker_genes`` (e.g. the signature's up genes)
    detected in the cell; ``""`` when unassigned or when ``expression`` is not given.

    Returns a DataFrame indexed like ``scores`` with :data:`ASSIGNMENT_COLUMNS`.
    """
    read_scores = scores if callable(scores) else None
    if read_scores is not None:
        scores = read_scores()
    used = cell_type_signatures(scores.columns, fdr.columns)
    out = pd.DataFrame(index=scores.index)
    n_cells = scores.shape[0]
    if not used or n_cells == 0:
        out["cell_type_assigned"] = UNASSIGNED
        out["assignment_score"] = np.nan
        out["assignment_confidence"] = 0.0
        out["assignment_markers"] = ""
        out["assignment_method"] = ""
        return out
    if neighbours is None:
        neighbours = identity_neighbours(scores, n_neighbors, used)
    elif neighbours.shape[0] != n_cells:
        raise ValueError(f"neighbours has {neighbours.shape[0]} rows for {n_cells} cells")
    # after the graph: the search's working memory and this array are not held together
    values = finite_values(scores, used, nan=0.0)
    scale = evidence_scale(values)
    if neighbour_evidence:
        evidence = (values + neighbourhood_mean(values, neighbours)) / 2.0 / scale
    else:
        evidence = values / scale
    del values  # the call's score is read from ``scores`` at the end: a cells × types array fewer
    if read_scores is not None:
        del scores  # read again at the end: not held through the steps between

    if callable(pvalues):  # read now, and not held once the significance is made
        pvalues = pvalues()
    table = pvalues if pvalues is not None else fdr
    del pvalues
    # no copy of a table that holds just these columns (the layout differs, but the
    # significance is only compared, and averaged value by value)
    significance = finite_values(table, used, nan=1.0)  # only read, never written
    del table
    supported = smoothed_at_most(significance, neighbours, max_pvalue)

    core_markers = core_markers or {}
    columns = (
        _expression_columns(
            expression,
            [g for s in used for group in core_markers.get(s, ()) for g in group]
            + [g for s in used for g in (marker_genes or {}).get(s, ())],
        )
        if expression is not None
        else {}
    )
    core_detected = {}
    shown = np.zeros(evidence.shape, dtype=bool)  # core rule met, a core gene in the cell
    own = np.zeros(evidence.shape, dtype=bool)  # a core gene of the type detected in the cell
    blocked = np.zeros(evidence.shape, dtype=bool)  # core rule (and own-marker rule) failed
    gated = np.zeros(evidence.shape[1], dtype=bool)  # the type has core groups on the panel
    panel_groups = {
        signature: [
            group
            for group in (
                [g for g in group if g in columns] for group in core_markers.get(signature, ())
            )
            if group
        ]
        for signature in used
    }
    # Every type's core groups in one pass over the neighbours (cells × groups booleans)
    group_list = [tuple(group) for groups in panel_groups.values() for group in groups]
    group_index = {group: j for j, group in enumerate(dict.fromkeys(group_list))}
    group_detected = np.zeros((n_cells, len(group_index)), dtype=bool)
    for group, j in group_index.items():
        for gene in group:
            group_detected[:, j] |= columns[gene] > 0
    group_near = near_detection(group_detected, neighbours)
    for k, signature in enumerate(used):
        groups = panel_groups[signature]
        if not groups:
            continue
        core_detected[signature] = [g for group in groups for g in group]
        supported_groups = np.zeros(n_cells, dtype=np.int64)
        for group in groups:
            j = group_index[tuple(group)]
            supported_groups += group_detected[:, j] | group_near[:, j]
        needed = -(-len(groups) // 2)  # at least half of the panel's core groups
        inadmissible = supported_groups < needed
        own[:, k] = np.any([columns[g] > 0 for g in core_detected[signature]], axis=0)
        if own_markers:
            # The cell's own transcripts must show the type: neighbours alone cannot make a
            # plasma cell of a cell with no plasma gene when the panel measures them.
            inadmissible |= ~own[:, k]
        blocked[:, k] = inadmissible
        gated[k] = True
        shown[:, k] = ~inadmissible & own[:, k]
    del group_detected, group_near
    types = np.array([CELL_TYPE_SIGNATURES[s] for s in used], dtype=object)
    dominant = (
        own & (significance <= alpha) & (significance < anucleate_pvalue(significance, types))
    )
    del significance  # read for the last time: a cells × types array fewer at the posterior
    if lineage_gate:
        blocked = lineage_admissible(blocked, gated, types)
    evidence[blocked] = -np.inf

    admissible = np.isfinite(evidence).any(axis=1)  # some type is admissible
    # written over the evidence, which nothing reads after: a cells × types array fewer
    posterior = softmax(evidence, out=evidence)
    del evidence
    best = np.argmax(posterior, axis=1)
    # Evidence (p-value) is judged on the score-based call: a sibling contrast only refines the
    # subtype within a lineage whose programme the cell already carries.
    supported_call = supported[np.arange(n_cells), best]
    by_scores = best
    if expression is not None:
        best = apply_sibling_contrasts(
            best, posterior, types, _expression_columns(expression, contrast_genes()), neighbours
        )
    rows = np.arange(n_cells)
    # A contrast decides between two siblings the scores cannot tell apart: its call's
    # confidence is the posterior of the pair (the scores' evidence that the cell is one of
    # them), not of the sibling the scores happened to rank lower.
    contrast_confidence = np.where(
        best != by_scores, posterior[rows, best] + posterior[rows, by_scores], posterior[rows, best]
    )
    replaced = best
    best = nucleated_over_anucleate(best, shown | dominant, types, posterior)
    # the subtype was decided by discriminating genes or a shown tissue identity, not the scores
    by_genes = best != by_scores
    del by_scores
    # An identity that replaced a platelet call keeps at least that call's posterior: its own is
    # 0 when it met the dominance rule but not the core rule.
    confidence = np.where(
        best != replaced,
        np.maximum(posterior[rows, best], contrast_confidence),
        contrast_confidence,
    )
    lineage = np.array([LINEAGE_TYPES.get(t, "") for t in types], dtype=object)
    # Integer codes of the lineages (-1: none) compare a million cells' calls without strings
    lineage_names = sorted(set(lineage) - {""})
    lineage_code = np.array([lineage_names.index(x) if x else -1 for x in lineage])
    best_lineage = lineage_code[best]
    same_lineage = (best_lineage[:, None] == lineage_code[None, :]) & (best_lineage[:, None] >= 0)
    lineage_only = ~supported_call & (supported & same_lineage).any(axis=1)
    # Marker evidence: with no type of its lineage beating the matched null, a cell that itself
    # detects the called type's core markers (core rule met) still shows the type.
    marker_only = ~supported_call & ~lineage_only & shown[rows, best] if marker_evidence else False
    lineage_confidence = np.empty(n_cells)
    for start in range(0, n_cells, BLOCK_CELLS):  # rows are independent
        block = slice(start, start + BLOCK_CELLS)
        lineage_confidence[block] = np.where(same_lineage[block], posterior[block], 0.0).sum(axis=1)
    confidence = np.where(lineage_only, lineage_confidence, confidence)
    del lineage_confidence, supported, shown, dominant
    if not cluster_vote:  # the vote is its last reader: a cells × types array fewer from here
        del posterior
    assigned = (
        admissible & (supported_call | lineage_only | marker_only) & (confidence >= min_confidence)
    )
    # The labels as codes into [types, lineages, unassigned]: a million cells share a few
    # string objects instead of holding one each
    labels = np.array([*types, *lineage_names, UNASSIGNED], dtype=object)
    label_code = np.where(
        assigned,
        np.where(lineage_only, len(types) + best_lineage, best),
        len(labels) - 1,
    )
    method = np.select(
        [~assigned, lineage_only, by_genes, supported_call],
        ["", "lineage", "contrast", "signature"],
        "markers",
    ).astype(object)

    def fill(candidates, codes, values, how):
        """Steps 6 and 7: the ``candidates`` with a code ≥ 0 get that subtype, confidence
        ``values`` and method ``how``."""
        accepted = codes >= 0
        cells = candidates[accepted]
        label_code[cells] = best[cells] = codes[accepted]
        confidence[cells] = values[accepted]
        assigned[cells] = True
        method[cells] = how

    if classifier and columns:
        # Step 6: the classifier fills in cells whose evidence fell short of a subtype call
        allowed = ~blocked & np.where(lineage_only[:, None], same_lineage, True)
        candidates = np.flatnonzero((admissible & ~assigned) | (assigned & lineage_only))
        genes = list(columns)
        codes, probability = refine_calls(
            lambda rows: columns.rows(genes, rows),
            np.where(assigned & ~lineage_only, best, -1),
            candidates,
            allowed,
            seed=seed,
        )
        fill(candidates, codes, probability, "classifier")
        del allowed, candidates, codes, probability
    if transcriptome is not None:
        # Step 7: the cells the marker evidence could not type, typed by their neighbours.
        # The marker genes' compressed copy is dropped through it and made again after (the
        # same genes, the same values): the step reads the whole matrix, block by block.
        remade = list(columns) if isinstance(columns, MarkerColumns) else None
        if remade is not None:
            columns = {}
        return_freed_memory()
        subtype = assigned & (label_code < len(types))
        candidates = np.flatnonzero(~subtype)
        codes, share = transfer_labels(
            np.where(subtype, best, -1), candidates, transcriptome, n_neighbors=n_neighbors,
            seed=seed,
        )  # fmt: skip
        fill(candidates, codes, share, "transcriptome neighbours")
        del subtype, candidates, codes, share
        return_freed_memory()
        if remade is not None:
            columns = _expression_columns(expression, remade)
    called = labels[label_code]
    if cluster_vote:
        clusters = over_cluster(neighbours, seed=seed)
        before = called
        called, best, confidence, assigned = majority_vote(
            clusters, called, best, confidence, posterior, types, lineage
        )
        method = np.where(called != before, "cluster vote", method)
        method[~assigned] = ""
    out["cell_type_assigned"] = shared_strings(called)
    if read_scores is not None:
        scores = read_scores()
    out["assignment_score"] = np.where(assigned, called_scores(scores, used, best), np.nan)
    out["assignment_confidence"] = np.where(assigned, confidence, 0.0)
    out["assignment_markers"] = _markers(
        assigned, best, used, core_detected, marker_genes or {}, columns
    )
    out["assignment_method"] = shared_strings(method)
    return out


def cell_type_signatures(*columns) -> list[str]:
    """The signatures of :data:`CELL_TYPE_SIGNATURES`, in its order, present in every one of
    ``columns`` (column names of the scores, and of the FDRs): the types
    :func:`assign_cell_types` chooses among."""
    return [s for s in CELL_TYPE_SIGNATURES if all(s in names for names in columns)]


def identity_neighbours(
    scores: pd.DataFrame, n_neighbors: int = N_NEIGHBORS, used: Sequence[str] | None = None
) -> np.ndarray:
    """Step 1's kNN graph of :func:`assign_cell_types`: :func:`~.knn.neighbour_index` of
    :func:`identity_embedding` of ``scores`` (``used`` as there). Neighbours in identity space
    only: state programmes (CTC, EMT, hypoxia, cycling) cut across cell types and would pull
    cells of different types together."""
    return neighbour_index(identity_embedding(scores, used), n_neighbors)


def identity_embedding(scores: pd.DataFrame, used: Sequence[str] | None = None) -> np.ndarray:
    """The :func:`robust_z` of ``scores[used]`` (NaN as 0), ``used`` defaulting to
    :func:`cell_type_signatures` of ``scores``' columns, as the neighbour search reads it:
    float32 above :data:`~.knn.EXACT_MAX_CELLS` cells (the approximate search's own
    conversion, done here so that no float64 copy is held through the search), else float64.
    Needs only these columns: a caller can search the graph before the rest of the tables is
    in memory (the search is the job's largest working memory at a million cells)."""
    used = cell_type_signatures(scores.columns) if used is None else list(used)
    embedding = robust_z(np.nan_to_num(scores[used].to_numpy(dtype=np.float64)))
    return embedding.astype(np.float32) if embedding.shape[0] > EXACT_MAX_CELLS else embedding


def called_scores(scores: pd.DataFrame, used: Sequence[str], best: np.ndarray) -> np.ndarray:
    """Per cell, ``scores[used[best]]`` with NaN as 0 (the values the evidence was made from),
    read a signature's column at a time rather than from a cells × types copy."""
    out = np.zeros(len(best), dtype=np.float64)
    for k, signature in enumerate(used):
        cells = best == k
        if cells.any():
            out[cells] = np.nan_to_num(scores[signature].to_numpy(dtype=np.float64)[cells])
    return out


def lineage_admissible(blocked: np.ndarray, gated: np.ndarray, types: np.ndarray) -> np.ndarray:
    """The core-marker gate at the lineage node (CHETAH-style): a subtype of a lineage
    (:data:`LINEAGE_TYPES`) blocked for a cell becomes admissible again when another subtype of
    the same lineage with core groups on the panel (``gated``) passes its gate in that cell — the
    cell shows the lineage's markers, and the subtype is left to the scores and the
    :data:`SIBLING_CONTRASTS`. Types outside a lineage keep their own gate. Returns the new
    ``blocked`` (cells × types)."""
    lineage = np.array([LINEAGE_TYPES.get(t, "") for t in types], dtype=object)
    out = blocked.copy()
    for name in set(lineage) - {""}:
        members = np.flatnonzero(lineage == name)
        passes = (~blocked[:, members] & gated[members]).any(axis=1)
        out[:, members] &= ~passes[:, None]
    return out


def over_cluster(neighbours: np.ndarray, resolution: float | None = None, seed: int = 0):
    """Leiden over-clustering (Traag et al. 2019; ``leidenalg`` RBConfiguration partition,
    seeded) of the undirected, unweighted kNN graph given by ``neighbours`` (cells × k).

    ``resolution`` defaults as CellTypist's majority voting (Domínguez Conde et al. 2022)
    chooses it from the number of cells: 5 below 5,000 cells, 10 below 20,000, 15 below 40,000,
    20 below 100,000, 25 below 200,000, else 30 — many small clusters, each a group of cells
    alike in identity space. Returns an integer cluster per cell (all 0 without neighbours)."""
    n_cells = neighbours.shape[0]
    if neighbours.shape[1] == 0:
        return np.zeros(n_cells, dtype=np.int64)
    import igraph
    import leidenalg

    if resolution is None:
        steps = [(5_000, 5.0), (20_000, 10.0), (40_000, 15.0), (100_000, 20.0), (200_000, 25.0)]
        resolution = next((r for limit, r in steps if n_cells < limit), 30.0)
    edges = np.column_stack(
        [np.repeat(np.arange(n_cells), neighbours.shape[1]), neighbours.ravel()]
    )
    graph = igraph.Graph(n=n_cells, edges=edges.tolist(), directed=False).simplify()
    partition = leidenalg.find_partition(
        graph, leidenalg.RBConfigurationVertexPartition, resolution_parameter=resolution, seed=seed
    )
    return np.asarray(partition.membership, dtype=np.int64)


def majority_vote(clusters, called, best, confidence, posterior, types, lineage):
    """Cluster-level majority vote over :func:`over_cluster` clusters (CellTypist's majority
    voting, restricted by the cell's own evidence).

    In a cluster where one assigned label holds more than half of the cells, every other cell
    takes that label when the label is admissible for it (the type's posterior, or for a lineage
    label the posterior summed over its subtypes, is > 0 — i.e. the core-marker rule holds in
    the cell); ``confidence`` becomes that posterior. A cluster without a majority, and cells for
    which the majority type is inadmissible, keep their own call; no cell is made unassigned by
    the vote. Returns ``(called, best, confidence, assigned)``."""
    called, best, confidence = called.copy(), best.copy(), confidence.copy()
    for cluster in np.unique(clusters):
        cells = np.flatnonzero(clusters == cluster)
        labels, counts = np.unique(called[cells], return_counts=True)
        top = np.argmax(counts)
        label = labels[top]
        if label == UNASSIGNED or counts[top] * 2 <= len(cells):
            continue
        members = np.flatnonzero((types == label) | (lineage == label))
        mass = posterior[np.ix_(cells, members)]
        total = mass.sum(axis=1)
        move = (called[cells] != label) & (total > 0)
        moved = cells[move]
        called[moved] = label
        best[moved] = members[np.argmax(mass[move], axis=1)]
        confidence[moved] = total[move] if label in set(lineage) else mass[move].max(axis=1)
    return called, best, confidence, called != UNASSIGNED


#: Anucleate types: a call of one yields to an admissible nucleated tissue identity.
ANUCLEATE_TYPES = ("platelet",)
#: Nucleated identities that outrank an anucleate call when admissible in the cell.
#: Endothelial and pericyte identities are left out: their core includes genes megakaryocytes
#: and platelets carry (VWF, PECAM1, ESAM; see :data:`SIBLING_CONTRASTS`).
TISSUE_IDENTITIES = ("epithelial/tumour", "fibroblast")


def anucleate_pvalue(significance: np.ndarray, types: np.ndarray) -> np.ndarray:
    """Per cell (column vector), the smallest p-value over the :data:`ANUCLEATE_TYPES` present
    (1 when none is)."""
    columns = np.flatnonzero(np.isin(types, ANUCLEATE_TYPES))
    if not columns.size:
        return np.ones((significance.shape[0], 1))
    return significance[:, columns].min(axis=1, keepdims=True)


def nucleated_over_anucleate(best: np.ndarray, shown: np.ndarray, types: np.ndarray, posterior):
    """A cell called platelet while a tissue identity (:data:`TISSUE_IDENTITIES`) is shown in
    it gets that identity, the one of highest posterior. ``shown`` (cells × types) is, in
    :func:`assign_cell_types`, the core rule met with a core gene in the cell, or a core gene in
    the cell with the identity's p-value ≤ ``alpha`` and below the platelet p-value (the
    epithelial evidence dominates). A platelet is an anucleate fragment: a cell carrying an
    epithelial programme is a nucleated cell with platelet transcripts on it (adherent platelets of a CTC–platelet cluster, or ambient
    PPBP/PF4, among the most abundant transcripts of blood). The heterotypic cluster itself is
    reported by ``interpret/clusters.py``."""
    targets = np.flatnonzero(np.isin(types, TISSUE_IDENTITIES))
    if not targets.size:
        return best
    weight = np.where(shown[:, targets], posterior[:, targets], -1.0)
    choice = targets[np.argmax(weight, axis=1)]
    move = np.isin(types[best], ANUCLEATE_TYPES) & shown[np.arange(len(best)), choice]
    return np.where(move, choice, best)


def detection_support(
    columns: Mapping[str, np.ndarray], genes: Sequence[str], neighbours: np.ndarray
) -> np.ndarray:
    """Per cell, ``(d_c + mean_{N(c)} d) / 2`` where ``d`` = 1 when any of ``genes`` is detected
    (> 0) in the cell: the cell's and its neighbourhood's detection of a marker group."""
    detected = np.zeros(len(next(iter(columns.values()))), dtype=np.float64)
    for gene in genes:
        detected = np.maximum(detected, (columns[gene] > 0).astype(np.float64))
    return (detected + neighbourhood_mean(detected[:, None], neighbours)[:, 0]) / 2.0


def apply_sibling_contrasts(
    best: np.ndarray,
    posterior: np.ndarray,
    types: np.ndarray,
    columns: Mapping[str, np.ndarray],
    neighbours: np.ndarray,
) -> np.ndarray:
    """Resolve calls between sibling types by their discriminating genes (:data:`SIBLING_CONTRASTS`).

    For each contrast whose two gene groups both have a gene in ``columns`` (or whose side a has
    one and whose side b needs its own genes, which then count as undetected): a cell called one
    side whose :func:`detection_support` of the other side's genes is strictly higher than of its
    own side's genes is moved to the other side's type of highest posterior (among the types
    present, with non-zero posterior). A contrast whose genes are missing from the panel changes
    nothing. Returns the new column indices of the calls.
    """
    best = best.copy()
    for types_a, genes_a, types_b, genes_b, b_needs_genes in SIBLING_CONTRASTS:
        present_a = [g for g in genes_a if g in columns]
        present_b = [g for g in genes_b if g in columns]
        if not present_a or not (present_b or b_needs_genes):
            continue
        support_a = detection_support(columns, present_a, neighbours)
        support_b = (
            detection_support(columns, present_b, neighbours) if present_b else np.zeros(len(best))
        )
        for own, other, stronger in (
            (types_a, types_b, support_b > support_a),
            (types_b, types_a, support_a > support_b),
        ):
            targets = np.flatnonzero(np.isin(types, other))
            if not targets.size:
                continue
            move = np.isin(types[best], own) & stronger
            choice = targets[np.argmax(posterior[:, targets], axis=1)]
            move &= posterior[np.arange(len(best)), choice] > 0
            best = np.where(move, choice, best)
    return best


def _markers(assigned, best, used, core_detected, marker_genes, columns) -> list[str]:
    """Per cell, the detected genes that carried its call (see :func:`assign_cell_types`)."""
    result = np.full(len(best), "", dtype=object)
    for k, signature in enumerate(used):
        cells = np.flatnonzero(assigned & (best == k))
        genes = core_detected.get(signature) or [
            g for g in marker_genes.get(signature, ()) if g in columns
        ]
        if not len(cells) or not genes:
            continue
        for start in range(0, len(cells), BLOCK_CELLS):
            part = cells[start : start + BLOCK_CELLS]
            if isinstance(columns, MarkerColumns):  # only these cells' rows made dense
                block = columns.rows(genes, part)
            else:
                block = np.column_stack([columns[g][part] for g in genes])
            order = np.argsort(-block, axis=1, kind="stable")[:, :MAX_MARKERS]
            # each row's listed genes (-1: not detected, left out); a few distinct lists are
            # joined once each rather than once per cell
            listed = np.where(np.take_along_axis(block, order, axis=1) > 0, order, -1)
            distinct, inverse = np.unique(listed, axis=0, return_inverse=True)
            text = np.array(
                [",".join(genes[j] for j in row if j >= 0) for row in distinct], dtype=object
            )
            result[part] = text[inverse.reshape(-1)]
    return list(result)


def has_labels(cell_type: pd.Series) -> bool:
    """True when the dataset gave cell-type labels (not all ``"unlabelled"``/missing)."""
    labels = cell_type.astype(str)
    return bool((~labels.isin([UNLABELLED, "", "nan", "NA"])).any())


def confusion_table(labels: pd.Series, assigned: pd.Series) -> pd.DataFrame:
    """Cell counts: given label (rows) × assigned type (columns)."""
    return pd.crosstab(labels.astype(str).rename("label"), assigned.astype(str).rename("assigned"))


def label_agreement(labels: pd.Series, assigned: pd.Series) -> dict:
    """Agreement of assigned types with given labels.

    ``ari_all``: adjusted Rand index (Hubert & Arabie 1985, sklearn) over all cells, with
    ``"unassigned"`` as a class of its own; ``ari_assigned``: the same over assigned cells only;
    ``frac_assigned``; ``majority_accuracy``: fraction of cells whose assigned type is the most
    common assigned type of their label (a label-to-type mapping learned from the data itself,
    so it is an upper bound, not a held-out accuracy).
    """
    from sklearn.metrics import adjusted_rand_score

    labels = labels.astype(str)
    assigned = assigned.astype(str).reindex(labels.index)
    keep = (assigned != UNASSIGNED).to_numpy()
    table = confusion_table(labels, assigned)
    majority = int(table.max(axis=1).sum())
    # The ARI depends only on the partitions: integer codes give the same value as the strings
    # without sorting a million of them.
    label_codes, assigned_codes = pd.factorize(labels)[0], pd.factorize(assigned)[0]
    return {
        "n_cells": int(labels.size),
        "ari_all": float(adjusted_rand_score(label_codes, assigned_codes)),
        "ari_assigned": float(adjusted_rand_score(label_codes[keep], assigned_codes[keep]))
        if keep.sum() > 1
        else None,
        "frac_assigned": float(keep.mean()) if labels.size else 0.0,
        "majority_accuracy": majority / labels.size if labels.size else None,
    }


def immune_labels(labels: pd.Series, assigned: pd.Series) -> set[str]:
    """Given labels whose cells are mostly assigned an immune type (the label's majority call).

    Used to tell which free-text labels are immune when computing immune composition from labels.
    """
    table = confusion_table(labels, assigned)
    majority = table.idxmax(axis=1)
    return {label for label, kind in majority.items() if kind in IMMUNE_TYPES}
