"""CTC candidate calls, their EMT state, and whether a sample supports CTC calls at all.

A CTC candidate is the transcriptomic counterpart of the CellSearch definition of a circulating
tumour cell (EpCAM⁺ cytokeratin⁺ CD45⁻; Kwan et al. 2018, Aceto et al. 2014 use the same logic
for enriched CTCs), with three changes that real CTC data force (docs/interpretation.md, "CTC
candidates"):

* **The candidates are the marker-positive events**: like CellSearch, which judges only the
  EpCAM-captured, CK-stained events, the test family is the cells that detect at least one of
  the CTC signature's declared ``core`` marker groups (EPCAM, a simple-epithelial keratin,
  E-cadherin, a claudin in the shipped library; :data:`EPITHELIAL_CORE` when the signature
  declares none). Benjamini–Hochberg runs over those cells only, not over every blood cell: a
  cell that detects no epithelial marker cannot be a CTC candidate, and counting it in the
  family only made the threshold fall with the number of blood cells (rare CTCs were lost).
* **Epithelial evidence is two-fold**: within that family the ``CTC_epithelial_identity``
  programme is significant (FDR ≤ ``alpha`` against expression-matched random signatures).
  For a cell with two or more core marker groups (EpCAM⁺ CK⁺ in CellSearch's terms) the random
  signatures are matched on the genes' expression in the sample's *own leukocytes* — the cells
  with a significant leukocyte programme (:func:`blood_background_pvalues`) — rather than in all
  cells: matched on
  all cells, the epithelial genes' peers become the CTCs' own genes as CTCs grow abundant (70
  CTCs among 140 cells, as in enriched full-length data sets), and the test loses them. A cell
  with a single marker group keeps the whole-sample comparison, the stricter one, because
  against the background a single ambient keratin read would already look significant.
* **Leukocyte evidence classifies, it does not veto**: an epithelial cell that also carries a
  leukocyte programme, or PTPRC (CD45) at the level of the sample's *own* leukocytes, is called a
  CTC–leukocyte cluster (heterotypic; partner in :mod:`.clusters`) rather than dropped. PTPRC
  below that level is compatible with ambient RNA and ignored. Because the leukocyte signal of a
  cluster could also be ambient epithelial RNA in a leukocyte, a cluster call needs two distinct
  core marker groups (e.g. EPCAM *and* a keratin), which ambient reads rarely give one cell; and
  a cell with a single marker group keeps CellSearch's CD45⁻ (no PTPRC detected at all), since a
  leukocyte with one ambient keratin read looks exactly like it.

Whether such a cell is *circulating* depends on where the sample came from (blood vs primary
tumour); the call only says the cell has a CTC-like transcriptome.
"""

from __future__ import annotations

import logging

import numpy as np
import pandas as pd

from seedsoil.scoring.null import benjamini_hochberg

CTC_SIGNATURE = "CTC_epithelial_identity"
EMT_SIGNATURE = "EMT_bidirectional"
EMT_EPITHELIAL = "EMT_epithelial"
EMT_MESENCHYMAL = "EMT_mesenchymal"
log = logging.getLogger(__name__)
#: Leukocyte identity programmes: every immune signature except platelets (anucleate, not CD45⁺
#: leukocytes, and the partner of CTC–platelet clusters rather than a leukocyte feature).
PLATELET_SIGNATURE = "IMM_platelet"
LEUKOCYTE_MARKER = "PTPRC"
#: Core epithelial marker groups used when the CTC signature declares no ``core`` (or none is
#: given to :func:`call_ctc`): EpCAM and the simple-epithelial keratins that CellSearch's anti-CK
#: antibodies detect (CK8/18/19) plus CK7. Any gene of a group represents it (keratins are
#: interchangeable across carcinomas).
EPITHELIAL_CORE = (("EPCAM",), ("KRT8", "KRT18", "KRT19", "KRT7"))
#: Fewest of the sample's own leukocytes (with PTPRC detected) from which a PTPRC level is read;
#: below it the median of a handful of cells is noise and PTPRC is not used.
MIN_REFERENCE_LEUKOCYTES = 10
#: Fewest leukocytes from which :func:`blood_background_pvalues` reads the genes' background
#: expression; with fewer (a panel that cannot test the leukocyte programmes, a primary
#: carcinoma without immune cells) there is no blood background to compare with and the
#: whole-sample p-values are used.
MIN_BACKGROUND_CELLS = 10
#: Fewest distinct core marker groups for the background comparison (EpCAM⁺ CK⁺: two
#: independent markers, as in CellSearch and in the coverage rule's minimal gate).
MIN_BACKGROUND_GROUPS = 2


