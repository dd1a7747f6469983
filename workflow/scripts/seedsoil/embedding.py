"""A 2-D embedding for plots when the dataset brings none: PCA → kNN graph → UMAP."""

from __future__ import annotations

import anndata as ad
import numpy as np

#: Below this many cells UMAP's graph is too small to be meaningful; the first two PCs are used.
MIN_CELLS_FOR_UMAP = 10


def compute_embedding(
    adata: ad.AnnData, *, random_state: int = 0, n_pcs: int = 50, n_neighbors: int = 15
) -> tuple[np.ndarray, str]:
    """2-D coordinates of every cell of ``adata`` (from its log-normalised ``X``) and a description.

    PCA on all genes of ``X`` (centred, not scaled) with ``min(n_pcs, n_cells - 1, n_genes - 1)``
    components, a ``min(n_neighbors, n_cells - 1)``-nearest-neighbour graph on them, then UMAP
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
    work = ad.AnnData(X=adata.X.astype(np.float32).copy())
    sc.pp.pca(work, n_comps=n_comps, random_state=random_state, svd_solver="arpack")
    if n_cells < MIN_CELLS_FOR_UMAP:
        return work.obsm["X_pca"][:, :2].astype(
            np.float32
        ), f"computed: PCA {n_comps} (first two PCs)"
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
    return work.obsm["X_umap"].astype(np.float32), f"computed: PCA {n_comps} → UMAP"
