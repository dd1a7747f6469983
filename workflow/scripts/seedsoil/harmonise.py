"""Harmonise a matrix read by :mod:`seedsoil.io` to the AnnData convention of docs/architecture.md.

Counts layer, ``log1p`` of counts per 10,000 in ``X``, detected input scale, gene symbols,
folder-safe sample names, the ``obs`` convention columns, an embedding and ``uns["seedsoil"]``.
"""

from __future__ import annotations

import re

import anndata as ad
import numpy as np
import pandas as pd
import scipy.sparse as sp

from seedsoil.errors import InputError
from seedsoil.genes import ensembl_to_symbol, guess_species, looks_like_ensembl

# ---------------------------------------------------------------- harmonise: input checks

#: Largest value a log-normalised matrix can plausibly hold: log1p(1e6) ≈ 13.8 for CPM scale.
LOG_SCALE_MAX = 20.0
#: Values within this distance of an integer count as integers (CSV round-trips give 3.00000000000001).
INTEGER_TOLERANCE = 1e-4
#: Names that already exist in results/{dataset}/ and so cannot be sample folders.
RESERVED_SAMPLE_NAMES = frozenset({"ingested.h5ad", "samples.tsv"})
#: obs columns the convention defines; input columns of these names are kept as ``orig_<name>``.
CONVENTION_OBS = (
    "sample", "cell_type", "condition", "n_counts", "n_genes", "mito_fraction", "qc_pass", "qc_reason",
)  # fmt: skip
EMBEDDING_KEYS = ("X_umap", "X_umap_orig", "X_tsne")
_UNSAFE_CHARACTERS = re.compile(r"[^A-Za-z0-9._+-]+")


def select_counts(adata: ad.AnnData, counts: str, source_label: str):
    """The matrix named by ``counts`` (``X``, ``raw`` or ``layer:NAME``) as float64 CSR, and its gene names."""
    if counts == "X":
        matrix, genes = adata.X, adata.var_names
    elif counts == "raw":
        if adata.raw is None:
            raise InputError(
                f"{source_label}: counts is 'raw' but the file has no .raw; use X or a layer."
            )
        matrix, genes = adata.raw.X, adata.raw.var_names
    elif counts.startswith("layer:") and counts[6:] in adata.layers:
        matrix, genes = adata.layers[counts[6:]], adata.var_names
    else:
        raise InputError(
            f"{source_label}: counts {counts!r} not found; use X, raw (has .raw: {adata.raw is not None}) "
            f"or layer:NAME with NAME one of {list(adata.layers.keys())}."
        )
    return sp.csr_matrix(matrix, dtype=np.float64), np.asarray(genes, dtype=str)


def _first_position(matrix: sp.csr_matrix, mask: np.ndarray) -> tuple[int, int]:
    """(row, column) of the first stored entry of ``matrix`` selected by ``mask`` over ``.data``."""
    entry = int(np.flatnonzero(mask)[0])
    row = int(np.searchsorted(matrix.indptr, entry, side="right") - 1)
    return row, int(matrix.indices[entry])


def check_finite(matrix: sp.csr_matrix, cells, genes, where: str, source_label: str) -> None:
    """:class:`InputError` if ``matrix`` holds NaN or Inf, naming how many and the first cell/gene."""
    bad = ~np.isfinite(matrix.data)
    if bad.any():
        row, col = _first_position(matrix, bad)
        rows = np.unique(np.searchsorted(matrix.indptr, np.flatnonzero(bad), side="right") - 1)
        raise InputError(
            f"{source_label}: {where} holds {int(bad.sum())} NaN/Inf values in {rows.size} cells "
            f"(first: cell {cells[row]!r} (row {row + 1}), gene {genes[col]!r}); expression values "
            "must be finite numbers. Fix or remove those cells/genes in the file."
        )


def detect_scale(matrix: sp.csr_matrix) -> str:
    """Classify stored values: ``"scaled"`` (any negative), ``"counts"`` (all integers within
    :data:`INTEGER_TOLERANCE`), ``"log-normalised"`` (non-integer, max ≤ :data:`LOG_SCALE_MAX`)
    or ``"normalised"`` (non-integer with larger values: TPM, CPM, CP10k)."""
    data = matrix.data
    if data.size == 0:
        return "counts"
    if data.min() < 0:
        return "scaled"
    if np.all(np.abs(data - np.rint(data)) <= INTEGER_TOLERANCE):
        return "counts"
    return "log-normalised" if data.max() <= LOG_SCALE_MAX else "normalised"