def leukocyte_signatures(columns) -> list[str]:
    """The leukocyte identity signatures present in ``columns`` (``IMM_*`` except platelets)."""
    return [c for c in columns if c.startswith("IMM_") and c != PLATELET_SIGNATURE]


def core_marker_groups(signature=None) -> tuple[tuple[str, ...], ...]:
    """Core epithelial marker groups of the CTC signature: its declared ``core`` (contract C1;
    a user's own CTC signature brings its own markers), else :data:`EPITHELIAL_CORE`."""
    core = tuple(tuple(group) for group in getattr(signature, "core", ()) or ())
    return core or EPITHELIAL_CORE


def library_signature(paths, gmt=(), species: str = "human"):
    """``CTC_epithelial_identity`` of the library at ``paths``/``gmt`` (the files the workflow
    scored) in ``species``' symbols, or None when the library has no such signature."""
    from seedsoil.signatures import load_library, to_species

    library = load_library(paths, gmt=gmt)
    if CTC_SIGNATURE not in library:
        return None
    return to_species({CTC_SIGNATURE: library[CTC_SIGNATURE]}, species)[CTC_SIGNATURE]


def library_core(paths, gmt=(), species: str = "human") -> tuple[tuple[str, ...], ...]:
    """The core marker groups of ``CTC_epithelial_identity`` in the library at ``paths``/``gmt``
    (:func:`library_signature`); :data:`EPITHELIAL_CORE` when the library has no such signature
    or it declares no ``core`` (GMT files cannot declare one)."""
    signature = library_signature(paths, gmt, species)
    return EPITHELIAL_CORE if signature is None else core_marker_groups(signature)


def gene_column(adata, gene: str) -> np.ndarray | None:
    """Dense float64 column of ``gene`` in ``adata.X`` (None when the gene is absent)."""
    if gene not in adata.var_names:
        return None
    column = adata[:, gene].X
    return np.asarray(
        column.toarray() if hasattr(column, "toarray") else column, dtype=np.float64
    ).ravel()


def core_groups_detected(adata, groups=EPITHELIAL_CORE) -> np.ndarray:
    """Per cell: how many of ``groups`` have at least one gene with expression > 0 in ``X``."""
    count = np.zeros(adata.n_obs, dtype=np.int64)
    for group in groups:
        detected = np.zeros(adata.n_obs, dtype=bool)
        for gene in group:
            column = gene_column(adata, gene)
            if column is not None:
                detected |= column > 0
        count += detected
    return count


def leukocyte_programme(fdr: pd.DataFrame, alpha: float = 0.05) -> np.ndarray:
    """Boolean per cell: any leukocyte signature (:func:`leukocyte_signatures`) has FDR ≤ ``alpha``."""
    hit = np.zeros(fdr.shape[0], dtype=bool)
    for name in leukocyte_signatures(fdr.columns):  # a column at a time: no table copy
        hit |= fdr[name].to_numpy(dtype=np.float64) <= alpha
    return hit


