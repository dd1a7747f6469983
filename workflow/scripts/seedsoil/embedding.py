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
    """Sorted column numbers of the :data:`N_TOP_GENES` columns of ``X`` (cells × genes) of
    highest variance over its rows (every column when there are no more); ties in variance
    keep the later column first, as a stable descending sort does."""
    X = sp.csr_matrix(X, dtype=np.float32)
    if X.shape[1] <= N_TOP_GENES:
        return np.arange(X.shape[1])
    mean = np.asarray(X.mean(axis=0), dtype=np.float64).ravel()
    mean_square = np.asarray(X.multiply(X).mean(axis=0), dtype=np.float64).ravel()
    return np.sort(np.argsort(mean_square - mean**2, kind="stable")[::-1][:N_TOP_GENES])


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
