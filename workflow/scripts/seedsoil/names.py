"""Names in the AnnData convention: gene symbols from any identifiers, duplicated genes,
unique barcodes, folder-safe sample names, and the convention's ``obs`` columns.
"""

from __future__ import annotations

import re

import numpy as np
import pandas as pd
import scipy.sparse as sp

from seedsoil.errors import InputError
from seedsoil.genes import (
    ensembl_to_symbol,
    guess_species,
    looks_like_ensembl,
    resolve_aliases,
    symbol_changes_text,
)

#: Names that already exist in results/{dataset}/ and so cannot be sample folders.
RESERVED_SAMPLE_NAMES = frozenset({"ingested.h5ad", "samples.tsv"})
#: Longest sample name accepted: a folder name is at most 255 bytes on common file systems, and
#: the workflow adds prefixes and suffixes to names derived from it (``.report.html.XXXX.tmp``).
MAX_SAMPLE_NAME_LENGTH = 100
#: obs columns the convention defines; input columns of these names are kept as ``orig_<name>``.
CONVENTION_OBS = (
    "sample", "cell_type", "condition", "n_counts", "n_genes", "mito_fraction", "qc_pass", "qc_reason",
)  # fmt: skip
_UNSAFE_CHARACTERS = re.compile(r"[^A-Za-z0-9._+-]+")


# ---------------------------------------------------------------- genes


def _ensembl_species(ids) -> str | None:
    prefixes = pd.Series([str(i)[:7] for i in ids])
    mouse = prefixes.eq("ENSMUSG").mean()
    human = prefixes.str.match(r"ENSG\d").mean()
    return "mouse" if mouse > 0.5 else "human" if human > 0.5 else None


#: Least fraction of declared Ensembl gene ids that must map to GENCODE v44. A gene keeps its
#: ENSG number across Ensembl releases (retired genes are a few percent), so human ids of any
#: release map mostly; below half, the ids are not human gene ids of a usable annotation.
MIN_ENSEMBL_MAPPED = 0.5


def _refuse_unmapped_ensembl(ids: np.ndarray, unmapped: np.ndarray, source_label: str) -> None:
    """:class:`InputError` when fewer than :data:`MIN_ENSEMBL_MAPPED` of ``ids`` (version
    suffixes stripped) have a GENCODE v44 gene, with examples and the likely cause."""
    mapped = 1 - unmapped.mean() if ids.size else 0.0
    if mapped >= MIN_ENSEMBL_MAPPED:
        return
    missing = ids[unmapped]
    prefixes = pd.Series([re.sub(r"\d.*$", "", str(i)) for i in missing]).value_counts()
    if prefixes.index[0] != "ENSG":
        cause = (
            f"most unmapped ids start with {prefixes.index[0]}, not ENSG: they are another "
            "species' ids (only human Ensembl ids can be mapped; give such data gene symbols)"
        )
    else:
        cause = (
            "they are ENSG ids absent from GENCODE v44: an annotation release far from v44, "
            "made-up or shifted ids, or ids that are not gene ids (version suffixes such as "
            "'.12' are already ignored)"
        )
    raise InputError(
        f"{source_label}: gene_id is 'ensembl' but only {int((~unmapped).sum())} of {ids.size} "
        f"ids ({mapped:.1%}) map to a GENCODE v44 human gene (unmapped e.g. "
        f"{', '.join(map(str, missing[:5]))}). Likely cause: {cause}. No signature gene would "
        "be found: give human Ensembl gene ids, or gene symbols with gene_id symbol."
    )


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
            elif np.mean([n.upper().startswith("ENS") for n in names]) >= 0.5:
                raise InputError(
                    f"{source_label}: gene_id is 'ensembl' but the identifiers (e.g. {examples}) "
                    "are not Ensembl gene ids: a gene id is ENSG (or another species' ENS…G) and "
                    "11 digits, optionally with a version suffix '.N'. Remove other suffixes "
                    "(such as '_PAR_Y'), or map transcript (ENST) or protein (ENSP) ids to genes."
                )
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
        _refuse_unmapped_ensembl(stripped, unmapped, source_label)
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
    if species == "human":
        symbols, renamed = current_symbols(symbols)
        warnings += renamed
    return symbols, warnings