def ptprc_leukocyte_level(ptprc: np.ndarray, reference: np.ndarray) -> float:
    """The PTPRC (CD45) level that marks a whole leukocyte *in this sample*.

    Definition: the median PTPRC (as in ``X``) among ``reference`` cells — the sample's own
    leukocytes (a leukocyte programme significant, no epithelial evidence) — that detect it.
    A cell at or above it carries at least as much CD45 as a typical leukocyte of the sample;
    below it the signal is compatible with ambient RNA, whose level the sample's chemistry and
    depth set (a few UMIs in droplets, fractional expected counts in full-length data). NaN when
    fewer than :data:`MIN_REFERENCE_LEUKOCYTES` reference cells detect PTPRC (e.g. panels
    without it): then PTPRC is not used and leukocyte programmes alone carry the evidence.
    """
    values = ptprc[reference & (ptprc > 0)]
    return float(np.median(values)) if values.size >= MIN_REFERENCE_LEUKOCYTES else float("nan")


def leukocyte_evidence(
    adata, fdr: pd.DataFrame, alpha: float = 0.05, epithelial: np.ndarray | None = None
) -> np.ndarray:
    """Boolean per cell: a leukocyte programme is significant, or PTPRC reaches
    :func:`ptprc_leukocyte_level` of the sample's leukocytes (cells with a leukocyte programme
    and, when ``epithelial`` is given, no epithelial evidence)."""
    programme = leukocyte_programme(fdr, alpha)
    ptprc = gene_column(adata, LEUKOCYTE_MARKER)
    if ptprc is None:
        return programme
    reference = programme if epithelial is None else programme & ~epithelial
    level = ptprc_leukocyte_level(ptprc, reference)
    return programme if np.isnan(level) else programme | (ptprc >= level)


def emt_state(pvalues: pd.DataFrame, fdr: pd.DataFrame, alpha: float = 0.05) -> np.ndarray:
    """EMT state per cell: ``"epithelial"``, ``"hybrid"`` or ``"mesenchymal"``.

    From ``EMT_bidirectional`` (up = mesenchymal genes, down = epithelial genes) and its empirical
    one-sided p-value ``p`` against expression-matched random signatures of the same shape
    (``p`` small = score above the null): ``p ≤ alpha`` → mesenchymal (above the upper ``alpha``
    tail of the sample's null), ``p ≥ 1 − alpha`` → epithelial (in the lower tail), otherwise
    hybrid (within the null's central range, i.e. neither programme dominates). Per-cell p-values,
    not FDR, are used because this describes already-called cells rather than discovering them.

    Without ``EMT_bidirectional`` the two one-sided programmes are used: ``EMT_mesenchymal``
    significant (FDR ≤ ``alpha``) and ``EMT_epithelial`` not → mesenchymal; the reverse →
    epithelial; both or neither → hybrid. With neither available every state is ``""``.
    """
    n = pvalues.shape[0]
    if EMT_SIGNATURE in pvalues.columns:
        p = pvalues[EMT_SIGNATURE].to_numpy(dtype=np.float64)
        return np.select(
            [p <= alpha, p >= 1.0 - alpha], _strings("mesenchymal", "epithelial"), "hybrid"
        ).astype(object)
    if EMT_EPITHELIAL in fdr.columns and EMT_MESENCHYMAL in fdr.columns:
        epi = fdr[EMT_EPITHELIAL].to_numpy(dtype=np.float64) <= alpha
        mes = fdr[EMT_MESENCHYMAL].to_numpy(dtype=np.float64) <= alpha
        return np.select(
            [mes & ~epi, epi & ~mes], _strings("mesenchymal", "epithelial"), "hybrid"
        ).astype(object)
    return np.full(n, "", dtype=object)


def marker_family_fdr(pvalues: np.ndarray, family: np.ndarray) -> np.ndarray:
    """Benjamini–Hochberg FDR computed over the cells of ``family`` only; 1 elsewhere.

    The family is the marker-positive events (:func:`call_ctc`); a cell outside it is not
    tested. Filtering before BH keeps FDR control when, for a cell that is not epithelial, the
    filter is independent of its p-value (Bourgon, Gentleman & Huber 2010, PNAS 107:9546): true
    for random gene sets in place of the signature (per-cell matched nulls), approximately for
    the signature itself, whose core genes are part of it — what guards that case is the marker
    rule's biology (blood cells do not detect EPCAM or keratins) and the negative controls in
    ``tests/test_ctc_negative_control.py``. NaN p-values stay NaN.
    """
    q = np.ones(pvalues.shape[0], dtype=np.float64)
    q[np.isnan(pvalues)] = np.nan
    tested = family & ~np.isnan(pvalues)
    if tested.any():
        q[tested] = benjamini_hochberg(pvalues[tested])
    return q


