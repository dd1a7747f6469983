"""The signature library: YAML format and validation, GMT in/out, species mapping, coverage.

A library is a ``dict[name, Signature]`` loaded from YAML files (format and field meanings in
``workflow/schemas/signatures.schema.yaml``) and optionally GMT files. Gene symbols are human
HGNC symbols; :func:`to_species` maps them to mouse through the shipped ortholog table.

GMT convention (both directions): an undirected signature is one set ``NAME``; a directed one
(with down genes) is two sets ``NAME_UP`` and ``NAME_DOWN``. On reading, a ``X_UP``/``X_DOWN``
pair becomes one directed signature ``X``; any other set is undirected (its genes are up genes).
GMT carries no weights, references or themes: GMT sets get theme ``custom``.

Coverage: a signature is scored on a dataset when at least ``min_coverage`` (default
:data:`DEFAULT_MIN_COVERAGE` = 0.5) of its genes are present, or when its core rule holds
(:func:`core_rule_holds`: enough of its declared core marker groups are measured to identify
the programme, so targeted and partial panels still score cell types and CTC identity);
otherwise it is skipped with a warning, never scored as zero.

Command line: ``python -m seedsoil.signatures --readme resources/signatures`` regenerates the
library README; ``--gmt out.gmt`` exports the library.
"""

from __future__ import annotations

import argparse
import functools
import logging
import math
import os
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field, replace
from pathlib import Path

import pandas as pd
import yaml

from seedsoil import genes
from seedsoil.errors import InputError
from seedsoil.util import atomic_path

logger = logging.getLogger(__name__)

REPO = Path(__file__).resolve().parents[3]
LIBRARY_DIR = REPO / "resources" / "signatures"
SCHEMA_PATH = REPO / "workflow" / "schemas" / "signatures.schema.yaml"
DEFAULT_MIN_COVERAGE = 0.5
#: Core marker groups that must be measured directly for the core rule (one marker never
#: identifies a cell type: dropout, ambient RNA and shared expression make it unreliable).
MIN_CORE_GROUPS = 2
COVERAGE_COLUMNS = [
    "signature",
    "theme",
    "n_genes",
    "n_present",
    "fraction",
    "missing",
    "scored",
    "reason",
    "no_ortholog",
    "core_groups",
    "core_groups_present",
    "core_genes_present",
    "alternates_present",
    "scored_by",
]

PathLike = str | os.PathLike


@dataclass(frozen=True)
class Signature:
    """One gene signature. ``up``/``down`` hold symbols of the species the library is mapped to.

    ``weights`` is empty when unweighted; ``references`` are dicts with ``citation`` and
    optional ``doi``/``pmid``; ``source`` is the file the signature came from; ``dropped``
    lists the human genes removed by :func:`to_species` for lack of a usable ortholog.
    ``core`` holds the core marker groups (each a tuple of interchangeable up genes; empty
    when none are declared, as for GMT sets) and ``alternates`` the up genes that stand in for
    missing core groups (see :func:`core_rule_holds`).
    """

    name: str
    theme: str
    description: str
    up: tuple[str, ...]
    down: tuple[str, ...] = ()
    weights: dict[str, float] = field(default_factory=dict)
    references: tuple[dict, ...] = ()
    notes: str = ""
    source: str = ""
    rationale: str = ""
    general_knowledge: str = ""
    version: str = ""
    dropped: tuple[str, ...] = ()
    core: tuple[tuple[str, ...], ...] = ()
    alternates: tuple[str, ...] = ()

    @property
    def genes(self) -> tuple[str, ...]:
        """All genes, up then down."""
        return self.up + self.down

    @property
    def directed(self) -> bool:
        """True when the signature has down genes."""
        return bool(self.down)


def core_genes(signature: Signature) -> list[str]:
    """The signature's core genes: its core groups flattened, in declaration order."""
    return [gene for group in signature.core for gene in group]


def marker_genes(signature: Signature) -> list[str]:
    """The genes that identify the signature: core genes, then alternates."""
    return core_genes(signature) + list(signature.alternates)


# ---------------------------------------------------------------- loading and validation


