"""The metastasis interpretation layer: from per-cell signature scores to answers.

One entry point, :func:`interpret_sample`, turns a sample's scores, p-values and FDRs into

* per-cell calls (``calls.parquet``): assigned cell type, CTC candidate and its EMT state,
  heterotypic-cluster flag (:mod:`.celltypes`, :mod:`.ctc`, :mod:`.clusters`);
* sender → receiver ligand–receptor scores with permutation p-values (``communication.tsv``,
  :mod:`.communication`);
* a sample summary (``interpretation.json``, :mod:`.summary`).

Definitions and validation figures are in ``docs/interpretation.md``.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from seedsoil.errors import InputError
from seedsoil.interpret import celltypes
from seedsoil.interpret.celltypes import (
    CELL_TYPE_SIGNATURES,
    assign_cell_types,
    cell_type_signatures,
    contrast_genes,
    identity_embedding,
    shipped_markers,
)
from seedsoil.interpret.clusters import (
    PARTNERS,
    TUMOUR_SIGNATURES,
    flag_heterotypic,
    partner_enrichment,
)
from seedsoil.interpret.communication import EXPR_PROP, MAX_CELLS, load_pairs, pair_genes
from seedsoil.interpret.ctc import (
    CTC_SIGNATURE,
    EMT_EPITHELIAL,
    EMT_MESENCHYMAL,
    EMT_SIGNATURE,
    EPITHELIAL_CORE,
    LEUKOCYTE_MARKER,
    blood_background_pvalues,
    call_ctc,
    core_groups_detected,
    leukocyte_programme,
)
from seedsoil.interpret.liana_methods import sample_communication
from seedsoil.interpret.resource import communication_pairs
from seedsoil.interpret.summary import (
    EXOSOME_SIGNATURES,
    NET_SIGNATURE,
    cell_types_used,
    communication_summary,
    summarise_interpretation,
)
from seedsoil.util import return_freed_memory

__all__ = [
    "CALL_COLUMNS",
    "CellTables",
    "communication_pairs",
    "genes_needed",
    "identity_graph",
    "interpret_cells",
    "interpret_communication",
    "interpret_sample",
    "load_pairs",
    "read_cell_table",
    "signatures_read",
    "summarise_interpretation",
]

#: Columns of ``calls.parquet``, in order (``size_z`` comes from :mod:`.clusters`).
CALL_COLUMNS = [
    "cell_type_assigned", "assignment_score", "assignment_confidence", "assignment_markers",
    "assignment_method", "cell_type_reference", "reference_confidence",
    "ctc_candidate", "ctc_class", "ctc_confidence", "ctc_fdr", "ctc_core_markers", "emt_state",
    "heterotypic_cluster", "size_z",
]  # fmt: skip


def genes_needed(
    pairs: pd.DataFrame | str | Path | None = None, ctc_core=None, *, communication: bool = True
) -> list[str]:
    """Every gene :func:`interpret_sample` reads from ``X``: PTPRC and the core epithelial
    markers ``ctc_core`` (default the built-in ones; the leukocyte and epithelial evidence of
    :func:`~seedsoil.interpret.ctc.call_ctc`),
    the ligand/receptor subunits of ``pairs`` (a table, a path to a chapter-style table, or None
    for LIANA's consensus plus the chapter's pairs, :func:`communication_pairs`) and the core
    markers and alternates of the cell-type signatures (:func:`~.celltypes.shipped_markers`)
    that gate and explain the assignment, and the sibling-contrast genes
    (:func:`~.celltypes.contrast_genes`). Reading only these columns
    (:func:`seedsoil.cellfile.read_genes`) gives the same interpretation as the whole matrix.
    ``communication=False`` leaves the pairs' genes out: :func:`interpret_sample` then reads
    them from the cells file itself (its ``expression``)."""
    pairs = _pairs(pairs) if communication else pd.DataFrame(columns=["ligand", "receptor"])
    _, marker_genes = shipped_markers()
    markers = {g for genes in marker_genes.values() for g in genes}
    core = [gene for group in ctc_core or EPITHELIAL_CORE for gene in group]
    return sorted({LEUKOCYTE_MARKER, *core, *pair_genes(pairs), *markers, *contrast_genes()})


def signatures_read(columns) -> list[str]:
    """The signatures of ``columns`` (in their order) whose scores, p-values or FDRs
    :func:`interpret_sample` reads: the cell-type signatures (:data:`CELL_TYPE_SIGNATURES`),
    every immune ``IMM_*`` one (leukocyte evidence and cluster partners), the CTC, EMT and
    tumour signatures, NET formation and the exosome ones. Reading only these columns of the
    three tables gives the same interpretation as the whole tables (the rest — niche and other
    programmes — are for the report), with a third less memory on the shipped library."""
    read = {
        *CELL_TYPE_SIGNATURES, *TUMOUR_SIGNATURES, *PARTNERS, CTC_SIGNATURE, EMT_SIGNATURE,
        EMT_EPITHELIAL, EMT_MESENCHYMAL, NET_SIGNATURE, *EXOSOME_SIGNATURES,
    }  # fmt: skip
    return [c for c in columns if c in read or str(c).startswith("IMM_")]


def _pairs(pairs) -> pd.DataFrame:
    if isinstance(pairs, pd.DataFrame):
        return pairs
    return communication_pairs(load_pairs()) if pairs is None else load_pairs(pairs)


def read_cell_table(
    path: str | Path, obs_names: pd.Index, *, signatures: bool = False, only=None
) -> pd.DataFrame:
    """A cells × signatures table (``scores``/``pvalues``/``fdr.parquet``) as ``pd.read_parquet``
    gives it, indexed by ``obs_names`` itself when it holds exactly those cells in that order.
    ``signatures=True``: only the columns :func:`interpret_sample` reads
    (:func:`signatures_read`); ``only`` (names): only those of its columns (file order).

    That usual case is read one column at a time into one float64 array, sharing the cell index
    with the AnnData: at a million cells this saves a copy of the table in Arrow memory and a
    million index strings per table. Any other table (other cells or order, non-float64
    columns, no stored index) is read whole by ``pd.read_parquet``; :func:`interpret_sample`
    then aligns it or says what differs.
    """
    import pyarrow as pa
    import pyarrow.parquet as pq

    file = pq.ParquetFile(path)
    schema = file.schema_arrow
    index_columns = (schema.pandas_metadata or {}).get("index_columns", [])
    columns = [name for name in schema.names if name not in index_columns]
    columns = _chosen(columns, signatures, only)
    fast = (
        len(index_columns) == 1
        and isinstance(index_columns[0], str)
        and all(pa.types.is_float64(schema.field(name).type) for name in columns)
        and file.metadata.num_rows == len(obs_names)
    )
    if fast:
        stored = file.read(columns=index_columns).column(0)
        try:
            expected = pa.array(obs_names.to_numpy(dtype=object), type=stored.type)
        except (pa.ArrowInvalid, pa.ArrowTypeError):
            fast = False
        else:
            fast = stored.equals(pa.chunked_array([expected]))
    if not fast:
        table = pd.read_parquet(path)
        return table[_chosen(table.columns, signatures, only)]
    values = np.empty((len(obs_names), len(columns)), dtype=np.float64)
    for k, name in enumerate(columns):
        values[:, k] = file.read(columns=[name]).column(0).to_numpy()
    del stored, expected
    return_freed_memory()  # the read's Arrow buffers, freed but kept mapped by the heap
    return pd.DataFrame(values, index=obs_names, columns=columns)


def _chosen(columns, signatures: bool, only) -> list:
    """``columns`` narrowed to :func:`signatures_read` (``signatures``) and to ``only``."""
    columns = signatures_read(columns) if signatures else list(columns)
    if only is None:
        return columns
    only = set(only)
    return [c for c in columns if c in only]


def identity_graph(scores: str | Path | pd.DataFrame, cells) -> np.ndarray:
    """The kNN graph the cell-type assignment searches (:func:`~.celltypes.identity_neighbours`)
    for ``cells`` (an AnnData, or its ``obs_names``), from ``scores`` (a table, or the path to
    ``scores.parquet``, of which only the cell-type columns are read): pass it to
    :func:`interpret_cells` as ``neighbours``. Searched before the three tables are read (and,
    given the cell names alone, :func:`seedsoil.cellfile.read_obs_names`, before the
    expression), its working memory (about 1 GB at a million cells) is not added to theirs;
    the calls are the same."""
    obs_names = _obs_names(cells)
    if not isinstance(scores, pd.DataFrame):
        scores = read_cell_table(scores, obs_names, only=CELL_TYPE_SIGNATURES)
    embedding = identity_embedding(
        _aligned(scores[cell_type_signatures(scores.columns)], "scores", cells, None)
    )
    del scores  # a table read here is not held through the search
    neighbours = celltypes.neighbour_index(embedding)  # the search assign_cell_types runs
    del embedding
    return_freed_memory()  # the search's many small freed arrays, before the tables are read
    return neighbours


def _obs_names(cells) -> pd.Index:
    """The cell names of ``cells``: an AnnData's ``obs_names``, or ``cells`` itself (an Index)."""
    return cells if isinstance(cells, pd.Index) else cells.obs_names


