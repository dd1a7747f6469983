"""Label transfer from transcriptome neighbours: the last step of the cell-type assignment.

Cells the signature, marker and classifier steps left unassigned or at lineage level get the
subtype that a strict majority of their nearest neighbours in the whole transcriptome carries
(the principle of kNN label transfer, as in scanpy's ``tl.ingest`` or Seurat's
``TransferData``, with the sample's own confident calls as the reference). The marker steps see
a few hundred marker genes; on a panel that dropped a type's defining genes, or in a cell whose
markers dropped out, the rest of the transcriptome still places the cell among cells of its
type. A cell with no majority — a population no call covers, such as malignant cells of a
type the library does not name — stays as it was.

The neighbours are searched among a seeded subsample of at most
:data:`~seedsoil.embedding.MAX_EMBEDDING_CELLS` reference cells (all cells below that), in the
principal components of their most variable genes (as the sample's embedding is computed), so
memory and time stay bounded at a million cells: the reference rows (and up to as many query
cells' rows) are read in one pass over the file; more query cells are read in a second pass,
block by block.
"""

from __future__ import annotations

import numpy as np
import scipy.sparse as sp

from ..cellfile import BLOCK_CELLS
from ..embedding import MAX_EMBEDDING_CELLS, embedding_subsample, most_variable_genes
from ..scoring._input import open_source
from ..util import return_freed_memory
from .knn import KNN_WORKING_MEMORY_MB, N_NEIGHBORS

#: Principal components of the neighbour search (scanpy's ``pp.pca`` default).
N_PCS = 50


def transfer_labels(
    reference_codes: np.ndarray,
    candidates: np.ndarray,
    expression,
    *,
    n_neighbors: int = N_NEIGHBORS,
    max_reference: int = MAX_EMBEDDING_CELLS,
    seed: int = 0,
) -> tuple[np.ndarray, np.ndarray]:
    """Subtype codes transferred to ``candidates`` from their transcriptome neighbours.

    ``reference_codes``: per cell of the sample, the code of its subtype call (≥ 0), or −1 for a
    cell without one. ``candidates``: sorted row numbers of the cells to label. ``expression``:
    the sample's log-normalised matrix (an AnnData, a matrix, or a path to its ``.h5ad``).

    Reference cells ``R``: :func:`~seedsoil.embedding.embedding_subsample` of all cells (every
    cell when at most ``max_reference``). Genes: the :data:`~seedsoil.embedding.N_TOP_GENES` of
    highest variance over ``R``; PCA (centred, not scaled, ``min(N_PCS, |R| − 1, genes − 1)``
    components, from the eigendecomposition of the genes' covariance: deterministic, and defined
    for any matrix) fitted on ``R``. For a candidate ``c``, ``N(c)`` = its ``k =
    min(n_neighbors, |R| − 1)`` nearest cells of ``R`` other than itself (Euclidean, in the
    components); with ``m`` the most frequent code in ``N(c)`` (ties: the lowest code) and ``n``
    its count, ``c`` gets ``m`` when ``m ≥ 0`` and ``n > k / 2``, with share ``n / k``.

    Returns ``(codes, share)`` per candidate; code −1 (share NaN) where there is no majority.
    """
    import sklearn
    from sklearn.decomposition import PCA
    from sklearn.neighbors import NearestNeighbors

    reference_codes = np.asarray(reference_codes)
    candidates = np.asarray(candidates, dtype=np.int64)
    codes = np.full(candidates.size, -1, dtype=np.int64)
    share = np.full(candidates.size, np.nan)
    n_cells = reference_codes.size
    reference = embedding_subsample(n_cells, seed, max_reference)
    reference = np.arange(n_cells) if reference is None else reference
    k = min(n_neighbors, reference.size - 1)
    if candidates.size == 0 or k < 1 or not (reference_codes[reference] >= 0).any():
        return codes, share
    source = open_source(expression)
    # Up to max_reference candidates are read in the reference's pass: one pass over the file
    one_pass = candidates.size <= max_reference
    wanted = np.union1d(reference, candidates) if one_pass else reference
    # The rows read, kept per block of the file (no stacked copy of them); the reference's
    # are the blocks themselves when only the reference was read
    read = list(_row_blocks(source, wanted))
    parts = [_among(cells, block, reference) if one_pass else block for cells, block in read]
    if not one_pass:
        read = None
    genes = most_variable_genes(parts)
    # dense rows of the genes, block by block, each block dropped once copied when nothing
    # else reads it (the dense array's pages are taken as they are written)
    reference_rows = _dense(parts, genes, free=not one_pass)
    del parts
    n_comps = min(N_PCS, reference_rows.shape[0] - 1, reference_rows.shape[1] - 1)
    if n_comps < 1:
        return codes, share
    pca = PCA(n_components=n_comps, svd_solver="covariance_eigh").fit(reference_rows)
    search = NearestNeighbors(n_neighbors=k + 1).fit(pca.transform(reference_rows))
    del reference_rows
    labels = reference_codes[reference]
    position = np.full(n_cells, -1, dtype=np.int64)  # cell → its row in the reference, or -1
    position[reference] = np.arange(reference.size)
    if one_pass:
        query = _dense([_among(cells, block, candidates) for cells, block in read], genes)
        blocks = [(candidates, pca.transform(query))]
        del query, read
    else:
        blocks = (
            (cells, pca.transform(block.toarray()))
            for cells, block in _row_blocks(source, candidates, genes)
        )
    done = 0
    for cells, query in blocks:
        with sklearn.config_context(working_memory=KNN_WORKING_MEMORY_MB):
            found = search.kneighbors(query, return_distance=False)
        part = slice(done, done + cells.size)
        codes[part], share[part] = _majority(found, position[cells], labels, k)
        done += cells.size
    return codes, share