@functools.cache
def _schema_validator():
    import jsonschema

    with open(SCHEMA_PATH) as handle:
        schema = yaml.safe_load(handle)
    return jsonschema.Draft202012Validator(schema)


def _expand(paths: Iterable[PathLike], suffixes: tuple[str, ...]) -> list[Path]:
    """Files named in ``paths``; a folder stands for its files with one of ``suffixes``."""
    files: list[Path] = []
    for entry in paths:
        path = Path(entry)
        if path.is_dir():
            files.extend(sorted(p for p in path.iterdir() if p.suffix in suffixes))
        elif path.is_file():
            files.append(path)
        else:
            raise InputError(f"{path}: signature file or folder not found; check config signatures")
    return files


def _schema_errors(document: object, source: Path) -> list[str]:
    """Human-readable schema violations, each naming the signature it concerns."""
    messages = []
    for error in sorted(_schema_validator().iter_errors(document), key=lambda e: list(e.path)):
        where = "file"
        path = list(error.absolute_path)
        if len(path) >= 2 and path[0] == "signatures" and isinstance(path[1], int):
            entry = document["signatures"][path[1]]
            name = entry.get("name") if isinstance(entry, dict) else None
            where = f"signature {name!r}" if name else f"signature #{path[1] + 1}"
            path = path[2:]
        field_name = ".".join(str(p) for p in path) or "(top level)"
        if error.validator == "anyOf":
            text = "has no references and no general_knowledge note; give at least one"
        elif error.validator == "dependentRequired":
            field_name = "alternates"
            text = "given without core; alternates stand in for core groups, so declare core too"
        elif path == ["core"] and error.validator == "minItems":
            text = f"needs at least {MIN_CORE_GROUPS} marker groups (one marker alone does not identify a programme)"
        else:
            text = error.message
        messages.append(f"{source}: {where}: {field_name}: {text}")
    return messages


def _clean_genes(symbols: list[str], where: str, strict: bool = True) -> list[str]:
    """Resolve aliases (logged) and reject unknown symbols; ``where`` names file and signature.

    With ``strict=False`` (user GMT sets, which may hold custom or non-HGNC names) unknown
    symbols are kept with a warning: they are scored if the data has them, else reported missing.
    """
    resolved, changes = genes.resolve_aliases(symbols)
    if changes:
        logger.warning(
            "%s: outdated symbols replaced by current HGNC symbols: %s",
            where,
            genes.symbol_changes_text(changes),
        )
    unknown = [s for s in resolved if not genes.is_known_symbol(s, "human")]
    if unknown:
        hint = (
            " They look like mouse symbols: signatures use human symbols and are mapped to mouse automatically."
            if genes.guess_species(unknown) == "mouse"
            else ""
        )
        message = (
            f"{where}: unknown gene symbols {', '.join(unknown)} (not current in GENCODE v44 "
            f"nor listed in resources/genes/aliases.tsv)."
        )
        if strict:
            raise InputError(f"{message} Fix the symbols or remove them.{hint}")
        logger.warning("%s Kept as given.%s", message, hint)
    return resolved


def _make_signature(entry: Mapping, source: Path, version: str, strict: bool = True) -> Signature:
    """Build a checked Signature from one schema-valid entry (``strict``: see :func:`_clean_genes`)."""
    where = f"{source}: signature {entry['name']!r}"
    up = _clean_genes(list(entry["genes"]["up"]), where, strict)
    down = _clean_genes(list(entry["genes"].get("down", [])), where, strict)
    duplicated = sorted({g for g in up + down if (up + down).count(g) > 1})
    if duplicated:
        raise InputError(
            f"{where}: genes listed more than once (after alias resolution): {', '.join(duplicated)}"
        )
    weight_keys, _ = genes.resolve_aliases(entry.get("weights", {}))
    weights = dict(zip(weight_keys, entry.get("weights", {}).values(), strict=True))
    stray = sorted(set(weights) - set(up + down))
    if stray:
        raise InputError(
            f"{where}: weights given for genes not in the signature: {', '.join(stray)}"
        )
    core, alternates = _core_markers(entry, up, where)
    return Signature(
        name=entry["name"],
        theme=entry["theme"],
        description=" ".join(entry["description"].split()),
        up=tuple(up),
        down=tuple(down),
        weights={g: float(w) for g, w in weights.items()},
        references=tuple(dict(r) for r in entry["references"]),
        notes=" ".join(entry.get("species_notes", "").split()),
        source=str(source),
        rationale=" ".join(entry["rationale"].split()),
        general_knowledge=" ".join(entry.get("general_knowledge", "").split()),
        version=version,
        core=core,
        alternates=alternates,
    )


