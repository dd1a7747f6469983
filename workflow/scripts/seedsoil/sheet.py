"""The dataset sheet: one row per dataset, validated before any work starts."""

from __future__ import annotations

import os
from pathlib import Path

import jsonschema
import pandas as pd
import yaml

from .datasets import get_builtin
from .errors import InputError


def source_kind(source: str) -> str:
    """Classify a sheet ``source``: ``"url"`` (http/https), ``"builtin"`` (``builtin:NAME``) or ``"local"``."""
    if source.startswith(("http://", "https://")):
        return "url"
    if source.startswith("builtin:"):
        return "builtin"
    return "local"


def load_sheet(path: str | os.PathLike, schema: str | os.PathLike) -> pd.DataFrame:
    """Read and validate the dataset sheet; return it indexed by ``id`` with defaults filled in.

    Every problem is an :class:`InputError` naming the file, the line and the column:
    unknown or missing columns, values the schema refuses, duplicate ids and local sources
    that do not exist. Line numbers count the header as line 1.
    """
    path = Path(path)
    if not path.is_file():
        raise InputError(
            f"{path}: dataset sheet not found; point `datasets:` in the config at a TSV file."
        )
    with open(schema) as handle:
        row_schema = yaml.safe_load(handle)
    try:
        sheet = pd.read_csv(path, sep="\t", dtype=str, keep_default_na=False, comment="#")
    except (pd.errors.ParserError, UnicodeDecodeError) as error:
        raise InputError(f"{path}: not a readable tab-separated sheet ({error}).") from error

    known = set(row_schema["properties"])
    unknown = [column for column in sheet.columns if column not in known]
    if unknown:
        raise InputError(
            f"{path}: unknown column(s) {', '.join(unknown)}; the sheet's columns are "
            f"{', '.join(row_schema['properties'])} (see config/README.md)."
        )
    missing = [column for column in row_schema["required"] if column not in sheet.columns]
    if missing:
        raise InputError(f"{path}: required column(s) {', '.join(missing)} missing.")

    for column, spec in row_schema["properties"].items():
        if column not in sheet.columns:
            sheet[column] = spec.get("default", "")
        sheet[column] = sheet[column].str.strip()
        if "default" in spec:
            sheet.loc[sheet[column] == "", column] = spec["default"]

    validator = jsonschema.Draft202012Validator(row_schema)
    for position, row in enumerate(sheet.to_dict("records")):
        line = position + 2
        for error in validator.iter_errors(row):
            column = error.path[0] if error.path else "?"
            raise InputError(
                f"{path}, line {line}, column {column!r}: {error.message}. "
                f"Expected: {row_schema['properties'].get(column, {}).get('description', 'see schema')}"
            )

    duplicated = sheet["id"][sheet["id"].duplicated()].unique().tolist()
    if duplicated:
        raise InputError(
            f"{path}: duplicate dataset id(s) {', '.join(duplicated)}; every id must be unique."
        )

    for position, row in enumerate(sheet.to_dict("records")):
        where = f"{path}, line {position + 2}, column 'source'"
        kind = source_kind(row["source"])
        if kind == "local" and not Path(row["source"]).exists():
            raise InputError(
                f"{where}: {row['source']!r} does not exist (local paths are relative to the "
                "working directory; URLs need http:// or https://; built-in datasets are written "
                "builtin:NAME)."
            )
        if kind == "builtin":
            try:
                get_builtin(row["source"].removeprefix("builtin:"))
            except InputError as error:
                raise InputError(f"{where}: {error}") from None
        if kind == "url" and row["format"] == "mtx":
            raise InputError(
                f"{where}: a 10x matrix directory cannot be downloaded from one URL; download and "
                "unpack it, then give its local path (or use format 10x_h5 / h5ad)."
            )
    return sheet.set_index("id", drop=False)