def _majority(found: np.ndarray, own: np.ndarray, labels: np.ndarray, k: int):
    """Per row of ``found`` (k + 1 reference rows, nearest first): drop the cell's own row
    (``own``, −1 when it is not a reference cell), keep ``k``, and return the majority code
    (−1 without a strict majority) and its share."""
    not_self = found != own[:, None]
    order = np.argsort(~not_self, axis=1, kind="stable")[:, :k]
    n_codes = int(labels.max()) + 2  # code −1 ("no call") counted in the last column
    neighbour_labels = np.where(labels < 0, n_codes - 1, labels)[
        np.take_along_axis(found, order, axis=1)
    ]
    n_rows = found.shape[0]
    flat = (np.arange(n_rows)[:, None] * n_codes + neighbour_labels).ravel()
    counts = np.bincount(flat, minlength=n_rows * n_codes).reshape(n_rows, n_codes)
    counts[:, -1] = 0  # "no call" never wins
    best = np.argmax(counts, axis=1)
    count = counts[np.arange(found.shape[0]), best]
    won = 2 * count > k
    return np.where(won, best, -1), np.where(won, count / k, np.nan)


def _among(cells: np.ndarray, block: sp.csr_matrix, chosen: np.ndarray) -> sp.csr_matrix:
    """The rows of ``block`` (the rows ``cells``, sorted) that are among ``chosen`` (sorted)."""
    return block[np.flatnonzero(np.isin(cells, chosen))]


def _dense(parts: list, genes: np.ndarray, free: bool = False) -> np.ndarray:
    """The float32 dense rows of ``parts`` (CSR blocks) one after another, columns ``genes``:
    the stacked matrix's ``[:, genes].toarray()``. ``free``: each block is dropped from
    ``parts`` once copied, and its memory returned to the system."""
    out = np.zeros((sum(part.shape[0] for part in parts), genes.size), dtype=np.float32)
    start = 0
    for number, part in enumerate(parts):
        out[start : start + part.shape[0]] = part[:, genes].toarray()
        start += part.shape[0]
        if free:
            parts[number] = None
            # the block's arrays are small (heap) ones: given back as they go, so the dense
            # rows' pages replace them instead of adding to them
            return_freed_memory()
    return out


def _row_blocks(source, cells: np.ndarray, genes: np.ndarray | None = None):
    """``(cells in the block, their float32 CSR rows)`` per block of :data:`BLOCK_CELLS` cells
    of ``source`` holding any of ``cells`` (sorted), in order; only the columns ``genes`` when
    given. A file is read a few million stored values at a time, each piece cut to these rows
    and genes (:meth:`~seedsoil.scoring._input.MatrixSource.selected_chunks`): a block's full
    rows, 250 MB at 20,000 droplet cells of 20,000 genes, are never held at once. The blocks,
    and so the principal components searched, do not depend on the pieces."""
    for chosen, block in source.selected_chunks(BLOCK_CELLS, rows=cells, columns=genes):
        yield chosen, sp.csr_matrix(block, dtype=np.float32)