def _core_markers(
    entry: Mapping, up: list[str], where: str
) -> tuple[tuple[tuple[str, ...], ...], tuple[str, ...]]:
    """Core groups and alternates of a schema-valid entry, aliases resolved and checked:
    every gene must be an up gene and appear once among core genes and alternates."""
    core = tuple(tuple(genes.resolve_aliases(list(group))[0]) for group in entry.get("core", []))
    alternates = tuple(genes.resolve_aliases(list(entry.get("alternates", [])))[0])
    listed = [g for group in core for g in group] + list(alternates)
    outside = [g for g in dict.fromkeys(listed) if g not in up]
    if outside:
        raise InputError(
            f"{where}: core/alternate genes not listed in genes.up: {', '.join(outside)}; "
            "add them to genes.up or remove them from core/alternates"
        )
    repeated = sorted({g for g in listed if listed.count(g) > 1})
    if repeated:
        raise InputError(
            f"{where}: genes listed more than once across core groups and alternates: "
            f"{', '.join(repeated)}"
        )
    return core, alternates


def read_yaml(path: PathLike) -> dict[str, Signature]:
    """Signatures of one YAML library file, schema-validated and gene-checked."""
    source = Path(path)
    try:
        with open(source) as handle:
            document = yaml.safe_load(handle)
    except yaml.YAMLError as error:
        raise InputError(f"{source}: not valid YAML: {error}") from error
    problems = _schema_errors(document, source)
    if problems:
        raise InputError("invalid signature file:\n  " + "\n  ".join(problems))
    library: dict[str, Signature] = {}
    for entry in document["signatures"]:
        if entry["name"] in library:
            raise InputError(f"{source}: signature {entry['name']!r} is defined twice in this file")
        library[entry["name"]] = _make_signature(entry, source, document["version"])
    return library


def _gmt_set_names(source: Path) -> list[str]:
    """Set names in file order, rejecting sets without genes (gseapy skips them silently)."""
    names = []
    with open(source) as handle:
        for number, line in enumerate(handle, start=1):
            if not line.strip():
                continue
            fields = line.rstrip("\r\n").split("\t")
            if len(fields) < 3 or not any(f.strip() for f in fields[2:]):
                raise InputError(
                    f"{source}: line {number}: set {fields[0]!r} has no genes; a GMT line is "
                    "NAME<tab>DESCRIPTION<tab>GENE1<tab>GENE2..."
                )
            names.append(fields[0])
    return names


def read_gmt(path: PathLike) -> dict[str, Signature]:
    """Signatures of one GMT file, read with ``gseapy.read_gmt`` (module docstring: conventions)."""
    import gseapy

    source = Path(path)
    if not source.name.lower().endswith("gmt"):
        raise InputError(f"{source}: a GMT gene-set file must end in .gmt")
    if not source.is_file():
        raise InputError(f"{source}: GMT file not found; check config signatures.gmt")
    names = _gmt_set_names(source)
    repeated = sorted({n for n in names if names.count(n) > 1})
    if repeated:
        raise InputError(f"{source}: gene sets named more than once: {', '.join(repeated)}")
    sets = {
        name: [g.strip() for g in members if g.strip()]
        for name, members in gseapy.read_gmt(str(source)).items()
    }
    library: dict[str, Signature] = {}
    for name, members in sets.items():
        base, _, direction = name.rpartition("_")
        paired = direction in ("UP", "DOWN") and f"{base}_UP" in sets and f"{base}_DOWN" in sets
        if paired and direction == "DOWN":
            continue
        signature_name = base if paired else name
        entry = {
            "name": signature_name,
            "theme": "custom",
            "description": f"User gene set from {source.name}.",
            "rationale": "User-supplied gene set.",
            "genes": {"up": members, "down": sets[f"{base}_DOWN"] if paired else []},
            "references": [],
            "general_knowledge": f"user-supplied gene set from {source}",
        }
        library[signature_name] = _make_signature(entry, source, version="", strict=False)
    return library


