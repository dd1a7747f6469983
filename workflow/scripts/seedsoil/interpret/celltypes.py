"""Cell-type assignment from identity and immune signatures, and agreement with given labels.

:func:`assign_cell_types` turns the identity (``ID_*``) and immune (``IMM_*``) signature scores of
one sample into a type per cell, a posterior-like confidence and the marker genes that carried the
call. Every cell with evidence gets a type; a cell stays ``"unassigned"`` only when no type has
evidence (its best type is significant neither in the cell nor in its neighbourhood) or when two
types are equally supported. The exact definition is in :func:`assign_cell_types` and
``docs/interpretation.md``; the figures on labelled data are from
``benchmarks/evaluate_celltypes.py``.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path

import numpy as np
import pandas as pd

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
]  # fmt: skip

#: Neighbours per cell in the score-space kNN graph (scanpy's ``pp.neighbors`` default).
N_NEIGHBORS = 15
#: Most markers listed per call in ``assignment_markers``.
MAX_MARKERS = 5

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
)


def contrast_genes() -> list[str]:
    """Every gene of :data:`SIBLING_CONTRASTS`, in order (read from ``X`` for the assignment)."""
    return list(dict.fromkeys(g for c in SIBLING_CONTRASTS for g in (*c[1], *c[3])))


def robust_z(values: np.ndarray) -> np.ndarray:
    """Column-wise robust z-scores ``(x − median) / (1.4826 · MAD)`` (MAD scaled to the standard
    deviation of a normal); a column with MAD 0 uses its standard deviation, and a constant
    column gives zeros. Standardising within the sample puts signatures of different length and
    gene detection on one scale (as Seurat's module scores are compared after scaling)."""
    median = np.median(values, axis=0)
    scale = 1.4826 * np.median(np.abs(values - median), axis=0)
    spread = values.std(axis=0)
    scale = np.where(scale > 0, scale, spread)
    return np.where(scale > 0, (values - median) / np.where(scale > 0, scale, 1.0), 0.0)


def neighbour_index(embedding: np.ndarray, n_neighbors: int = N_NEIGHBORS) -> np.ndarray:
    """Indices (cells × k) of each cell's ``k = min(n_neighbors, n_cells − 1)`` nearest other cells
    in Euclidean distance (sklearn ``NearestNeighbors``); an empty (cells × 0) array for one cell.
    Memory is cells × k integers, never cells × cells."""
    from sklearn.neighbors import NearestNeighbors

    k = min(n_neighbors, embedding.shape[0] - 1)
    if k < 1:
        return np.empty((embedding.shape[0], 0), dtype=np.int64)
    model = NearestNeighbors(n_neighbors=k + 1).fit(embedding)
    index = model.kneighbors(embedding, return_distance=False)
    return index[:, 1:]


def neighbourhood_mean(values: np.ndarray, neighbours: np.ndarray) -> np.ndarray:
    """Mean of ``values`` (cells × m) over each cell's neighbours; the cell's own row when it has
    none."""
    if neighbours.shape[1] == 0:
        return values.copy()
    total = np.zeros_like(values, dtype=np.float64)
    for column in neighbours.T:  # k passes of cells × m: bounded memory
        total += values[column]
    return total / neighbours.shape[1]


def evidence_scale(values: np.ndarray) -> float:
    """The sample's typical spread of a cell-type score: the median over signatures of the
    within-sample MAD × 1.4826 (the standard deviation of a normal), or 1 when every score is
    constant. Dividing scores by it makes the posterior's temperature a property of the data."""
    mad = 1.4826 * np.median(np.abs(values - np.median(values, axis=0)), axis=0)
    positive = mad[mad > 0]
    return float(np.median(positive)) if positive.size else 1.0


def softmax(evidence: np.ndarray) -> np.ndarray:
    """Row-wise softmax ``exp(e_t) / Σ_u exp(e_u)``; ``−inf`` entries get probability 0 and a row
    of only ``−inf`` gets zeros."""
    finite = np.isfinite(evidence)
    top = np.where(finite.any(axis=1), np.max(np.where(finite, evidence, -np.inf), axis=1), 0.0)
    weights = np.where(finite, np.exp(np.where(finite, evidence, 0.0) - top[:, None]), 0.0)
    total = weights.sum(axis=1, keepdims=True)
    return np.divide(weights, total, out=np.zeros_like(weights), where=total > 0)


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


def _expression_columns(expression, genes: Sequence[str]) -> dict[str, np.ndarray]:
    """Dense per-cell values of ``genes`` present in ``expression`` (an AnnData)."""
    import scipy.sparse as sp

    present = [g for g in dict.fromkeys(genes) if g in expression.var_names]
    if not present:
        return {}
    block = expression[:, present].X
    block = block.toarray() if sp.issparse(block) else np.asarray(block)
    return {g: np.asarray(block[:, k], dtype=np.float64) for k, g in enumerate(present)}


def assign_cell_types(
    scores: pd.DataFrame,
    fdr: pd.DataFrame,
    alpha: float = 0.05,
    *,
    pvalues: pd.DataFrame | None = None,
    expression=None,
    core_markers: Mapping[str, Sequence[Sequence[str]]] | None = None,
    marker_genes: Mapping[str, Sequence[str]] | None = None,
    n_neighbors: int = N_NEIGHBORS,
    min_confidence: float = 0.0,
    max_pvalue: float = 0.5,
    own_markers: bool = True,
    cluster_vote: bool = False,
    seed: int = 0,
) -> pd.DataFrame:
    """Assign each cell a type from the evidence of every identity/immune signature.

    Definition, per sample, over the candidate signatures ``T`` of :data:`CELL_TYPE_SIGNATURES`
    present in ``scores`` (significance enters through the p-values below; ``alpha`` only in
    step 3b):

    1. **Neighbourhood vote**: a kNN graph (``n_neighbors``, Euclidean) on the :func:`robust_z`
       scores of the candidate cell-type signatures ``T`` (the sample's identity-space embedding,
       cells × types, already in memory; the graph holds cells × k indices — state signatures
       such as CTC, EMT or cycling programmes are left out because they cut across types); the
       evidence for type
       ``t`` is ``e[c, t] = (x[c, t] + mean_{n in N(c)} x[n, t]) / 2 / σ`` with ``x`` the raw
       score (comparable between signatures for rank-based scores such as UCell, each a
       normalised rank statistic in [0, 1]) and ``σ`` = :func:`evidence_scale`, so a sparse cell
       borrows strength from similar cells. Raw scores rather than scores standardised per
       signature: a sample made mostly of one type (a T-cell sample, a tumour) would otherwise
       push that type's own cells below zero.
    2. **Core markers** (contract C1): for a type with core groups present in ``expression`` (a
       group is present when one of its genes is), the type is admissible for cell ``c`` only when
       at least half of those groups (rounded up) are detected — a gene of the group > 0 in ``c``,
       or in at least a third of its neighbours; otherwise ``e[c, t] = −inf`` (e.g. no neutrophil
       call without FCGR3B/CXCR2/… when the data hold them). A programme is identified by most of
       its marker groups, not by one gene it shares with a neighbour type. With ``own_markers``
       (default) the cell itself must also detect at least one of the type's core genes on the
       panel: neighbours can lend strength, not a type whose markers the cell lacks.
    3. **Posterior** ``P[c, ·] = softmax(e[c, ·])``: one typical spread of evidence is a factor
       ``e`` in odds; the call is ``t* = argmax P``; ``assignment_confidence = P[c, t*]``.
       Then (a) the :data:`SIBLING_CONTRASTS` (:func:`apply_sibling_contrasts`: B vs plasma,
       T vs NK, platelet vs endothelial) and (b) :func:`nucleated_over_anucleate`: a platelet
       call yields to a tissue identity (:data:`TISSUE_IDENTITIES`) whose core rule the cell
       meets, or whose core gene the cell detects with p ≤ ``alpha`` below the platelet p-value
       (confidence: at least the platelet call's posterior).
       (c) With ``cluster_vote`` (default off: it lowered accuracy on pbmc68k and Wu 2020, see
       ``docs/interpretation.md``), :func:`majority_vote` over :func:`over_cluster` (``seed``).
    4. **Lineage level**: when the p-value rule of step 5 rejects ``t*`` but accepts a sibling
       of the same lineage (:data:`LINEAGE_TYPES`), the call is the lineage (e.g. ``"T/NK
       cell"``) with confidence = the posterior summed over that lineage's types.
    5. **Unassigned** when no type is admissible; when the evidence is absent — the p-value of
       ``t*`` (``pvalues``, else ``fdr``) averaged as ``(p_c + mean_{N(c)} p) / 2`` exceeds
       ``max_pvalue`` (0.5: the score does not beat even half of the expression-matched random
       signatures); or, when ``min_confidence`` > 0 (default 0: the confidence is reported, not
       thresholded), when it is ambiguous — ``P[c, t*] < min_confidence``.

    ``assignment_score`` = ``scores[c, t*]`` (NaN when unassigned). ``assignment_markers`` = up to
    :data:`MAX_MARKERS` genes that carried the call, highest expression first: the type's core
    markers detected in the cell, else its ``marker_genes`` (e.g. the signature's up genes)
    detected in the cell; ``""`` when unassigned or when ``expression`` is not given.

    Returns a DataFrame indexed like ``scores`` with :data:`ASSIGNMENT_COLUMNS`.
    """
    used = [s for s in CELL_TYPE_SIGNATURES if s in scores.columns and s in fdr.columns]
    out = pd.DataFrame(index=scores.index)
    n_cells = scores.shape[0]
    if not used or n_cells == 0:
        out["cell_type_assigned"] = UNASSIGNED
        out["assignment_score"] = np.nan
        out["assignment_confidence"] = 0.0
        out["assignment_markers"] = ""
        return out
    values = np.nan_to_num(scores[used].to_numpy(dtype=np.float64))
    # Neighbours in identity space only: state programmes (CTC, EMT, hypoxia, cycling) cut
    # across cell types and would pull cells of different types together.
    neighbours = neighbour_index(robust_z(values), n_neighbors)
    evidence = (values + neighbourhood_mean(values, neighbours)) / 2.0 / evidence_scale(values)

    significance = (pvalues if pvalues is not None else fdr)[used].to_numpy(dtype=np.float64)
    significance = np.nan_to_num(significance, nan=1.0)
    smoothed_p = (significance + neighbourhood_mean(significance, neighbours)) / 2.0
    supported = smoothed_p <= max_pvalue

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
    for k, signature in enumerate(used):
        groups = [[g for g in group if g in columns] for group in core_markers.get(signature, ())]
        groups = [group for group in groups if group]
        if not groups:
            continue
        core_detected[signature] = [g for group in groups for g in group]
        supported_groups = np.zeros(n_cells, dtype=np.int64)
        for group in groups:
            detected = np.zeros(n_cells, dtype=bool)
            for gene in group:
                detected |= columns[gene] > 0
            near = neighbourhood_mean(detected[:, None].astype(np.float64), neighbours)[:, 0]
            supported_groups += detected | (near >= 1 / 3)
        needed = -(-len(groups) // 2)  # at least half of the panel's core groups
        inadmissible = supported_groups < needed
        own[:, k] = np.any([columns[g] > 0 for g in core_detected[signature]], axis=0)
        if own_markers:
            # The cell's own transcripts must show the type: neighbours alone cannot make a
            # plasma cell of a cell with no plasma gene when the panel measures them.
            inadmissible |= ~own[:, k]
        evidence[inadmissible, k] = -np.inf
        shown[:, k] = ~inadmissible & own[:, k]

    posterior = softmax(evidence)
    best = np.argmax(posterior, axis=1)
    # Evidence (p-value) is judged on the score-based call: a sibling contrast only refines the
    # subtype within a lineage whose programme the cell already carries.
    supported_call = supported[np.arange(n_cells), best]
    types = np.array([CELL_TYPE_SIGNATURES[s] for s in used], dtype=object)
    if expression is not None:
        best = apply_sibling_contrasts(
            best, posterior, types, _expression_columns(expression, contrast_genes()), neighbours
        )
    dominant = (
        own & (significance <= alpha) & (significance < anucleate_pvalue(significance, types))
    )
    rows = np.arange(n_cells)
    replaced = best
    best = nucleated_over_anucleate(best, shown | dominant, types, posterior)
    # An identity that replaced a platelet call keeps at least that call's posterior: its own is
    # 0 when it met the dominance rule but not the core rule.
    confidence = np.where(
        best != replaced,
        np.maximum(posterior[rows, best], posterior[rows, replaced]),
        posterior[rows, best],
    )
    lineage = np.array([LINEAGE_TYPES.get(t, "") for t in types], dtype=object)
    same_lineage = (lineage[best][:, None] == lineage[None, :]) & (lineage[best][:, None] != "")
    lineage_only = ~supported_call & (supported & same_lineage).any(axis=1)
    lineage_confidence = np.where(same_lineage, posterior, 0.0).sum(axis=1)
    confidence = np.where(lineage_only, lineage_confidence, confidence)
    assigned = (
        np.isfinite(evidence).any(axis=1)
        & (supported_call | lineage_only)
        & (confidence >= min_confidence)
    )
    called = np.where(assigned, np.where(lineage_only, lineage[best], types[best]), UNASSIGNED)
    if cluster_vote:
        clusters = over_cluster(neighbours, seed=seed)
        called, best, confidence, assigned = majority_vote(
            clusters, called, best, confidence, posterior, types, lineage
        )
    out["cell_type_assigned"] = called.astype(str)
    out["assignment_score"] = np.where(assigned, values[rows, best], np.nan)
    out["assignment_confidence"] = np.where(assigned, confidence, 0.0)
    out["assignment_markers"] = _markers(
        assigned, best, used, core_detected, marker_genes or {}, columns
    )
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
    result = [""] * len(best)
    for k, signature in enumerate(used):
        cells = np.flatnonzero(assigned & (best == k))
        genes = core_detected.get(signature) or [
            g for g in marker_genes.get(signature, ()) if g in columns
        ]
        if not len(cells) or not genes:
            continue
        block = np.column_stack([columns[g][cells] for g in genes])
        order = np.argsort(-block, axis=1, kind="stable")[:, :MAX_MARKERS]
        for row, cell in enumerate(cells):
            result[cell] = ",".join(genes[j] for j in order[row] if block[row, j] > 0)
    return result


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