def current_symbols(symbols) -> tuple[np.ndarray, list[str]]:
    """Outdated human symbols replaced by their current HGNC symbol
    (:func:`seedsoil.genes.resolve_aliases`, the table the signatures use, so IL8 in the data
    meets CXCL8 in a signature), and a warning naming every renaming."""
    resolved, changes = resolve_aliases(symbols)
    if not changes:
        return np.asarray(symbols, dtype=object), []
    return np.asarray(resolved, dtype=object), [
        f"{len(changes)} outdated gene symbols renamed to current HGNC symbols "
        f"(resources/genes/aliases.tsv; the input name is kept in var['input_name']): "
        f"{symbol_changes_text(changes)}"
    ]


def gene_var(input_genes, symbols, unique_symbols, var: pd.DataFrame | None = None) -> pd.DataFrame:
    """The harmonised ``var``: index ``unique_symbols``; ``input_name``, the input's identifier
    of the gene (of its first column when duplicates were summed); ``gene_ids``, the Ensembl id
    when the input names one (Ensembl input, or a 10x ``var["gene_ids"]`` column), as scanpy's
    readers store it."""
    per_symbol = pd.Series(np.asarray(input_genes, dtype=str)).groupby(
        np.asarray(symbols, dtype=str), sort=False
    )
    out = pd.DataFrame(index=pd.Index(unique_symbols, dtype=str))
    out["input_name"] = per_symbol.first().reindex(out.index).to_numpy(dtype=str)
    ids = None
    if var is not None and "gene_ids" in var and len(var) == len(symbols):
        ids = pd.Series(var["gene_ids"].astype(str).to_numpy())
    elif looks_like_ensembl(out["input_name"], min_fraction=0.5):
        ids = pd.Series(np.asarray(input_genes, dtype=str))
    if ids is not None:
        stripped = ids.str.replace(r"\.\d+$", "", regex=True)
        first = stripped.groupby(np.asarray(symbols, dtype=str), sort=False).first()
        out["gene_ids"] = first.reindex(out.index).to_numpy(dtype=str)
    return out


def duplicate_merge(symbols) -> tuple[sp.csr_matrix | None, np.ndarray, list[str]]:
    """The genes × unique-symbols 0/1 matrix that sums the columns of duplicated symbols (kept
    at the first occurrence's position), the unique symbols and a warning; ``None`` and no
    warning when every symbol is unique.

    Apply it on a linear scale (counts, TPM, or expm1 of log-normalised values), where a gene's
    total is the sum of its parts.
    """
    codes, unique = pd.factorize(pd.Index(symbols, dtype=object))
    if unique.size == len(symbols):
        return None, np.asarray(symbols, dtype=object), []
    merge = sp.csr_matrix(
        (np.ones(len(codes)), (np.arange(len(codes)), codes)), shape=(len(codes), unique.size)
    )
    counts = pd.Series(symbols).value_counts()
    duplicated = counts[counts > 1]
    warning = (
        f"{duplicated.size} gene symbols occur more than once ({int(duplicated.sum())} columns, "
        f"e.g. {', '.join(duplicated.index[:3])}); their values were summed"
    )
    return merge, np.asarray(unique, dtype=object), [warning]


# ---------------------------------------------------------------- cells


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
    """``value`` as a folder name: runs of characters other than ASCII letters, digits and
    ``._+-`` (spaces, non-ASCII letters, punctuation) become ``_``. Raises ``ValueError`` for
    names that cannot be made safe: empty, starting with ``.``, containing ``/`` or ``\\``,
    longer than :data:`MAX_SAMPLE_NAME_LENGTH` characters, or reserved (``ingested.h5ad``,
    ``samples.tsv``)."""
    if not value.strip() or value.startswith(".") or "/" in value or "\\" in value:
        raise ValueError(value)
    safe = _UNSAFE_CHARACTERS.sub("_", value.strip())
    if safe in RESERVED_SAMPLE_NAMES or len(safe) > MAX_SAMPLE_NAME_LENGTH:
        raise ValueError(value)
    return safe