def _refuse_negative(matrix, cells, genes, adata, counts, source_label) -> None:
    negative = matrix.data < 0
    row, col = _first_position(matrix, negative)
    first = (
        f"{int(negative.sum())} negative values (first: {matrix.data[negative][0]:.3g} at cell "
        f"{cells[row]!r} (row {row + 1}), gene {genes[col]!r})"
    )
    if np.all(np.abs(matrix.data - np.rint(matrix.data)) <= INTEGER_TOLERANCE):
        raise InputError(
            f"{source_label}: {counts} holds integer values with {first}; counts must be ≥ 0. "
            "The file is corrupt or these are not counts: check it."
        )
    if counts == "X" and adata.raw is not None:
        hint = "The file has .raw: set the sheet's counts column to raw."
    elif adata.layers:
        hint = f"Set the counts column to one of: {', '.join('layer:' + k for k in adata.layers)}."
    else:
        hint = "Provide raw counts or log-normalised values instead."
    raise InputError(
        f"{source_label}: {counts} holds {first}: this looks like scaled (z-scored) data, which "
        f"cannot be scored because expression levels are no longer comparable between genes. {hint}"
    )


# ---------------------------------------------------------------- harmonise: genes


def _ensembl_species(ids) -> str | None:
    prefixes = pd.Series([str(i)[:7] for i in ids])
    mouse = prefixes.eq("ENSMUSG").mean()
    human = prefixes.str.match(r"ENSG\d").mean()
    return "mouse" if mouse > 0.5 else "human" if human > 0.5 else None


def resolve_gene_names(names, gene_id: str, species: str, var: pd.DataFrame, source_label: str):
    """Gene symbols for ``names`` and a list of warnings.

    ``gene_id="ensembl"``: version suffixes are stripped (``ENSG00000141510.12`` →
    ``ENSG00000141510``) and IDs mapped to symbols; IDs without a symbol keep their stripped ID
    (so per-cell totals stay complete; no signature matches them). A 10x ``var["gene_ids"]``
    column is used when ``var_names`` hold symbols. Declared symbols that are mostly Ensembl
    IDs, or the reverse, and a species contradicting the identifiers raise :class:`InputError`.
    """
    names = np.array([str(n).strip() for n in names], dtype=object)
    examples = ", ".join(names[:3])
    warnings = []
    if gene_id == "symbol":
        if looks_like_ensembl(names, min_fraction=0.5):
            raise InputError(
                f"{source_label}: gene_id is 'symbol' but the genes are Ensembl IDs (e.g. {examples}); "
                "no signature gene would be found. Set the sheet's gene_id column to ensembl."
            )
        symbols = names
    elif gene_id == "ensembl":
        if not looks_like_ensembl(names, min_fraction=0.5):
            if "gene_ids" in var and looks_like_ensembl(var["gene_ids"], min_fraction=0.5):
                names = np.array([str(n) for n in var["gene_ids"]], dtype=object)
            else:
                raise InputError(
                    f"{source_label}: gene_id is 'ensembl' but the genes look like symbols "
                    f"(e.g. {examples}); set the sheet's gene_id column to symbol."
                )
        found = _ensembl_species(names)
        if found is not None and found != species:
            raise InputError(
                f"{source_label}: species is {species!r} but the Ensembl IDs are {found} "
                f"(e.g. {', '.join(names[:3])}); set the sheet's species column to {found}."
            )
        stripped = np.array([re.sub(r"\.\d+$", "", n) for n in names], dtype=object)
        symbols = np.array(ensembl_to_symbol(list(stripped), species=species), dtype=object)
        unmapped = symbols == stripped  # GENCODE v44 has no symbol: the ID is kept
        if unmapped.any():
            warnings.append(
                f"{int(unmapped.sum())} of {len(names)} Ensembl IDs have no symbol and keep their "
                f"ID (e.g. {', '.join(stripped[unmapped][:3])})"
            )
    else:
        raise InputError(f"{source_label}: gene_id {gene_id!r} unknown; use symbol or ensembl.")
    found = guess_species(symbols)
    if found != "unknown" and found != species:
        style = "upper-case (human style" if found == "human" else "capitalised (mouse style"
        raise InputError(
            f"{source_label}: species is {species!r} but most gene symbols are {style}, e.g. "
            f"{', '.join(symbols[:3])}); set the sheet's species column to {found}, or convert "
            "the genes to orthologs first."
        )
    return symbols, warnings


