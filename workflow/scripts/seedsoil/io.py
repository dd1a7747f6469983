"""Read single-cell matrices in every supported format.

``read_matrix`` turns a file into a cells × genes AnnData as it is;
:func:`seedsoil.harmonise.harmonise` then applies the AnnData convention.
"""

from __future__ import annotations

import gzip
import os
import re
from pathlib import Path

import anndata as ad
import numpy as np
import pandas as pd
import scipy.io
import scipy.sparse as sp

from seedsoil.errors import InputError
from seedsoil.genes import ENSEMBL_ID

FORMATS = ("h5ad", "mtx", "10x_h5", "csv", "tsv")

_DNA_BARCODE = re.compile(r"^[ACGTN]{8,}([-_.]\d+)?$")
_SYMBOL = re.compile(r"^[A-Za-z][A-Za-z0-9.\-]*$")
_STEM_NUMBER = re.compile(r"^(.*?)(\d+)$")


# ---------------------------------------------------------------- label heuristics


def gene_label_fraction(labels) -> float:
    """Fraction of ``labels`` that look like gene identifiers rather than cell names.

    A label counts as a gene if it is an Ensembl ID, or symbol-like (starts with a letter,
    only letters, digits, ``.`` and ``-``, at most 20 characters) and neither a DNA barcode
    (``AAACCTGAGAAGGCCT-1``) nor one of a run of ``<stem><number>`` names sharing a stem used
    by at least half of the labels (``Cell_1``, ``Cell_2`` …).
    """
    labels = [str(x) for x in labels]
    if not labels:
        return 0.0
    stems = pd.Series([m.group(1) if (m := _STEM_NUMBER.match(x)) else None for x in labels])
    top_stem_share = (
        stems.value_counts(dropna=True).max() / len(labels) if stems.notna().any() else 0
    )
    numbered_run = top_stem_share >= 0.5
    gene_like = [
        bool(ENSEMBL_ID.match(label))
        or (
            bool(_SYMBOL.match(label))
            and len(label) <= 20
            and not _DNA_BARCODE.match(label)
            and not (numbered_run and stem is not None)
        )
        for label, stem in zip(labels, stems, strict=True)
    ]
    return float(np.mean(gene_like))


# ---------------------------------------------------------------- readers


def _require(path: Path) -> Path:
    if not path.exists():
        raise InputError(f"input file {path} does not exist; check the source column of the sheet.")
    return path


def _read_h5ad(path: Path) -> ad.AnnData:
    if path.is_dir():
        raise InputError(
            f"{path} is a directory, not an h5ad file; set format: mtx for a 10x folder."
        )
    try:
        return ad.read_h5ad(path)
    except Exception as error:  # h5py raises OSError/KeyError/ValueError variants for bad files
        raise InputError(
            f"cannot read {path} as h5ad ({type(error).__name__}: {error}): the file is truncated "
            "or not an h5ad; re-download it (delete it so the workflow fetches it again) or fix "
            "the format column."
        ) from error


def _open_text(path: Path):
    return gzip.open(path, "rt") if path.suffix == ".gz" else open(path)


def _first_existing(folder: Path, names: list[str]) -> Path | None:
    return next((folder / n for n in names if (folder / n).exists()), None)


def _read_mtx_dir(folder: Path) -> ad.AnnData:
    """A 10x matrix folder (v2 ``genes.tsv`` or v3 ``features.tsv``; plain or gzipped)."""
    if not folder.is_dir():
        raise InputError(f"{folder} is not a directory; format mtx expects a 10x matrix folder.")
    matrix_file = _first_existing(folder, ["matrix.mtx.gz", "matrix.mtx"])
    features_file = _first_existing(
        folder, ["features.tsv.gz", "features.tsv", "genes.tsv.gz", "genes.tsv"]
    )
    barcodes_file = _first_existing(folder, ["barcodes.tsv.gz", "barcodes.tsv"])
    missing = [
        name
        for name, found in [
            ("matrix.mtx(.gz)", matrix_file),
            ("features.tsv(.gz) or genes.tsv(.gz)", features_file),
            ("barcodes.tsv(.gz)", barcodes_file),
        ]
        if found is None
    ]
    if missing:
        raise InputError(
            f"10x folder {folder} lacks {', '.join(missing)}; it holds "
            f"{sorted(p.name for p in folder.iterdir())}."
        )
    try:
        with _open_text(matrix_file) as handle:
            matrix = sp.csr_matrix(scipy.io.mmread(handle).T, dtype=np.float32)
        features = pd.read_csv(features_file, sep="\t", header=None, dtype=str)
        barcodes = pd.read_csv(barcodes_file, sep="\t", header=None, dtype=str)[0]
    except (OSError, ValueError, EOFError) as error:
        raise InputError(f"cannot read 10x folder {folder}: {error}; re-download it.") from error
    if matrix.shape != (len(barcodes), len(features)):
        raise InputError(
            f"10x folder {folder}: matrix.mtx is {matrix.shape[1]} features × {matrix.shape[0]} "
            f"cells but there are {len(features)} features and {len(barcodes)} barcodes."
        )
    names = features[1] if features.shape[1] > 1 else features[0]
    var = pd.DataFrame({"gene_ids": features[0].to_numpy()}, index=pd.Index(names, dtype=str))
    if features.shape[1] > 2:
        var["feature_types"] = features[2].to_numpy()
    adata = ad.AnnData(matrix, obs=pd.DataFrame(index=pd.Index(barcodes, dtype=str)), var=var)
    return _gene_expression_only(adata)