def _aligned(table: pd.DataFrame, name: str, adata, columns) -> pd.DataFrame:
    """``table`` reindexed to ``adata.obs_names`` (``adata``: an AnnData or those names);
    InputError when cells or signatures differ."""
    if columns is not None and list(table.columns) != list(columns):
        raise InputError(
            f"{name}: signature columns differ from scores.parquet; write all three tables from one scoring run"
        )
    obs_names = _obs_names(adata)
    if table.index.equals(obs_names):
        table = table.copy(deep=False)  # the usual case: no copy of a cells × signatures table
        table.index = obs_names
        return table
    missing_cells = obs_names.difference(table.index)
    if len(missing_cells):
        raise InputError(
            f"{name}: {len(missing_cells)} cell(s) of the AnnData are missing (first: {missing_cells[0]!r}); "
            "score the same cells.h5ad the interpretation reads"
        )
    return table.reindex(obs_names)


def interpret_sample(
    adata,
    scores: pd.DataFrame,
    pvalues: pd.DataFrame,
    fdr: pd.DataFrame,
    *,
    pairs: pd.DataFrame | str | Path | None = None,
    alpha: float = 0.05,
    n_perm: int = 1000,
    random_state: int = 0,
    min_cells: int = 5,
    expr_prop: float = EXPR_PROP,
    max_cells: int = MAX_CELLS,
    reference_labels: pd.DataFrame | None = None,
    ctc_core=None,
    expression=None,
    ctc_null: dict | None = None,
) -> tuple[pd.DataFrame, pd.DataFrame, dict]:
    """Interpret one sample: :func:`interpret_cells` then :func:`interpret_communication`.

    ``adata`` follows the AnnData convention (log-normalised ``X``, ``obs["cell_type"]``,
    ``obs["n_counts"]``/``obs["n_genes"]``); ``X`` needs only the columns of
    :func:`genes_needed` (``seedsoil.cellfile.read_genes(path, genes_needed(pairs))``) and
    the results are the same as with every gene. ``scores``/``pvalues``/``fdr`` are cells × signatures
    from the engine (same columns; :func:`signatures_read` of them suffice). ``pairs`` is a table (:func:`communication_pairs` or
    :func:`load_pairs`) or a path to a chapter-style one (default: LIANA's consensus resource
    plus the chapter's pairs). Communication groups are the dataset's labels when it has any,
    else the assigned types; ``expr_prop`` and ``max_cells`` as in
    :func:`~seedsoil.interpret.liana_methods.sample_communication`. ``reference_labels`` is the
    table of :func:`seedsoil.interpret.reference.annotate_with_reference`
    (``cell_type_reference``, ``reference_confidence``) or None (columns ``""`` and NaN).
    ``ctc_core`` are the CTC signature's core marker groups
    (:func:`~seedsoil.interpret.ctc.library_core`; None: the built-in EPCAM/keratin groups).
    ``expression``: the sample's ``cells.h5ad`` when ``X`` lacks the pairs' genes
    (``read_genes(path, genes_needed(pairs, ctc_core, communication=False))``): communication
    then reads them from the file block by block, so its memory does not grow with the cells.
    ``ctc_null``: ``{"signature": the scored CTC signature (ctc.library_signature), "n_null",
    "random_state"}`` (the scoring's): the CTC call then tests cells with two core marker
    groups against the sample's own leukocytes (:func:`~seedsoil.interpret.ctc.
    blood_background_pvalues`, streamed from ``expression`` when given, else from ``X``, which
    must then hold every gene); None: every cell against the whole sample (the engine's
    p-values).

    Returns ``(calls, communication, summary)``: ``calls`` indexed by cell with
    :data:`CALL_COLUMNS`; ``communication`` with
    :data:`seedsoil.interpret.communication.OUTPUT_COLUMNS`, the pairs' columns and
    :data:`seedsoil.interpret.liana_methods.LIANA_COLUMNS`; ``summary`` a JSON-ready dict
    (:func:`summarise_interpretation`).
    """
    calls, summary = interpret_cells(
        adata, scores, pvalues, fdr, alpha=alpha, reference_labels=reference_labels,
        ctc_core=ctc_core, expression=expression, ctc_null=ctc_null,
    )  # fmt: skip
    return (calls, *interpret_communication(
        adata, calls, summary, pairs=pairs, n_perm=n_perm, random_state=random_state,
        min_cells=min_cells, expr_prop=expr_prop, max_cells=max_cells, expression=expression,
    ))  # fmt: skip