def merge_duplicate_genes(
    matrix: sp.csr_matrix, symbols
) -> tuple[sp.csr_matrix, np.ndarray, list[str]]:
    """Sum the columns of duplicated symbols (kept at the first occurrence's position).

    ``matrix`` must be on a linear scale (counts, TPM, or expm1 of log-normalised values), where
    a gene's total is the sum of its parts. Returns the merged matrix, unique symbols, warnings.
    """
    codes, unique = pd.factorize(pd.Index(symbols, dtype=object))
    if unique.size == len(symbols):
        return matrix, np.asarray(symbols, dtype=object), []
    merge = sp.csr_matrix(
        (np.ones(len(codes)), (np.arange(len(codes)), codes)), shape=(len(codes), unique.size)
    )
    counts = pd.Series(symbols).value_counts()
    duplicated = counts[counts > 1]
    warning = (
        f"{duplicated.size} gene symbols occur more than once ({int(duplicated.sum())} columns, "
        f"e.g. {', '.join(duplicated.index[:3])}); their values were summed"
    )
    return sp.csr_matrix(matrix @ merge), np.asarray(unique, dtype=object), [warning]


# ---------------------------------------------------------------- harmonise: cells


def make_unique(names) -> tuple[list[str], list[str]]:
    """Cell names made unique: the k-th repeat (k ≥ 1) of a name gets ``-k`` (or the next free k)."""
    names = [str(n) for n in names]
    taken = set(names)
    seen: dict[str, int] = {}
    result = []
    for name in names:
        if name not in seen:
            seen[name] = 0
            result.append(name)
            continue
        k = seen[name] + 1
        while f"{name}-{k}" in taken:
            k += 1
        seen[name] = k
        taken.add(f"{name}-{k}")
        result.append(f"{name}-{k}")
    renamed = sum(a != b for a, b in zip(names, result, strict=True))
    warnings = []
    if renamed:
        examples = [b for a, b in zip(names, result, strict=True) if a != b][:3]
        warnings.append(
            f"{renamed} duplicated cell barcodes were made unique (e.g. {', '.join(examples)})"
        )
    return result, warnings


def safe_sample_name(value: str) -> str:
    """``value`` as a folder name: runs of characters other than letters, digits and ``._+-``
    become ``_``. Raises ``ValueError`` for names that could escape ``results/``: empty, starting
    with ``.``, containing ``/`` or ``\\``, or reserved (``ingested.h5ad``, ``samples.tsv``)."""
    if not value.strip() or value.startswith(".") or "/" in value or "\\" in value:
        raise ValueError(value)
    safe = _UNSAFE_CHARACTERS.sub("_", value.strip())
    if safe in RESERVED_SAMPLE_NAMES:
        raise ValueError(value)
    return safe


def _column(obs: pd.DataFrame, key: str, role: str, source_label: str) -> pd.Series:
    if key not in obs.columns:
        raise InputError(
            f"{source_label}: {role} column {key!r} not found; available obs columns: "
            f"{', '.join(map(str, obs.columns)) or '(none)'}. Fix the sheet's {role}_column."
        )
    return obs[key]