def background_pvalues(
    data,
    signature,
    background: np.ndarray,
    tested: np.ndarray,
    *,
    n_null: int = 1000,
    random_state: int = 0,
    n_null_max: int | None = None,
    n_bins: int = 25,
    chunk_size: int = 20_000,
) -> np.ndarray:
    """Per-cell p-values of ``signature`` against random signatures matched on the genes'
    expression in the ``background`` cells; NaN for cells not ``tested``.

    Exactly :func:`seedsoil.scoring.significance`'s test (:mod:`seedsoil.scoring.null`: the
    same statistic, randomised ties, expression rule and floor extension, ``n_null``,
    ``n_null_max`` and ``random_state`` as given) except that the expression bins come from the
    genes' mean over the ``background`` rows only. ``data``: an AnnData with every gene in ``X``
    (log-normalised) or the path of a sample's ``cells.h5ad`` (read ``chunk_size`` cells at a
    time: two passes, the statistics over the background, then the tested rows).

    Why: bins over all cells put a gene that only CTCs express among genes of the same mean, and
    as CTCs become abundant those are the CTCs' own genes, so a CTC's epithelial programme is no
    longer above its peers. The background (the sample's leukocytes) does not change
    with the number of CTCs. The p-value of a random gene set stays valid in every cell (its
    genes are as exchangeable with their bin as before). Against a background that does not
    express the epithelial genes, a single detected core gene is already strong evidence, which
    is why :func:`call_ctc` uses it only for cells with :data:`MIN_BACKGROUND_GROUPS` core
    groups.
    """
    from seedsoil.scoring import null as engine
    from seedsoil.scoring import open_source, resolve_gene_sets
    from seedsoil.scoring.stats import gene_stats

    source = open_source(data)
    background, tested = np.asarray(background, bool), np.asarray(tested, bool)
    gene_sets = resolve_gene_sets({CTC_SIGNATURE: signature}, source.var_names)

    def rows_of(mask):
        """(indices, CSR rows) of the cells of ``mask``, chunk by chunk."""
        start = 0
        for chunk in source.chunks(chunk_size, check_finite=False):
            rows = np.flatnonzero(mask[start : start + chunk.shape[0]])
            yield start + rows, chunk[rows]
            start += chunk.shape[0]

    stats = gene_stats((chunk for _, chunk in rows_of(background)), source.n_genes)
    prepared = engine.prepare(
        gene_sets, source.n_genes, stats, n_null=n_null, random_state=random_state,
        n_bins=n_bins, n_null_max=n_null_max,
    )  # fmt: skip
    out = np.full(source.n_cells, np.nan)
    names = np.asarray(source.obs_names)
    for rows, chunk in rows_of(tested):
        if rows.size:
            out[rows] = engine.cell_pvalues(chunk, prepared, names[rows])[:, 0]
    return out