def _column(obs: pd.DataFrame, key: str, role: str, source_label: str) -> pd.Series:
    if key not in obs.columns:
        raise InputError(
            f"{source_label}: {role} column {key!r} not found; available obs columns: "
            f"{', '.join(map(str, obs.columns)) or '(none)'}. Fix the sheet's {role}_column."
        )
    return obs[key]


def _shown(value: str) -> str:
    return repr(value) if len(value) <= 60 else f"{value[:40]!r}… ({len(value)} characters)"


def sample_names(values: pd.Series, key: str, source_label: str) -> tuple[np.ndarray, list[str]]:
    """Safe sample names for every cell (:func:`safe_sample_name`) and warnings naming every
    name that was changed. One :class:`InputError` lists every name that cannot be made safe,
    and names that would become the same folder."""
    missing = values.isna().to_numpy()
    if missing.any():
        row = int(np.flatnonzero(missing)[0])
        raise InputError(
            f"{source_label}: sample column {key!r} is empty for {int(missing.sum())} cells (first: "
            f"row {row + 1}, cell {values.index[row]!r}); every cell needs a sample."
        )
    text = values.astype(str).to_numpy()
    renamed, unsafe, warnings = {}, [], []
    for value in pd.unique(text):
        try:
            renamed[value] = safe_sample_name(value)
        except ValueError:
            row = int(np.flatnonzero(text == value)[0])
            unsafe.append(f"{_shown(value)} (first at row {row + 1}, cell {values.index[row]!r})")
    if unsafe:
        raise InputError(
            f"{source_label}: sample column {key!r} has {len(unsafe)} name(s) that cannot be "
            f"folder names: {'; '.join(unsafe[:10])}. Sample names become folders under "
            "results/ and must not be empty, start with '.', contain '/' or '\\', be longer "
            f"than {MAX_SAMPLE_NAME_LENGTH} characters, or be 'ingested.h5ad'/'samples.tsv' "
            "(spaces and other characters become '_'). Rename the samples in the file, or "
            "point sample_column at a column of short ids."
        )
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


def convention_obs(
    obs_in: pd.DataFrame,
    *,
    dataset: str,
    sample_key: str | None,
    cell_type_key: str | None,
    condition_key: str | None,
    condition: str,
    source_label: str,
) -> tuple[pd.DataFrame, list[str]]:
    """The convention's ``obs`` (without QC metrics) built from the input's, and warnings.

    Sample names made folder-safe (:func:`sample_names`), missing labels ``"unlabelled"`` (cell
    type) and ``condition`` (condition), input columns kept (those named like convention columns
    as ``orig_<name>``), barcodes made unique (:func:`make_unique`).
    """
    keys = {"sample": sample_key, "cell_type": cell_type_key, "condition": condition_key}
    columns = {role: _column(obs_in, key, role, source_label) for role, key in keys.items() if key}
    if sample_key is None:
        try:
            safe_sample_name(dataset)
        except ValueError:
            raise InputError(f"dataset id {dataset!r} is not a safe folder name.") from None
    warnings = []
    obs = pd.DataFrame(index=obs_in.index)
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
    for column in obs_in.columns:
        name = f"orig_{column}" if column in CONVENTION_OBS else str(column)
        values = obs_in[column]
        # h5ad cannot store object columns mixing strings and NaN; nullable strings it can.
        obs[name] = (values.astype("string") if values.dtype == object else values).values
    cell_names, barcode_warnings = make_unique(obs_in.index)
    obs.index = pd.Index(cell_names, dtype=str)
    return obs, warnings + barcode_warnings


#: Condition of a sample whose cells carry several conditions: it joins no condition comparison.
MIXED_CONDITION = "mixed"


def sample_condition(values) -> str:
    """The condition of a sample from its cells' conditions: the one value they share, else
    :data:`MIXED_CONDITION`. A sample is the replicate of the cohort tests, so a sample spanning
    conditions (sample = patient, condition = tissue) cannot stand for any one of them; making
    each sample one condition (a sample column combining patient and tissue) is the user's fix."""
    distinct = sorted(set(pd.Series(values).astype(str)))
    return distinct[0] if len(distinct) == 1 else MIXED_CONDITION
