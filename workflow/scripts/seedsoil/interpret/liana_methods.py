"""LIANA+'s methods and their rank aggregate on one sample's cell types (``li.mt.rank_aggregate``).

``liana.mt.rank_aggregate`` runs CellPhoneDB, Connectome, log2FC, NATMI and SingleCellSignalR
on the same resource and cells and combines their ranks by robust rank aggregation (Kolde et
al. 2012): ``magnitude_rank`` ranks how strongly the ligand and receptor are expressed (high
expression in sender and receiver), ``specificity_rank`` how specific that expression is to
this sender → receiver combination compared with the others; both are RRA p-values, smaller
is stronger (Dimitrov et al. 2022, Nat Commun 13:3224). The per-method scores are kept
(``lr_means``, ``cellphone_pvals``, ``expr_prod``, ``scaled_weight``, ``lr_logfc``,
``spec_weight``) except SingleCellSignalR's ``lrscore``.

The AnnData passed in holds only the genes of the pairs (:func:`seedsoil.cellfile.read_genes`):
every method's per-gene statistics are the same as on the whole matrix, except
SingleCellSignalR's ``lrscore = sqrt(L·R) / (sqrt(L·R) + mean(X))``, whose constant is the
mean of the matrix given. It is monotone in ``L·R`` for a fixed constant, so its ranks, and
hence ``magnitude_rank``, are the same either way; the value itself is left out of the table.
"""

from __future__ import annotations

import warnings

import anndata as ad
import numpy as np
import pandas as pd
import scipy.sparse as sp

#: Columns added to the communication table, in order.
LIANA_COLUMNS = [
    "magnitude_rank", "specificity_rank", "lr_means", "cellphone_pvals", "expr_prod",
    "scaled_weight", "lr_logfc", "spec_weight",
]  # fmt: skip
KEYS = ["sender", "receiver", "ligand", "receptor"]


def _liana_name(spec: pd.Series) -> pd.Series:
    return spec.str.replace("+", "_", regex=False)


def liana_ranks(
    adata,
    groups: pd.Series,
    pairs: pd.DataFrame,
    *,
    expr_prop: float,
    min_cells: int,
    n_perm: int,
    random_state: int,
) -> pd.DataFrame:
    """``li.mt.rank_aggregate`` on the cells of ``groups`` (NaN/"unassigned" left out) with
    ``pairs`` as the resource; columns :data:`KEYS` (``A+B`` complexes) + :data:`LIANA_COLUMNS`.
    Empty when fewer than two types have ``min_cells`` cells (nothing to be specific against).

    Same filters as :func:`~seedsoil.interpret.communication.score_communication`
    (``expr_prop``, ``min_cells``), ``n_perms=n_perm`` and ``seed=random_state``.
    """
    import liana as li

    labels = groups.reindex(adata.obs_names).astype(object)
    keep = (labels.notna() & (labels != "unassigned")).to_numpy()
    counts = labels[keep].value_counts()
    if (counts >= min_cells).sum() < 2:  # log2FC and specificity need another type to compare
        return pd.DataFrame(columns=KEYS + LIANA_COLUMNS)
    matrix = adata.X if sp.issparse(adata.X) else sp.csr_matrix(adata.X)
    sample = ad.AnnData(
        X=sp.csr_matrix(matrix[keep], dtype=np.float32),
        obs=pd.DataFrame(
            {"group": labels[keep].astype(str).to_numpy()}, index=adata.obs_names[keep]
        ),
        var=pd.DataFrame(index=adata.var_names),
    )
    resource = pd.DataFrame(
        {"ligand": _liana_name(pairs["ligand"]), "receptor": _liana_name(pairs["receptor"])}
    ).drop_duplicates()
    resource = resource[
        resource["ligand"].str.split("_").map(lambda g: set(g) <= set(sample.var_names))
        & resource["receptor"].str.split("_").map(lambda g: set(g) <= set(sample.var_names))
    ]
    if resource.empty:
        return pd.DataFrame(columns=KEYS + LIANA_COLUMNS)
    with warnings.catch_warnings():
        # LIANA's own internals (scanpy scaling a sparse copy, deprecated AnnData calls): not
        # actionable by a user, and repeated in every sample's log
        warnings.filterwarnings("ignore", category=FutureWarning)
        warnings.filterwarnings("ignore", category=ad.ImplicitModificationWarning)
        warnings.filterwarnings("ignore", message="zero-centering a sparse array")
        result = li.mt.rank_aggregate(
            sample,
            groupby="group",
            resource=resource,
            expr_prop=expr_prop,
            min_cells=min_cells,
            n_perms=n_perm,
            seed=random_state,
            use_raw=False,
            inplace=False,
            verbose=False,
        )
    result = result.rename(columns={"source": "sender", "target": "receiver"})
    result["ligand"] = result["ligand_complex"].str.replace("_", "+", regex=False)
    result["receptor"] = result["receptor_complex"].str.replace("_", "+", regex=False)
    for column in LIANA_COLUMNS:
        if column not in result:
            result[column] = np.nan
    return result[KEYS + LIANA_COLUMNS].reset_index(drop=True)