def load_library(paths: Iterable[PathLike], gmt: Iterable[PathLike] = ()) -> dict[str, Signature]:
    """Load YAML files/folders and GMT files into one library, checking names are unique.

    Raises :class:`InputError` naming file and signature for schema violations, unknown gene
    symbols (after alias resolution), duplicated genes and names defined in two files.
    """
    library: dict[str, Signature] = {}
    readers = [(p, read_yaml) for p in _expand(paths, (".yaml", ".yml"))]
    readers += [(p, read_gmt) for p in _expand(gmt, (".gmt",))]
    for path, reader in readers:
        for name, signature in reader(path).items():
            if name in library:
                raise InputError(
                    f"{path}: signature {name!r} is already defined in {library[name].source}; "
                    "rename one of them"
                )
            library[name] = signature
    if not library:
        raise InputError("no signatures found in " + ", ".join(str(p) for p in paths))
    return library


def load_signatures(
    paths: Iterable[PathLike] | None = None, gmt: Iterable[PathLike] = (), species: str = "human"
) -> dict[str, Signature]:
    """The signature library for ``species``: the shipped library by default, plus GMT sets."""
    library = load_library([LIBRARY_DIR] if paths is None else paths, gmt)
    return to_species(library, species)


def library_version(library: Mapping[str, Signature]) -> str:
    """Version string of a library: its distinct file versions joined by "+" ("custom" for GMT-only)."""
    versions = sorted({s.version for s in library.values() if s.version})
    return "+".join(versions) if versions else "custom"


# ---------------------------------------------------------------- species and GMT export


def to_species(library: Mapping[str, Signature], species: str) -> dict[str, Signature]:
    """Map a human library to ``species`` ("human" returns it unchanged).

    Each human gene becomes the mouse gene chosen by :func:`seedsoil.genes.pick_mouse_ortholog`;
    genes without one are dropped and listed in ``Signature.dropped`` (and logged). A mouse
    gene reached twice is kept once; a gene reached from both up and down stays up only.
    """
    genes._check_species(species)
    if species == "human":
        return dict(library)
    mapped: dict[str, Signature] = {}
    for name, signature in library.items():
        orthologs = genes.human_to_mouse(signature.genes)
        choice = {h: genes.pick_mouse_ortholog(h, orthologs[h]) for h in signature.genes}
        dropped = tuple(h for h in signature.genes if choice[h] is None)
        up = tuple(dict.fromkeys(choice[h] for h in signature.up if choice[h]))
        down = tuple(
            g for g in dict.fromkeys(choice[h] for h in signature.down if choice[h]) if g not in up
        )
        weights = {choice[h]: w for h, w in signature.weights.items() if choice[h]}
        core = _mapped_groups(signature.core, choice)
        in_core = {g for group in core for g in group}
        alternates = tuple(
            g
            for g in dict.fromkeys(choice[h] for h in signature.alternates if choice[h])
            if g not in in_core
        )
        if dropped:
            logger.warning(
                "%s: %d of %d genes have no usable mouse ortholog and are dropped: %s",
                name,
                len(dropped),
                len(signature.genes),
                ", ".join(dropped),
            )
        mapped[name] = replace(
            signature,
            up=up,
            down=down,
            weights=weights,
            dropped=dropped,
            core=core,
            alternates=alternates,
        )
    return mapped


def _mapped_groups(
    groups: tuple[tuple[str, ...], ...], choice: Mapping[str, str | None]
) -> tuple[tuple[str, ...], ...]:
    """Core groups in the mapped species: genes without ortholog leave their group, a gene
    reached twice stays in its first group, and a group left empty is dropped (the species
    cannot measure it, so it cannot count against the panel)."""
    seen: set[str] = set()
    mapped = []
    for group in groups:
        members = tuple(
            g for g in dict.fromkeys(choice[h] for h in group if choice[h]) if g not in seen
        )
        seen.update(members)
        if members:
            mapped.append(members)
    return tuple(mapped)