def sample_names(values: pd.Series, key: str, source_label: str) -> tuple[np.ndarray, list[str]]:
    """Safe sample names for every cell (see :func:`safe_sample_name`) and warnings."""
    missing = values.isna().to_numpy()
    if missing.any():
        row = int(np.flatnonzero(missing)[0])
        raise InputError(
            f"{source_label}: sample column {key!r} is empty for {int(missing.sum())} cells (first: "
            f"row {row + 1}, cell {values.index[row]!r}); every cell needs a sample."
        )
    text = values.astype(str).to_numpy()
    renamed, warnings = {}, []
    for value in pd.unique(text):
        try:
            renamed[value] = safe_sample_name(value)
        except ValueError:
            row = int(np.flatnonzero(text == value)[0])
            raise InputError(
                f"{source_label}: sample column {key!r} has the unsafe value {value!r} (row "
                f"{row + 1}, cell {values.index[row]!r}); sample names become folders under "
                "results/ and must not be empty, start with '.', contain '/' or '\\', or be "
                "'ingested.h5ad'/'samples.tsv'. Rename the sample in the file."
            ) from None
    clashes = pd.Series(renamed).pipe(lambda s: s[s.duplicated(keep=False)])
    if not clashes.empty:
        raise InputError(
            f"{source_label}: sample names {list(clashes.index)} all become {clashes.iloc[0]!r} "
            "once made safe for folder names; rename them in the file."
        )
    changed = {k: v for k, v in renamed.items() if k != v}
    if changed:
        warnings.append(f"sample names made safe for folders: {changed}")
    return np.array([renamed[v] for v in text], dtype=object), warnings


# ---------------------------------------------------------------- harmonise


def log_normalise(linear: sp.csr_matrix, target_sum: float = 1e4) -> sp.csr_matrix:
    """``log1p(value / cell total * target_sum)`` per cell as float32 CSR (the convention's ``X``).

    Computed in float64 on the stored values, so the sparsity structure (and index order) of
    ``linear`` is kept exactly; all-zero cells stay zero.
    """
    linear = sp.csr_matrix(linear)
    totals = np.asarray(linear.sum(axis=1), dtype=np.float64).ravel()
    factors = np.divide(target_sum, totals, out=np.zeros_like(totals), where=totals > 0)
    data = np.log1p(linear.data.astype(np.float64) * np.repeat(factors, np.diff(linear.indptr)))
    return sp.csr_matrix(
        (data.astype(np.float32), linear.indices.copy(), linear.indptr.copy()), shape=linear.shape
    )


def _scale_warning(scale: str, linear: sp.csr_matrix, counts: str) -> list[str]:
    if scale == "normalised":
        return [
            f"{counts} is normalised (non-integer, max {linear.data.max():.4g}), not counts: no "
            "counts layer; each cell was rescaled to 10,000 in total and log1p-transformed"
        ]
    if scale == "log-normalised":
        totals = np.asarray(linear.sum(axis=1)).ravel()
        return [
            f"{counts} is already log-normalised (non-integer, max {np.log1p(linear.data.max()):.3g}): "
            f"kept as X, no counts layer; per-cell totals of expm1(X) range {totals.min():.4g}–"
            f"{totals.max():.4g} (median {np.median(totals):.4g})"
        ]
    return []


def _embedding(
    adata_in: ad.AnnData, adata: ad.AnnData, key: str | None, source_label: str, random_state: int
):
    from seedsoil.embedding import compute_embedding

    if key is not None and key not in adata_in.obsm:
        raise InputError(
            f"{source_label}: embedding {key!r} not in obsm; available: {list(adata_in.obsm.keys())}."
        )
    key = key or next((k for k in EMBEDDING_KEYS if k in adata_in.obsm), None)
    if key is not None:
        coordinates = np.asarray(adata_in.obsm[key], dtype=np.float32)
        if coordinates.ndim == 2 and coordinates.shape[1] >= 2:
            return coordinates[:, :2], f"dataset: {key}"
    return compute_embedding(adata, random_state=random_state)