def sample_communication(
    adata,
    groups: pd.Series,
    pairs: pd.DataFrame,
    *,
    n_perm: int,
    random_state: int,
    min_cells: int,
    expr_prop: float,
    max_cells: int,
    expression=None,
) -> tuple[pd.DataFrame, dict]:
    """One sample's ``communication.tsv``: the kernel's scores and p-values
    (:func:`~seedsoil.interpret.communication.score_communication`) joined with LIANA's ranks
    (:func:`liana_ranks`) when the sample has at most ``max_cells`` grouped cells; above it
    (atlas size) the LIANA columns are empty and ``skipped["liana"]`` says why.

    ``expression``: the ``cells.h5ad`` to read the pairs' genes from, block by block, when
    ``adata.X`` lacks them (the workflow's path); LIANA then gets the grouped cells' rows only.
    """
    from seedsoil.interpret.communication import score_communication

    options = {"n_perm": n_perm, "random_state": random_state, "min_cells": min_cells}
    table, skipped = score_communication(
        adata,
        groups,
        pairs,
        expr_prop=expr_prop,
        max_cells=max_cells,
        expression=expression,
        **options,
    )
    grouped = int((groups.notna() & (groups != "unassigned")).sum())
    if grouped > max_cells or table.empty:
        ranks = pd.DataFrame(columns=KEYS + LIANA_COLUMNS)
        if grouped > max_cells:
            skipped["liana"] = f"{grouped} cells > communication.max_cells ({max_cells})"
    else:
        if expression is not None:
            adata = grouped_cells(adata, groups, pairs, expression)
        ranks = liana_ranks(adata, groups, pairs, expr_prop=expr_prop, **options)
    table = table.merge(ranks, on=KEYS, how="left", validate="one_to_one")
    return table, skipped


def grouped_cells(adata, groups: pd.Series, pairs: pd.DataFrame, expression) -> ad.AnnData:
    """The cells of ``adata`` with a group (not NaN/"unassigned") × the genes of ``pairs`` that
    ``expression`` (a ``cells.h5ad`` of ``adata``'s cells) has, read block by block."""
    from seedsoil.interpret.communication import _gene_blocks, pair_genes
    from seedsoil.scoring._input import open_source

    source = open_source(expression)
    genes = [g for g in pair_genes(pairs) if g in source.var_names]
    labels = groups.reindex(adata.obs_names)
    keep = np.flatnonzero((labels.notna() & (labels != "unassigned")).to_numpy())
    rows, start = [], 0
    for block in _gene_blocks(source, genes):
        stop = start + block.shape[0]
        lo, hi = np.searchsorted(keep, [start, stop])
        rows.append(block[keep[lo:hi] - start])
        start = stop
    return ad.AnnData(
        X=sp.vstack(rows, format="csr"),
        obs=pd.DataFrame(index=adata.obs_names[keep]),
        var=pd.DataFrame(index=genes),
    )
