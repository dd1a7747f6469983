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
    rows = _rows(source, wanted)
    reference_rows = rows[np.searchsorted(wanted, reference)]
    genes = most_variable_genes(reference_rows)
    reference_rows = reference_rows[:, genes].toarray()
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
        query = rows[np.searchsorted(wanted, candidates)][:, genes].toarray()
        blocks = [(candidates, pca.transform(query))]
    else:
        blocks = (
            (cells, pca.transform(block[:, genes].toarray()))
            for cells, block in _row_blocks(source, candidates)
        )
    del rows
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


def _rows(source, cells: np.ndarray) -> sp.csr_matrix:
    """The rows ``cells`` (sorted) of ``source``, as one CSR matrix."""
    blocks = [block for _, block in _row_blocks(source, cells)]
    return sp.vstack(blocks, format="csr") if blocks else sp.csr_matrix((0, source.n_genes))


def _row_blocks(source, cells: np.ndarray):
    """``(cells in the block, their CSR rows)`` per block of :data:`BLOCK_CELLS` cells of
    ``source`` holding any of ``cells`` (sorted), in order."""
    for number, block in enumerate(source.chunks(BLOCK_CELLS, check_finite=False)):
        first = number * BLOCK_CELLS
        lo, hi = np.searchsorted(cells, [first, first + block.shape[0]])
        if hi > lo:
            yield cells[lo:hi], sp.csr_matrix(block[cells[lo:hi] - first], dtype=np.float32)