def interpret_cells(
    adata,
    scores: pd.DataFrame | str | Path,
    pvalues: pd.DataFrame | str | Path,
    fdr: pd.DataFrame | str | Path,
    *,
    alpha: float = 0.05,
    reference_labels: pd.DataFrame | None = None,
    ctc_core=None,
    expression=None,
    ctc_null: dict | None = None,
    neighbours: np.ndarray | None = None,
) -> tuple[pd.DataFrame, dict]:
    """The per-cell part of :func:`interpret_sample` (arguments as there): ``(calls, summary)``
    with the summary's communication keys still empty (:func:`interpret_communication` fills
    them). The only step that reads the cells × signatures tables.
    ``neighbours``: the cell-type step's kNN graph, :func:`identity_graph` of the same scores
    and ``adata`` (None: searched here).

    ``scores``/``pvalues``/``fdr`` may each be a table or the path to its Parquet file
    (:func:`read_cell_table`, the signatures of :func:`signatures_read`). From files, each
    step reads the columns it needs when it runs and drops them after (:class:`CellTables`):
    the FDRs and the CTC/EMT p-values for the CTC call, the heterotypic flags and the partner
    enrichment; then the cell-type scores and p-values, read by the assignment when it needs
    them (:func:`~.celltypes.assign_cell_types`); then the few scores of the summary. At a
    million cells the cell-type step then holds no table between its reads, where it held the
    three (~650 MB). The results are those of the files read whole by :func:`read_cell_table`
    (a table built otherwise may lay its columns out differently in memory, which moves the
    last bits of the posterior's sums)."""
    tables = CellTables(adata, scores, pvalues, fdr)
    core_markers, marker_genes = shipped_markers()

    # The FDR-driven steps first (none reads the cell types): the FDRs are then dropped
    # before the cell-type step, the job's largest working memory.
    fdr = tables.read("fdr", FDR_READ)
    pvalues = tables.read("pvalues", (CTC_SIGNATURE, EMT_SIGNATURE))
    background = None
    if ctc_null is not None and ctc_null.get("signature") is not None and CTC_SIGNATURE in pvalues:
        background = blood_background_pvalues(
            expression if expression is not None else adata,
            ctc_null["signature"],
            core_groups_detected(adata, ctc_core or EPITHELIAL_CORE),
            leukocyte_programme(fdr, alpha),
            n_null=ctc_null["n_null"],
            random_state=ctc_null["random_state"],
        )
    ctc = call_ctc(adata, pvalues, fdr, alpha, core=ctc_core, background=background)
    heterotypic = flag_heterotypic(adata.obs, fdr, alpha, ctc["ctc_class"], adata, core_markers)
    enrichment = {p: partner_enrichment(fdr, alpha, p) for p in PARTNERS}
    del fdr, pvalues, background

    # The cell-type step reads the cell-type scores and p-values only, each when it needs them
    # and not after; no FDR is read with p-values given (an empty table names the types).
    used = cell_type_signatures(tables.columns)
    types = assign_cell_types(
        lambda: tables.read("scores", used),
        pd.DataFrame(columns=used),
        alpha,
        pvalues=lambda: tables.read("pvalues", used),
        expression=adata,
        core_markers=core_markers,
        marker_genes=marker_genes,
        # the whole matrix, read from the file in blocks: ``adata`` holds a few genes
        transcriptome=expression if expression is not None else adata,
        neighbours=neighbours,
    )
    calls = pd.concat([types, ctc, heterotypic], axis=1)
    del types, ctc, heterotypic
    if reference_labels is not None:
        reference_labels = _aligned(reference_labels, "reference_labels", adata, None)
        calls["cell_type_reference"] = reference_labels["cell_type_reference"].astype(str)
        calls["reference_confidence"] = reference_labels["reference_confidence"].astype(float)
    else:
        calls["cell_type_reference"] = ""
        calls["reference_confidence"] = np.nan
    calls = calls[CALL_COLUMNS]
    scores = tables.read("scores", SUMMARY_SCORES)
    summary = summarise_interpretation(
        calls, None, scores, adata, alpha=alpha, enrichment=enrichment
    )
    return calls, summary


