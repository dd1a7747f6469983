"""Everything a run reads besides the data, checked before any job starts.

:func:`validate_run` loads the dataset sheet, every signature source (YAML files and folders,
GMT files), the communication pairs table and the LIANA resource name, and raises one :class:`InputError` that lists
every problem found, so a user fixes them all at once instead of one per run. The Snakefile
calls it while parsing (``workflow/rules/common.smk``); this module never imports Snakemake.
"""

from __future__ import annotations

import contextlib
import logging
import os
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pandas as pd

from .errors import InputError
from .sheet import sheet_problems

LIBRARY_SUFFIXES = (".yaml", ".yml")
GMT_SUFFIXES = (".gmt",)


@dataclass(frozen=True)
class RunInputs:
    """What a validated config names, as the workflow's rules use it."""

    #: The dataset sheet indexed by ``id``, defaults filled in (:func:`seedsoil.sheet.load_sheet`).
    sheet: pd.DataFrame
    #: ``signatures.library`` entries as paths that exist (files or folders).
    library_paths: list[str]
    #: ``signatures.gmt`` entries as paths that exist.
    gmt_paths: list[str]
    #: Every signature file read (YAML and GMT): inputs of the scoring rules.
    signature_files: list[str]


def configured_path(path: str | os.PathLike, workflow_dir: str | os.PathLike) -> Path | None:
    """A path written in the config: relative to the working directory if it exists there,
    else relative to ``workflow_dir`` (files shipped with the workflow), else None."""
    for candidate in (Path(path), Path(workflow_dir) / path):
        if candidate.exists():
            return candidate
    return None


def _files(path: Path, suffixes: tuple[str, ...]) -> list[Path]:
    """``path`` itself, or the files of folder ``path`` ending in one of ``suffixes`` (sorted)."""
    if path.is_dir():
        return sorted(p for p in path.iterdir() if p.suffix in suffixes)
    return [path]


@contextlib.contextmanager
def _quiet_package_warnings() -> Iterator[None]:
    # Alias and unknown-symbol warnings belong in the scoring jobs' logs, not in every parse.
    logger = logging.getLogger("seedsoil")
    level = logger.level
    logger.setLevel(logging.ERROR)
    try:
        yield
    finally:
        logger.setLevel(level)


def signature_problems(
    files: list[tuple[Path, str]],
) -> list[str]:
    """Problems of the signature files ``(path, "yaml" | "gmt")``: each file's own (schema,
    unknown genes, malformed GMT lines) and names defined in two files."""
    from .signatures import read_gmt, read_yaml

    problems, defined_in = [], {}
    with _quiet_package_warnings():
        for path, kind in files:
            try:
                library = (read_yaml if kind == "yaml" else read_gmt)(path)
            except InputError as error:
                problems.append(str(error))
                continue
            except (OSError, UnicodeDecodeError) as error:
                problems.append(f"{path}: cannot be read ({error}).")
                continue
            for name in library:
                if name in defined_in:
                    problems.append(
                        f"{path}: signature {name!r} is already defined in {defined_in[name]}; "
                        "rename one of them."
                    )
                defined_in.setdefault(name, path)
    if files and not defined_in and not problems:
        problems.append(
            "no signatures found in " + ", ".join(str(p) for p, _ in files) + "; check config "
            "signatures.library and signatures.gmt."
        )
    return problems


def validate_run(
    config: dict, workflow_dir: str | os.PathLike, *, pairs: str | os.PathLike | None = None
) -> RunInputs:
    """Check everything ``config`` names before any job runs; return it resolved.

    Checked: the dataset sheet (:func:`seedsoil.sheet.sheet_problems`: columns, values, ids,
    local sources, built-in names, at least one row), every ``signatures.library`` and
    ``signatures.gmt`` entry (exists, relative to the working directory or the workflow
    folder; each file reads and validates; no name defined twice), the communication
    ``pairs`` table (:func:`seedsoil.interpret.communication.load_pairs`) and
    ``communication.resource`` (a resource LIANA ships, or null;
    :func:`seedsoil.interpret.resource.resource_problem`). A path that exists
    nowhere is reported as the user wrote it. Raises one :class:`InputError` listing every
    problem.
    """
    workflow_dir = Path(workflow_dir)
    schema = workflow_dir / "workflow" / "schemas" / "datasets.schema.yaml"
    sheet, problems = sheet_problems(config["datasets"], schema)

    signatures = config.get("signatures", {})
    resolved: dict[str, list[Path]] = {"library": [], "gmt": []}
    files: list[tuple[Path, str]] = []
    for key, kind, suffixes in (
        ("library", "yaml", LIBRARY_SUFFIXES),
        ("gmt", "gmt", GMT_SUFFIXES),
    ):
        for entry in signatures.get(key, []):
            path = configured_path(entry, workflow_dir)
            if path is None:
                problems.append(
                    f"{entry}: signature {'file or folder' if key == 'library' else 'GMT file'} "
                    f"not found (looked relative to the working directory {Path.cwd()} and to "
                    f"the workflow folder); fix config signatures.{key}."
                )
                continue
            resolved[key].append(path)
            files += [(file, kind) for file in _files(path, suffixes)]
    problems += signature_problems(files)

    if pairs is not None:
        from .interpret.communication import load_pairs

        try:
            load_pairs(pairs)
        except InputError as error:
            problems.append(str(error))

    communication = config.get("communication") or {}
    if communication.get("resource") is not None:
        from .interpret.resource import resource_problem

        problem = resource_problem(communication["resource"])
        if problem:
            problems.append(problem)

    if problems:
        raise InputError(
            f"{len(problems)} problem(s) in the config, sheet or signature files; nothing was run. "
            "Fix them and run again:\n  - " + "\n  - ".join(problems)
        )
    return RunInputs(
        sheet=sheet,
        library_paths=[str(p) for p in resolved["library"]],
        gmt_paths=[str(p) for p in resolved["gmt"]],
        signature_files=[str(p) for p, _ in files],
    )


def report_gaps(dataset_ids, results_dir: str | os.PathLike = "results") -> str | None:
    """Why ``snakemake --report`` would leave samples out, or None.

    The report lists the outputs of the datasets the config's sheet names; a dataset without
    ``results/<id>/samples.tsv`` (its ingest checkpoint) has no sample in it, silently. That
    happens when the run was made with another ``--configfile`` (the report then reads the
    default config) or has not finished: the message names the missing datasets and, when
    ``results_dir`` holds datasets the sheet does not name, those too.
    """
    results_dir = Path(results_dir)
    dataset_ids = list(dataset_ids)
    missing = [d for d in dataset_ids if not (results_dir / d / "samples.tsv").is_file()]
    if not missing:
        return None
    message = (
        f"no results for {len(missing)} of the {len(dataset_ids)} dataset(s) of this config's "
        f"sheet ({', '.join(missing)}: {results_dir}/<id>/samples.tsv missing), so the report "
        "leaves out their samples."
    )
    others = sorted(
        p.parent.name for p in results_dir.glob("*/samples.tsv") if p.parent.name not in dataset_ids
    )
    if others:
        return message + (
            f" {results_dir}/ holds dataset(s) this config does not name ({', '.join(others)}): "
            "pass the run's config with --configfile."
        )
    return message + " Run the workflow first, or pass the run's config with --configfile."