def _gene_expression_only(adata: ad.AnnData) -> ad.AnnData:
    # Antibody-capture and CRISPR features are not genes; scoring must not see them.
    if "feature_types" in adata.var:
        adata = adata[:, adata.var["feature_types"] == "Gene Expression"].copy()
    return adata


def _read_10x_h5(path: Path) -> ad.AnnData:
    import scanpy as sc

    try:
        adata = sc.read_10x_h5(path, gex_only=False)
    except Exception as error:
        raise InputError(
            f"cannot read {path} as a 10x h5 file ({type(error).__name__}: {error}); the file is "
            "truncated or not a Cell Ranger h5; re-download it or fix the format column."
        ) from error
    return _gene_expression_only(adata)


def _read_labelled_frame(path: Path, sep: str) -> pd.DataFrame:
    """A delimited matrix with its first row and first column as labels, exactly as written.

    pandas renames repeated header labels (``KRT8``, ``KRT8.1``); reading the header row on its
    own keeps them, so duplicated genes are summed by harmonisation, whichever axis they are on.
    A header one field shorter than the rows (R's ``write.csv``) labels the data columns only.
    """
    header = pd.read_csv(
        path, sep=sep, header=None, nrows=1, dtype=str, keep_default_na=False
    ).iloc[0]
    frame = pd.read_csv(path, sep=sep, header=None, skiprows=1, index_col=0)
    labels = header.tolist()
    if len(labels) == frame.shape[1] + 1:
        labels = labels[1:]
    if len(labels) != frame.shape[1]:
        raise InputError(
            f"{path}: the header has {len(header)} fields but the rows have {frame.shape[1] + 1}; "
            "a delimited matrix needs one label per column in the first row."
        )
    frame.columns = pd.Index(labels, dtype=str)
    frame.index = frame.index.astype(str)
    return frame


def _read_delimited(path: Path, sep: str, transpose: bool | None) -> ad.AnnData:
    try:
        frame = _read_labelled_frame(path, sep)
    except (OSError, ValueError, EOFError, pd.errors.ParserError) as error:
        raise InputError(f"cannot read {path} as a delimited matrix: {error}") from error
    if frame.shape[0] == 0 or frame.shape[1] == 0:
        raise InputError(
            f"{path} holds no matrix (shape {frame.shape}); check the separator/format."
        )
    non_numeric = [
        label
        for label, dtype in zip(frame.columns, frame.dtypes, strict=True)
        if not pd.api.types.is_numeric_dtype(dtype)
    ]
    if non_numeric:
        raise InputError(
            f"{path}: column(s) {non_numeric[:5]} are not numeric; a delimited matrix needs "
            "labels in the first column and the first row and numbers everywhere else."
        )
    if transpose is None:
        row_genes = gene_label_fraction(frame.index)
        col_genes = gene_label_fraction(frame.columns)
        if abs(row_genes - col_genes) < 0.5:
            raise InputError(
                f"{path}: cannot tell whether rows or columns are genes ({row_genes:.0%} of row "
                f"labels and {col_genes:.0%} of column labels look like gene names); set the "
                "sheet's transpose column (true = rows are genes)."
            )
        transpose = row_genes > col_genes
    if transpose:
        frame = frame.T
    matrix = sp.csr_matrix(frame.to_numpy(dtype=np.float32))
    obs = pd.DataFrame(index=frame.index.astype(str))
    var = pd.DataFrame(index=frame.columns.astype(str))
    return ad.AnnData(matrix, obs=obs, var=var)


def read_matrix(path: str | os.PathLike, fmt: str, *, transpose: bool | None = None) -> ad.AnnData:
    """Read ``path`` in format ``fmt`` into a cells × genes AnnData, unchanged otherwise.

    Formats: ``h5ad``; ``mtx`` (10x folder: ``matrix.mtx[.gz]``, ``features.tsv[.gz]`` or
    ``genes.tsv[.gz]``, ``barcodes.tsv[.gz]``; symbols become ``var_names``, IDs go to
    ``var["gene_ids"]``); ``10x_h5`` (Cell Ranger v3 h5); ``csv``/``tsv`` (optionally gzipped;
    first column and first row are labels). 10x inputs keep only "Gene Expression" features.
    For delimited files ``transpose=None`` detects the orientation from which axis' labels
    look like genes (:func:`gene_label_fraction`); ``True`` means rows are genes.
    """
    path = Path(path)
    if fmt not in FORMATS:
        raise InputError(f"unknown format {fmt!r} for {path}; known formats: {', '.join(FORMATS)}.")
    _require(path)
    if fmt == "h5ad":
        return _read_h5ad(path)
    if fmt == "mtx":
        return _read_mtx_dir(path)
    if fmt == "10x_h5":
        return _read_10x_h5(path)
    return _read_delimited(path, "," if fmt == "csv" else "\t", transpose)