#: The FDR columns :func:`interpret_cells` reads (those present): the CTC call's (the CTC
#: signature, every leukocyte ``IMM_*`` one, the one-sided EMT programmes), the heterotypic
#: flags' and the partner enrichment's (tumour and partner signatures).
FDR_READ = (
    CTC_SIGNATURE, EMT_EPITHELIAL, EMT_MESENCHYMAL, *TUMOUR_SIGNATURES, *PARTNERS, "IMM_*",
)  # fmt: skip
#: The score columns the summary reads (those present): the CTC signature (whether it was
#: scored), NET formation and the exosome signatures.
SUMMARY_SCORES = (CTC_SIGNATURE, NET_SIGNATURE, *EXOSOME_SIGNATURES)


class CellTables:
    """The three cells × signatures tables of one sample (``scores``, ``pvalues``, ``fdr``),
    each a DataFrame or the path to its Parquet file, with their columns checked once and read
    a few at a time (:meth:`read`).

    ``columns``: the scores' signature columns (a file's: :func:`signatures_read` of them); the
    p-values' and FDRs' must be the same list (InputError otherwise, as for tables)."""

    NAMES = ("scores", "pvalues", "fdr")

    def __init__(self, adata, scores, pvalues, fdr):
        self.adata = adata
        self.sources = dict(zip(self.NAMES, (scores, pvalues, fdr), strict=True))
        self.columns = _signature_columns(scores)
        for name in self.NAMES[1:]:
            if _signature_columns(self.sources[name]) != self.columns:
                raise InputError(
                    f"{name}: signature columns differ from scores.parquet; write all three "
                    "tables from one scoring run"
                )
        if not isinstance(scores, pd.DataFrame):  # a file's cells are checked on reading
            return
        for name in self.NAMES:  # tables: their cells checked now, as before any step runs
            _aligned(self.sources[name][[]], name, adata, None)

    def read(self, name: str, wanted) -> pd.DataFrame:
        """The columns of table ``name`` among ``wanted`` (signature names; ``"IMM_*"`` stands
        for every ``IMM_`` one), in the table's order, indexed by ``adata.obs_names``."""
        prefixes = tuple(w[:-1] for w in wanted if w.endswith("*"))
        wanted = set(wanted)
        columns = [c for c in self.columns if c in wanted or str(c).startswith(prefixes)]
        source = self.sources[name]
        if isinstance(source, pd.DataFrame):
            return _aligned(source[columns], name, self.adata, None)
        return _aligned(read_cell_table(source, self.adata.obs_names, only=columns), name,
                        self.adata, None)  # fmt: skip