def _gmt_description(signature: Signature) -> str:
    return re.sub(r"\s+", " ", f"seedsoil {signature.version or 'custom'} {signature.theme}")


def write_gmt(library: Mapping[str, Signature], path: PathLike) -> None:
    """Write the library as GMT: ``NAME`` for undirected, ``NAME_UP``/``NAME_DOWN`` for directed.

    Weights, references, notes, core groups and alternates are not representable in GMT and
    are not written.
    """
    lines = []
    for name, signature in library.items():
        description = _gmt_description(signature)
        parts = [(f"{name}_UP", signature.up), (f"{name}_DOWN", signature.down)]
        for set_name, members in parts if signature.directed else [(name, signature.up)]:
            lines.append("\t".join([set_name, description, *members]))
    with atomic_path(path) as tmp:
        tmp.write_text("\n".join(lines) + "\n")


# ---------------------------------------------------------------- coverage


def core_rule_holds(n_groups: int, n_groups_present: int, n_alternates_present: int) -> bool:
    """Whether a panel measures enough of a signature's core markers to identify it.

    With ``n_groups`` declared core groups, ``n_groups_present`` of them measured directly
    (at least one gene of the group present) and ``n_alternates_present`` alternates present,
    the rule holds when

    * ``n_groups_present >= MIN_CORE_GROUPS`` (2): two independent markers, as in a minimal
      flow-cytometry gate, because one marker alone is confounded by dropout, ambient RNA and
      expression shared with other types; and
    * ``n_groups_present + min(n_alternates_present, n_groups - n_groups_present)
      >= ceil(n_groups / 2)``: together with alternates standing in for missing groups (one
      each), at least half of the core is measured, so the identity is judged on most of its
      defining markers rather than on a side programme.

    A signature without core groups (or with fewer than two) never satisfies it.
    """
    if n_groups < MIN_CORE_GROUPS or n_groups_present < MIN_CORE_GROUPS:
        return False
    stand_ins = min(n_alternates_present, n_groups - n_groups_present)
    return n_groups_present + stand_ins >= math.ceil(n_groups / 2)


def coverage(
    library: Mapping[str, Signature],
    var_names: Iterable[str],
    min_coverage: float = DEFAULT_MIN_COVERAGE,
) -> pd.DataFrame:
    """Per-signature gene coverage of a dataset, and whether and why the signature is scored.

    ``fraction = n_present / n_genes`` over up and down genes. A signature is scored when at
    least one gene is present and ``fraction >= min_coverage`` (``scored_by = "coverage"``),
    else when its core rule holds (:func:`core_rule_holds`, ``scored_by = "core"``); otherwise
    ``scored`` is False, ``scored_by`` is "" and ``reason`` says why. Columns:
    :data:`COVERAGE_COLUMNS`; ``missing``, ``no_ortholog``, ``core_genes_present`` and
    ``alternates_present`` are comma-separated gene lists, ``core_groups`` counts the declared
    core groups and ``core_groups_present`` those with a gene present. Each skipped signature
    is logged at info level, with one warning line listing them all; each signature scored
    by its core at info level.
    """
    if not 0 <= min_coverage <= 1:
        raise InputError(f"signatures.min_coverage must be between 0 and 1, got {min_coverage}")
    present_names = set(map(str, var_names))
    rows = []
    for name, signature in library.items():
        present = [g for g in signature.genes if g in present_names]
        missing = [g for g in signature.genes if g not in present_names]
        n_genes = len(signature.genes)
        fraction = len(present) / n_genes if n_genes else 0.0
        core_present = [g for g in core_genes(signature) if g in present_names]
        groups_present = sum(any(g in present_names for g in grp) for grp in signature.core)
        alternates_present = [g for g in signature.alternates if g in present_names]
        by_core = core_rule_holds(len(signature.core), groups_present, len(alternates_present))
        scored_by = ""
        if present and fraction >= min_coverage:
            scored_by = "coverage"
        elif by_core:
            scored_by = "core"
        reason = ""
        if not scored_by:
            reason = (
                "no genes left after species mapping"
                if n_genes == 0
                else f"coverage {fraction:.2f} below min_coverage {min_coverage:.2f}"
            )
            if signature.core and n_genes:
                reason += (
                    f" and core rule not met ({groups_present} of {len(signature.core)} core "
                    f"groups, {len(alternates_present)} alternates present)"
                )
            logger.info(
                "signature %s not scored: %s (%d of %d genes present)",
                name,
                reason,
                len(present),
                n_genes,
            )
        elif scored_by == "core":
            logger.info(
                "signature %s scored by its core markers (%d of %d core groups present: %s) "
                "although coverage %.2f is below min_coverage %.2f",
                name,
                groups_present,
                len(signature.core),
                ", ".join(core_present + alternates_present),
                fraction,
                min_coverage,
            )
        rows.append(
            {
                "signature": name,
                "theme": signature.theme,
                "n_genes": n_genes,
                "n_present": len(present),
                "fraction": fraction,
                "missing": ",".join(missing),
                "scored": bool(scored_by),
                "reason": reason,
                "no_ortholog": ",".join(signature.dropped),
                "core_groups": len(signature.core),
                "core_groups_present": groups_present,
                "core_genes_present": ",".join(core_present),
                "alternates_present": ",".join(alternates_present),
                "scored_by": scored_by,
            }
        )
    skipped = [row["signature"] for row in rows if not row["scored"]]
    if skipped:  # one line for the terminal; each signature's reason is in the log and coverage.tsv
        logger.warning(
            "%d of %d signatures not scored (too few of their genes in the data; reasons in "
            "coverage.tsv): %s",
            len(skipped), len(rows), ", ".join(skipped),
        )  # fmt: skip
    return pd.DataFrame(rows, columns=COVERAGE_COLUMNS)