def blood_background_pvalues(
    data, signature, k: np.ndarray, leukocytes: np.ndarray, **options
) -> np.ndarray | None:
    """:func:`background_pvalues` of the CTC ``signature`` for the cells with ``k ≥``
    :data:`MIN_BACKGROUND_GROUPS` core groups (``k`` from :func:`core_groups_detected`), the
    background being the sample's own ``leukocytes`` (:func:`leukocyte_programme`: a leukocyte
    programme significant; both in the row order of ``data``); None when fewer than
    :data:`MIN_BACKGROUND_CELLS` leukocytes or no cell to test. ``options`` go to
    :func:`background_pvalues` (``n_null``, ``random_state``, ``n_null_max``, ...).

    The background is chosen by the leukocyte programmes, never by the epithelial genes: cells
    chosen for detecting no core marker would give those genes a background mean of exactly 0,
    and a leukocyte with a few ambient keratin and EPCAM reads would then look epithelial
    (measured: precision fell to 0.25 in the benchmark's ambient-tumour arm). The leukocytes'
    own ambient epithelial reads are part of their mean, so the test asks for more epithelial
    expression than the sample's leukocytes carry."""
    k, background = np.asarray(k), np.asarray(leukocytes, dtype=bool)
    tested = k >= MIN_BACKGROUND_GROUPS
    if background.sum() < MIN_BACKGROUND_CELLS or not tested.any():
        log.info(
            "CTC call: every cell tested against the whole sample (%d leukocytes, fewer than %d, "
            "or no cell with %d core marker groups: %d)",
            background.sum(), MIN_BACKGROUND_CELLS, MIN_BACKGROUND_GROUPS, tested.sum(),
        )  # fmt: skip
        return None
    log.info(
        "CTC call: %d cells with >= %d core marker groups tested against the expression of the "
        "sample's %d leukocytes", tested.sum(), MIN_BACKGROUND_GROUPS, background.sum(),
    )  # fmt: skip
    return background_pvalues(data, signature, background, tested, **options)


def call_ctc(
    adata,
    pvalues: pd.DataFrame,
    fdr: pd.DataFrame,
    alpha: float = 0.05,
    core: tuple[tuple[str, ...], ...] | None = None,
    background: np.ndarray | None = None,
) -> pd.DataFrame:
    """Call CTC candidates and CTC–leukocyte clusters.

    Definition, per cell (``k`` = number of ``core`` marker groups detected,
    :func:`core_groups_detected`; ``core`` = the CTC signature's declared core groups,
    :func:`core_marker_groups`, default :data:`EPITHELIAL_CORE`; ``q`` = the FDR of
    ``CTC_epithelial_identity`` by :func:`marker_family_fdr` over the marker-positive cells
    ``k ≥ 1``, from its per-cell ``pvalues``; for cells with ``k ≥`` :data:`MIN_BACKGROUND_GROUPS`
    from ``background`` instead where it is given and not NaN: the same programme's p-values
    against the blood background, :func:`background_pvalues`):

    * *epithelial* = ``k ≥ 1`` and ``q ≤ alpha``;
    * *leukocyte features* = :func:`leukocyte_evidence` (a leukocyte programme, or PTPRC at the
      sample's own leukocyte level; leukocyte programmes are read from ``fdr``) or, for a cell
      with a single marker group (``k = 1``), any PTPRC detected: the relaxed CD45 rule is
      granted only to cells whose epithelial evidence could be a whole tumour cell;
    * ``ctc_class`` = ``"CTC"`` when epithelial without leukocyte features;
      ``"CTC-leukocyte cluster"`` when epithelial with leukocyte features and ``k ≥ 2``;
      ``""`` otherwise (an epithelial-looking leukocyte with a single marker group is left out:
      ambient epithelial RNA, not a tumour cell);
    * ``ctc_candidate`` = ``ctc_class != ""`` (a CTC inside a cluster is still a CTC).

    ``ctc_confidence`` = ``1 − q`` for candidates, 0 otherwise: under Benjamini–Hochberg, the
    expected fraction of true epithelial cells among all calls at least as significant as this
    one, so it reads the same way in every sample (a precision, not a per-cell posterior).
    ``ctc_fdr`` is ``q`` (1 for marker-negative cells, NaN when the signature was not scored);
    ``ctc_core_markers`` the detected core genes (comma-separated); ``emt_state``
    (:func:`emt_state`) is ``""`` for non-candidates.
    """
    core = tuple(tuple(group) for group in core) if core else EPITHELIAL_CORE
    out = pd.DataFrame(index=fdr.index)
    n = fdr.shape[0]
    markers = [gene for group in core for gene in group]
    detected = {g: c > 0 for g in markers if (c := gene_column(adata, g)) is not None}
    out["ctc_core_markers"] = detected_genes(detected, n) if detected else ""
    if CTC_SIGNATURE not in fdr.columns or CTC_SIGNATURE not in pvalues.columns:
        out["ctc_candidate"] = False
        out["ctc_class"] = ""
        out["ctc_confidence"] = 0.0
        out["ctc_fdr"] = np.nan
        out["emt_state"] = ""
        return out
    k = core_groups_detected(adata, core)
    p = pvalues[CTC_SIGNATURE].to_numpy(dtype=np.float64)
    if background is not None:
        background = np.asarray(background, dtype=np.float64)
        use = (k >= MIN_BACKGROUND_GROUPS) & ~np.isnan(background) & ~np.isnan(p)
        p = np.where(use, background, p)
    q = marker_family_fdr(p, k >= 1)
    epithelial = (q <= alpha) & (k >= 1)
    leukocyte = leukocyte_evidence(adata, fdr, alpha, epithelial)
    ptprc = gene_column(adata, LEUKOCYTE_MARKER)
    if ptprc is not None:  # one marker group is weak evidence: CellSearch's CD45⁻ holds for it
        leukocyte |= (k == 1) & (ptprc > 0)
    single = epithelial & ~leukocyte
    cluster = epithelial & leukocyte & (k >= 2)
    candidate = single | cluster
    out["ctc_candidate"] = candidate
    # object columns whose equal strings are one object (np.select's own constants), not a
    # string per cell as .astype(str) made
    out["ctc_class"] = np.select([single, cluster], _strings("CTC", "CTC-leukocyte cluster"), "")
    out["ctc_confidence"] = np.where(candidate, np.clip(1.0 - q, 0.0, 1.0), 0.0)
    out["ctc_fdr"] = q
    out["emt_state"] = np.where(candidate, emt_state(pvalues, fdr, alpha), _strings("")[0])
    return out