def _signature_columns(table) -> list:
    """A table's columns, or those of a Parquet file that :func:`read_cell_table` gives with
    ``signatures=True`` (the stored index left out)."""
    if isinstance(table, pd.DataFrame):
        return list(table.columns)
    import pyarrow.parquet as pq

    schema = pq.read_schema(table)
    index_columns = (schema.pandas_metadata or {}).get("index_columns", [])
    return signatures_read([name for name in schema.names if name not in index_columns])


def interpret_communication(
    adata,
    calls: pd.DataFrame,
    summary: dict,
    *,
    pairs: pd.DataFrame | str | Path | None = None,
    n_perm: int = 1000,
    random_state: int = 0,
    min_cells: int = 5,
    expr_prop: float = EXPR_PROP,
    max_cells: int = MAX_CELLS,
    expression=None,
) -> tuple[pd.DataFrame, dict]:
    """The communication part of :func:`interpret_sample` on the ``calls`` and ``summary`` of
    :func:`interpret_cells` (arguments as there): ``(communication, summary)``, the summary
    with its communication keys and the run's settings."""
    groups, _ = cell_types_used(calls, adata)
    communication, skipped = sample_communication(
        adata, groups, _pairs(pairs), n_perm=n_perm, random_state=random_state,
        min_cells=min_cells, expr_prop=expr_prop, max_cells=max_cells, expression=expression,
    )  # fmt: skip
    summary = {**summary, **communication_summary(communication, skipped)}
    summary.update({"n_perm": n_perm, "random_state": random_state, "min_cells": min_cells})
    summary.update({"expr_prop": expr_prop, "max_cells": max_cells})
    return communication, summary