def require_some_coverage(
    coverage_df: pd.DataFrame, source_label: str, var_names: Iterable[str] | None = None
) -> None:
    """Raise :class:`InputError` when no signature is scored (coverage threshold or core rule).

    ``source_label`` names the dataset/sample in the message; with ``var_names`` the message
    says which likely cause applies (Ensembl ids declared as symbols, wrong species).
    """
    if bool(coverage_df["scored"].any()):
        return
    causes = []
    if var_names is not None:
        names = [str(n) for n in var_names]
        if genes.looks_like_ensembl(names):
            causes.append(
                "its var_names are Ensembl gene ids (e.g. "
                f"{names[0]}), not symbols: declare gene_id as Ensembl in the dataset sheet"
            )
        guessed = genes.guess_species(names)
        if guessed != "unknown":
            causes.append(
                f"its gene symbols look {guessed}: check the species in the dataset sheet"
            )
    if not causes:
        causes = [
            "var_names are Ensembl ids declared as symbols (set the gene id type in the dataset sheet)",
            "the species is wrong (mouse data declared human or the reverse)",
            "the data is a small targeted panel lacking the signatures' core markers, or "
            "signatures.min_coverage is too high",
        ]
    best = coverage_df["fraction"].max() if len(coverage_df) else 0.0
    raise InputError(
        f"{source_label}: no signature reaches the coverage threshold or its core rule "
        f"(best coverage {best:.2f}); "
        "nothing would be scored. Likely cause: " + "; or ".join(causes) + "."
    )


# ---------------------------------------------------------------- README


def _short_reference(reference: Mapping) -> str:
    """``Aceto et al. 2014`` from a citation string (linked to its DOI when given)."""
    citation = reference["citation"]
    authors, _, rest = citation.partition(" (")
    year = rest[:4] if rest[:4].isdigit() else ""
    first = authors.split(",")[0].replace(" et al.", "").strip()
    words = first.split()
    if len(words) > 1 and words[-1].isupper() and len(words[-1]) <= 3:
        first = " ".join(words[:-1])
    label = f"{first}{' et al.' if ',' in authors or 'et al' in authors else ''} {year}".strip()
    return f"[{label}](https://doi.org/{reference['doi']})" if "doi" in reference else label