def _strings(*values: str) -> list[np.ndarray]:
    """Each string as a 0-d object array: ``np.select``/``np.where`` then fill an object array
    with references to it."""
    return [np.array(value, dtype=object) for value in values]


def detected_genes(detected: dict[str, np.ndarray], n: int) -> np.ndarray:
    """Per cell, the genes of ``detected`` (gene → boolean per cell, in order) that are true,
    comma-separated (``""`` for none). The cells' combinations are few: each is joined once."""
    genes = list(detected)
    if len(genes) > 62:  # more genes than bits of a code: one join per cell
        return np.array(
            [",".join(g for g in genes if detected[g][i]) for i in range(n)], dtype=object
        )
    code = np.zeros(n, dtype=np.int64)
    for bit, gene in enumerate(genes):
        code |= detected[gene].astype(np.int64) << bit
    distinct, inverse = np.unique(code, return_inverse=True)
    text = np.array(
        [",".join(g for bit, g in enumerate(genes) if value >> bit & 1) for value in distinct],
        dtype=object,
    )
    return text[inverse.reshape(-1)]


def ctc_support(calls: pd.DataFrame, scored: bool, min_candidates: int = 3) -> str:
    """Whether the sample supports CTC calls: ``"supported"`` or ``"not supported: <reason>"``.

    Refuses when ``CTC_epithelial_identity`` was not scored (too few genes present), when no cell
    passes the call, or when fewer than ``min_candidates`` do: under BH control at 5 % a lone
    call or two is compatible with a false discovery, and pure-immune samples (e.g. PBMC) end here.
    """
    if not scored:
        return f"not supported: {CTC_SIGNATURE} was not scored (see coverage.tsv)"
    n = int(calls["ctc_candidate"].sum())
    if n == 0:
        return "not supported: no cell has a significant epithelial/CTC identity with a core epithelial marker"
    if n < min_candidates:
        return f"not supported: only {n} candidate cell(s) (< {min_candidates}); compatible with false discoveries"
    return "supported"
