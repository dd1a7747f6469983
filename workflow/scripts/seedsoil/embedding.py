"""A 2-D embedding for plots when the dataset brings none: PCA → kNN graph → UMAP."""

from __future__ import annotations

import anndata as ad
import numpy as np
import scipy.sparse as sp

#: Below this many cells UMAP's graph is too small to be meaningful; the first two PCs are used.
MIN_CELLS_FOR_UMAP = 10
#: Most cells an embedding is computed on. UMAP's time and the kNN graph's memory grow with the
#: cells, and a plot shows at most this many anyway; larger datasets embed a random subsample.
MAX_EMBEDDING_CELLS = 20_000
#: Genes the PCA uses when a dataset has more: the most variable ones (the usual practice), so
#: PCA runs on a small dense matrix whatever the number of genes measured.
N_TOP_GENES = 2_000


def embedding_subsample(
    n_cells: int, random_state: int = 0, max_cells: int = MAX_EMBEDDING_CELLS
) -> np.ndarray | None:
    """Sorted row numbers of the ``max_cells`` cells an embedding of ``n_cells`` is computed on,
    drawn without replacement by ``numpy.random.default_rng(random_state)``; None (all cells)
    when ``n_cells <= max_cells``."""
    if n_cells <= max_cells:
        return None
    return np.sort(np.random.default_rng(random_state).choice(n_cells, max_cells, replace=False))


def compute_embedding(
    adata: ad.AnnData, *, random_state: int = 0, n_pcs: int = 50, n_neighbors: int = 15
) -> tuple[np.ndarray, str]:
    """2-D coordinates of every cell of ``adata`` (from its log-normalised ``X``) and a description.

    PCA (centred, not scaled) on the :data:`N_TOP_GENES` genes of ``X`` of highest variance (all
    genes when fewer) with ``min(n_pcs, n_cells - 1, n_genes - 1)`` components, a ``min(n_neighbors, n_cells - 1)``-nearest-neighbour graph on them, then UMAP
    (McInnes et al. 2018, arXiv:1802.03426) through scanpy, all seeded with ``random_state``.
    With fewer than :data:`MIN_CELLS_FOR_UMAP` cells the first two principal components are
    returned; with fewer than 3 cells or 2 genes, zeros. Identical seeds give identical
    coordinates, except when cells are exact duplicates (tied neighbours order arbitrarily).
    """
    import scanpy as sc

    n_cells, n_genes = adata.shape
    n_comps = min(n_pcs, n_cells - 1, n_genes - 1)
    if n_comps < 2:
        return np.zeros((n_cells, 2), dtype=np.float32), "computed: none (too few cells or genes)"
    work, genes_used = _most_variable(adata.X)
    sc.pp.pca(work, n_comps=n_comps, random_state=random_state, svd_solver="arpack")
    if n_cells < MIN_CELLS_FOR_UMAP:
        return work.obsm["X_pca"][:, :2].astype(
            np.float32
        ), f"computed: PCA {n_comps}{genes_used} (first two PCs)"
    # scanpy 1.11's default pynndescent path fails on scipy 1.17 sparse arrays (no getnnz);
    # exact neighbours from scikit-learn work at every size we embed.
    sc.pp.neighbors(
        work,
        n_neighbors=min(n_neighbors, n_cells - 1),
        n_pcs=n_comps,
        random_state=random_state,
        transformer="sklearn",
    )
    sc.tl.umap(work, random_state=random_state)
    return work.obsm["X_umap"].astype(np.float32), f"computed: PCA {n_comps}{genes_used} → UMAP"


def most_variable_genes(X) -> np.ndarray:
    """Sorted column numbers of the :data:`N_TOP_GENES` columns of ``X`` (cells × genes; or a
    list of CSR blocks of the same columns, their rows one after another, never stacked) of
    highest variance over its rows (every column when there are no more); ties in variance
    keep the later column first, as a stable descending sort does."""
    parts = [sp.csr_matrix(part, dtype=np.float32) for part in (X if isinstance(X, list) else [X])]
    if parts[0].shape[1] <= N_TOP_GENES:
        return np.arange(parts[0].shape[1])
    mean, mean_square = column_means(parts)
    variance = mean_square.astype(np.float64) - mean.astype(np.float64) ** 2
    return np.sort(np.argsort(variance, kind="stable")[::-1][:N_TOP_GENES])


#: Stored values :func:`column_means` handles at a time (its temporaries: a few of this size).
MEANS_PIECE_VALUES = 4_000_000


def column_means(X) -> tuple[np.ndarray, np.ndarray]:
    """Per column of the float32 CSR ``X`` (canonical: no duplicate entries; or a list of such
    blocks of the same columns, their rows one after another), the float32 means of its values
    and of their squares over the rows, as scipy computes ``X.mean(axis=0)`` and
    ``X.multiply(X).mean(axis=0)`` of the stacked rows: each value (squared) times
    ``1 / rows`` in float32, added to its column's float32 total in row order. Slices of the
    stored values at a time, where scipy's makes two copies of ``X`` (a squared one and a scaled
    one): the same additions in the same order, so the same bits."""
    parts = X if isinstance(X, list) else [X]
    scale = np.float32(1.0 / sum(part.shape[0] for part in parts))
    mean = np.zeros(parts[0].shape[1], dtype=np.float32)
    mean_square = np.zeros(parts[0].shape[1], dtype=np.float32)
    for part in parts:
        for start in range(0, part.nnz, MEANS_PIECE_VALUES):
            piece = slice(start, start + MEANS_PIECE_VALUES)
            values, columns = part.data[piece], part.indices[piece]
            np.add.at(mean, columns, values * scale)  # unbuffered: in order, as scipy adds them
            # scipy's product drops entries whose square is 0; adding 0 changes no total
            np.add.at(mean_square, columns, (values * values) * scale)
    return mean, mean_square


def _most_variable(X) -> tuple[ad.AnnData, str]:
    """A float32 AnnData of the :func:`most_variable_genes` columns of ``X`` (dense when
    restricted), and how the description names them."""
    X = sp.csr_matrix(X, dtype=np.float32)
    top = most_variable_genes(X)
    if top.size == X.shape[1]:
        return ad.AnnData(X=X.copy()), ""
    return ad.AnnData(X=X[:, top].toarray()), f" of the {N_TOP_GENES:,} most variable genes"


def scanpy_key(description: str) -> str | None:
    """The ``obsm`` key scanpy reads an embedding from (``X_umap``, ``X_tsne``, ``X_pca``), by
    what ``uns["seedsoil"]["embedding"]`` says it is; None when it is none of these (zeros, or a
    dataset's own embedding of another kind)."""
    text = description.lower()
    if text.startswith("dataset:"):
        name = text.split(":", 1)[1].split()[0]
        kinds = ("umap", "tsne", "pca")
        return next((f"X_{kind}" for kind in kinds if kind in name), None)
    if "→ umap" in text:
        return "X_umap"
    if "first two pcs" in text:
        return "X_pca"
    return None