def render_readme(library: Mapping[str, Signature]) -> str:
    """Markdown documentation of a library: summary table, then one section per signature."""
    out = [
        "# seedsoil signature library",
        "",
        "<!-- Generated by `python -m seedsoil.signatures --readme resources/signatures`; do not edit. -->",
        "",
        f"Version {library_version(library)}: {len(library)} signatures curated from the chapter "
        "*Cancer Metastasis: Dynamic Hetero-cellular Communications Between Cancer Cells and Host "
        "Tissues* (Saliba et al. 2023, Handbook of Cancer and Immunology) and its references.",
        "",
        "- Format: one YAML file per theme, validated against `workflow/schemas/signatures.schema.yaml`.",
        "- Genes are human HGNC symbols checked against GENCODE v44; outdated symbols in",
        "  `resources/genes/aliases.tsv` are replaced with a warning. Mouse data use Ensembl 105",
        "  orthologs (`resources/genes/`); genes without a usable ortholog are dropped and reported.",
        "- Add your own sets as more YAML files (`signatures.library`) or GMT files (`signatures.gmt`);",
        "  in GMT a directed signature is a pair `NAME_UP` / `NAME_DOWN`.",
        f"- A signature is scored when at least `signatures.min_coverage` (default {DEFAULT_MIN_COVERAGE})",
        "  of its genes are present, or when its *core rule* holds: at least two of its core marker",
        "  groups are measured and, with alternates standing in for missing groups, at least half",
        "  of its core groups (a group is measured when any of its genes is present). Cell types",
        "  and CTC identity thus still score on targeted and partial panels; the per-sample",
        "  coverage table lists present and missing genes, core markers present and `scored_by`.",
        "- *Basis*: `refs` = chapter references; `refs + general knowledge` = references support the",
        "  biology, the gene choice is general knowledge; `general knowledge` = no chapter reference.",
        "",
        "| Signature | Theme | Up | Down | Core groups | References | Basis |",
        "|---|---|---|---|---|---|---|",
    ]
    for name, s in library.items():
        refs = "; ".join(_short_reference(r) for r in s.references) or "—"
        basis = (
            "refs"
            if not s.general_knowledge
            else ("refs + general knowledge" if s.references else "general knowledge")
        )
        out.append(
            f"| [{name}](#{name.lower()}) | {s.theme} | {len(s.up)} | {len(s.down)} "
            f"| {len(s.core) or '—'} | {refs} | {basis} |"
        )
    for name, s in library.items():
        out += [
            "",
            f"## {name}",
            "",
            f"*Theme* {s.theme} · *file* `{Path(s.source).name}`",
            "",
            s.description,
            "",
        ]
        out += [f"**Rationale.** {s.rationale}", "", f"**Up ({len(s.up)}).** {', '.join(s.up)}"]
        if s.down:
            out += ["", f"**Down ({len(s.down)}).** {', '.join(s.down)}"]
        if s.core:
            groups = " · ".join(" / ".join(group) for group in s.core)
            out += ["", f"**Core ({len(s.core)} groups; / = interchangeable).** {groups}"]
        if s.alternates:
            out += ["", f"**Alternates.** {', '.join(s.alternates)}"]
        if s.weights:
            out += ["", "**Weights.** " + ", ".join(f"{g}={w:g}" for g, w in s.weights.items())]
        if s.references:
            out += ["", "**References.**", ""]
            for r in s.references:
                ids = "".join(
                    [
                        f" doi:{r['doi']}" if "doi" in r else "",
                        f" PMID:{r['pmid']}" if "pmid" in r else "",
                    ]
                )
                out.append(f"- {r['citation']}{ids}")
        if s.general_knowledge:
            out += ["", f"**General knowledge.** {s.general_knowledge}"]
        if s.notes:
            out += ["", f"**Species notes.** {s.notes}"]
    return "\n".join(out) + "\n"


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(
        prog="python -m seedsoil.signatures", description=__doc__.splitlines()[0]
    )
    parser.add_argument(
        "--readme", metavar="FOLDER", help="regenerate FOLDER/README.md from FOLDER/*.yaml"
    )
    parser.add_argument("--gmt", metavar="FILE", help="export the shipped library as GMT")
    args = parser.parse_args(argv)
    if args.readme:
        folder = Path(args.readme)
        text = render_readme(load_library([folder]))
        with atomic_path(folder / "README.md") as tmp:
            tmp.write_text(text)
    if args.gmt:
        write_gmt(load_signatures(), args.gmt)
    if not (args.readme or args.gmt):
        parser.print_help()


if __name__ == "__main__":
    main()