def harmonise(
    adata: ad.AnnData,
    *,
    dataset: str,
    sample_key: str | None = None,
    cell_type_key: str | None = None,
    condition_key: str | None = None,
    condition: str = "NA",
    species: str = "human",
    gene_id: str = "symbol",
    counts: str = "X",
    source_label: str = "input",
    fmt: str = "",
    provenance: dict | None = None,
    embedding: str | None = None,
    random_state: int = 0,
) -> ad.AnnData:
    """A new AnnData in the convention of docs/architecture.md, built from ``adata``.

    Values come from ``counts`` (``X``, ``raw`` or ``layer:NAME``); their scale is detected
    (:func:`detect_scale`): counts → ``layers["counts"]`` (rounded) and ``X = log1p(CP10k)``;
    normalised (TPM-like) → rescaled to 10,000 per cell, then log1p, no counts layer;
    log-normalised → kept as ``X``; scaled (negative values) → :class:`InputError`. Gene
    identifiers are resolved to symbols (:func:`resolve_gene_names`), duplicated symbols summed
    on the linear scale (:func:`merge_duplicate_genes`), barcodes made unique
    (:func:`make_unique`), sample names made folder-safe (:func:`sample_names`). Missing
    labels become ``"unlabelled"`` (cell type) and ``condition`` (condition). Input obs
    columns are kept; those named like convention columns become ``orig_<name>``. The
    embedding is ``obsm[embedding]``, else the first of :data:`EMBEDDING_KEYS`, else computed
    (:func:`seedsoil.embedding.compute_embedding`). QC metrics are added
    (:func:`seedsoil.qc.add_qc_metrics`); ``qc_pass``/``qc_reason`` come from ``apply_qc``.
    """
    from seedsoil import __version__
    from seedsoil.qc import add_qc_metrics

    keys = {"sample": sample_key, "cell_type": cell_type_key, "condition": condition_key}
    columns = {
        role: _column(adata.obs, key, role, source_label) for role, key in keys.items() if key
    }
    if sample_key is None:
        try:
            safe_sample_name(dataset)
        except ValueError:
            raise InputError(f"dataset id {dataset!r} is not a safe folder name.") from None

    linear, genes = select_counts(adata, counts, source_label)
    check_finite(linear, adata.obs_names, genes, counts, source_label)
    scale = detect_scale(linear)
    if scale == "scaled":
        _refuse_negative(linear, adata.obs_names, genes, adata, counts, source_label)
    symbols, warnings = resolve_gene_names(genes, gene_id, species, adata.var, source_label)

    obs = pd.DataFrame(index=adata.obs_names)
    if sample_key:
        obs["sample"], sample_warnings = sample_names(columns["sample"], sample_key, source_label)
        warnings += sample_warnings
    else:
        obs["sample"] = dataset
    obs["cell_type"] = "unlabelled"
    if cell_type_key:
        labels = columns["cell_type"]
        obs["cell_type"] = np.where(labels.isna(), "unlabelled", labels.astype(str))
        if labels.isna().any():
            warnings.append(
                f"{int(labels.isna().sum())} cells without a {cell_type_key!r} label are 'unlabelled'"
            )
    obs["condition"] = condition
    if condition_key:
        values = columns["condition"]
        obs["condition"] = np.where(values.isna(), condition, values.astype(str))
    for column in adata.obs.columns:
        name = f"orig_{column}" if column in CONVENTION_OBS else str(column)
        values = adata.obs[column]
        # h5ad cannot store object columns mixing strings and NaN; nullable strings it can.
        obs[name] = (values.astype("string") if values.dtype == object else values).values
    cell_names, barcode_warnings = make_unique(adata.obs_names)
    obs.index = pd.Index(cell_names, dtype=str)

    if scale == "counts":
        linear.data = np.rint(linear.data)
    elif scale == "log-normalised":
        linear.data = np.expm1(linear.data)
    linear.eliminate_zeros()
    warnings += _scale_warning(scale, linear, counts)
    linear, symbols, duplicate_warnings = merge_duplicate_genes(linear, symbols)
    warnings += duplicate_warnings + barcode_warnings

    if scale == "log-normalised":
        X = linear.copy()
        X.data = np.log1p(X.data)
        X = sp.csr_matrix(X, dtype=np.float32)
    else:
        X = log_normalise(linear)
    out = ad.AnnData(X=X, obs=obs, var=pd.DataFrame(index=pd.Index(symbols, dtype=str)))
    if scale == "counts":
        out.layers["counts"] = sp.csr_matrix(linear, dtype=np.float32)
    add_qc_metrics(out)
    coordinates, embedding_source = _embedding(adata, out, embedding, source_label, random_state)
    out.obsm["X_embedding"] = coordinates
    provenance = {
        k: str((provenance or {}).get(k, ""))
        for k in ("publication", "accession", "licence", "url", "sha256")
    }
    out.uns["seedsoil"] = {
        "dataset": dataset,
        "source": source_label,
        "format": fmt,
        "species": species,
        "gene_id": gene_id,
        "counts_source": counts,
        "input_scale": scale,
        "provenance": provenance,
        "warnings": warnings,
        "qc": {},
        "embedding": embedding_source,
        "version": __version__,
    }
    return out
