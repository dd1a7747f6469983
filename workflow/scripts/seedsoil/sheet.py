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

    Raises one :class:`InputError` listing every problem (:func:`sheet_problems`).
    """
    sheet, problems = sheet_problems(path, schema)
    if problems:
        raise InputError("\n".join(problems))
    return sheet


def sheet_problems(
    path: str | os.PathLike, schema: str | os.PathLike
) -> tuple[pd.DataFrame | None, list[str]]:
    """The dataset sheet indexed by ``id`` with defaults filled in, and every problem found.

    Each problem names the file, the line and the column: a missing or unreadable file, a
    header without rows, unknown or missing columns, values the schema refuses, duplicate ids
    and local sources that do not exist. Line numbers count the header as line 1. The sheet
    is None when its columns cannot be read.
    """
    path = Path(path)
    if not path.is_file():
        return None, [
            f"{path}: dataset sheet not found; point `datasets:` in the config at a TSV file."
        ]
    with open(schema) as handle:
        row_schema = yaml.safe_load(handle)
    try:
        sheet = pd.read_csv(path, sep="\t", dtype=str, keep_default_na=False, comment="#")
    except pd.errors.EmptyDataError:
        return None, [
            f"{path}: the dataset sheet is empty; it needs a header and one row per dataset."
        ]
    except (pd.errors.ParserError, UnicodeDecodeError) as error:
        return None, [f"{path}: not a readable tab-separated sheet ({error})."]

    known = set(row_schema["properties"])
    problems = []
    unknown = [column for column in sheet.columns if column not in known]
    if unknown:
        problems.append(
            f"{path}: unknown column(s) {', '.join(unknown)}; the sheet's columns are "
            f"{', '.join(row_schema['properties'])} (see config/README.md)."
        )
    missing = [column for column in row_schema["required"] if column not in sheet.columns]
    if missing:
        problems.append(f"{path}: required column(s) {', '.join(missing)} missing.")
    if problems:
        return None, problems
    if sheet.empty:
        return None, [
            f"{path}: the sheet has a header but no dataset rows; add one row per dataset "
            "(see config/README.md)."
        ]

    for column, spec in row_schema["properties"].items():
        if column not in sheet.columns:
            sheet[column] = spec.get("default", "")
        sheet[column] = sheet[column].str.strip()
        if "default" in spec:
            sheet.loc[sheet[column] == "", column] = spec["default"]

    validator = jsonschema.Draft202012Validator(row_schema)
    invalid_lines = set()
    for position, row in enumerate(sheet.to_dict("records")):
        line = position + 2
        for error in validator.iter_errors(row):
            column = error.path[0] if error.path else "?"
            invalid_lines.add(line)
            problems.append(
                f"{path}, line {line}, column {column!r}: {error.message}. "
                f"Expected: {row_schema['properties'].get(column, {}).get('description', 'see schema')}"
            )

    duplicated = sheet["id"][sheet["id"].duplicated()].unique().tolist()
    if duplicated:
        problems.append(
            f"{path}: duplicate dataset id(s) {', '.join(duplicated)}; every id must be unique."
        )

    for position, row in enumerate(sheet.to_dict("records")):
        if position + 2 not in invalid_lines:
            problems += _source_problems(row, f"{path}, line {position + 2}, column 'source'")
    return sheet.set_index("id", drop=False), problems


def _source_problems(row: dict, where: str) -> list[str]:
    """Problems with one schema-valid row's ``source``: a missing local path, an unknown
    built-in name, a URL for a 10x folder."""
    kind = source_kind(row["source"])
    if kind == "local" and not Path(row["source"]).exists():
        return [
            f"{where}: {row['source']!r} does not exist (local paths are relative to the "
            "working directory; URLs need http:// or https://; built-in datasets are written "
            "builtin:NAME)."
        ]
    if kind == "builtin":
        try:
            get_builtin(row["source"].removeprefix("builtin:"))
        except InputError as error:
            return [f"{where}: {error}"]
    if kind == "url" and row["format"] == "mtx":
        return [
            f"{where}: a 10x matrix directory cannot be downloaded from one URL; download and "
            "unpack it, then give its local path (or use format 10x_h5 / h5ad)."
        ]
    return []
