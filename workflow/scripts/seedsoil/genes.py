"""Gene tables: GENCODE v44 id → symbol, outdated-symbol aliases, human → mouse orthologs.

The tables live in ``resources/genes/`` (see its README for sources and licences):

- ``gencode_v44_human_genes.tsv.gz``: every GENCODE v44 human gene (``gene_id``, ``symbol``);
  unnamed genes carry their Ensembl id as symbol.
- ``aliases.tsv``: previous/alias HGNC symbol → current symbol (curated, unambiguous entries).
- ``ensembl105_human_mouse_orthologs.tsv.gz``: Ensembl 105 human → mouse symbol pairs;
  ``orthologs_supplement.tsv`` replaces them for the human genes it lists (pairs missing from
  or mis-assigned in that export).

The ortholog table carries symbols only, so there is no mouse Ensembl id → symbol map:
mouse data must arrive with gene symbols.
"""

from __future__ import annotations

import functools
import re
from collections.abc import Iterable, Mapping
from pathlib import Path

import pandas as pd

from seedsoil.errors import InputError

GENES_DIR = Path(__file__).resolve().parents[3] / "resources" / "genes"
GENCODE_TABLE = GENES_DIR / "gencode_v44_human_genes.tsv.gz"
ALIAS_TABLE = GENES_DIR / "aliases.tsv"
ORTHOLOG_TABLE = GENES_DIR / "ensembl105_human_mouse_orthologs.tsv.gz"
ORTHOLOG_SUPPLEMENT = GENES_DIR / "orthologs_supplement.tsv"

SPECIES = ("human", "mouse")
ENSEMBL_ID = re.compile(r"^ENS[A-Z]*G\d{11}(\.\d+)?$")
# Case styles for species guessing: human "CD3E", "MT-CO1"; mouse "Cd3e", "Gm12345".
HUMAN_CASE = re.compile(r"^[A-Z][A-Z0-9-]*[A-Z][A-Z0-9-]*$")
MOUSE_CASE = re.compile(r"^[A-Za-z][a-z0-9-]*[a-z][a-z0-9-]*$")


def _check_species(species: str) -> None:
    if species not in SPECIES:
        raise InputError(f"species {species!r} is not supported; use one of {', '.join(SPECIES)}")


@functools.cache
def gencode_table() -> pd.DataFrame:
    """GENCODE v44 human genes: columns ``gene_id`` (unversioned) and ``symbol``."""
    return pd.read_csv(GENCODE_TABLE, sep="\t", dtype=str, keep_default_na=False)


@functools.cache
def human_symbols() -> frozenset[str]:
    """Current human gene symbols of GENCODE v44 (unnamed genes' Ensembl ids excluded)."""
    symbols = gencode_table()["symbol"]
    return frozenset(symbols[~symbols.str.match(ENSEMBL_ID)])


@functools.cache
def alias_table() -> dict[str, str]:
    """Outdated symbol → current HGNC symbol, from ``resources/genes/aliases.tsv``."""
    table = pd.read_csv(ALIAS_TABLE, sep="\t", comment="#", dtype=str, keep_default_na=False)
    return dict(zip(table["alias"], table["symbol"], strict=True))


@functools.cache
def ortholog_table() -> dict[str, tuple[str, ...]]:
    """Human symbol → sorted mouse ortholog symbols: Ensembl 105, except that the curated
    supplement replaces the export's orthologs of every human gene it lists (it corrects
    missing and mis-assigned pairs, e.g. LYZ → 9530003J23Rik instead of Lyz2)."""
    export = pd.read_csv(ORTHOLOG_TABLE, sep="\t", dtype=str, keep_default_na=False)
    supplement = pd.read_csv(ORTHOLOG_SUPPLEMENT, sep="\t", dtype=str, keep_default_na=False)[
        ["human_symbol", "mouse_symbol"]
    ]
    export = export[~export["human_symbol"].isin(supplement["human_symbol"])]
    pairs = pd.concat([export, supplement]).drop_duplicates()
    grouped = pairs.groupby("human_symbol")["mouse_symbol"].agg(lambda s: tuple(sorted(s)))
    return grouped.to_dict()


@functools.cache
def mouse_symbols() -> frozenset[str]:
    """Mouse symbols that appear in the ortholog tables (mouse genes with a human ortholog only)."""
    return frozenset(m for mice in ortholog_table().values() for m in mice)


def is_known_symbol(symbol: str, species: str = "human") -> bool:
    """True when ``symbol`` is a current symbol: GENCODE v44 (human) or the ortholog table (mouse).

    For mouse the answer is only as complete as the ortholog table: mouse-specific genes
    without a human ortholog are reported unknown.
    """
    _check_species(species)
    return symbol in (human_symbols() if species == "human" else mouse_symbols())


def resolve_aliases(symbols: Iterable[str]) -> tuple[list[str], dict[str, str]]:
    """Replace outdated human symbols by their current HGNC symbol.

    A symbol that is current in GENCODE v44 is never replaced, even if it is also someone's
    alias. Returns the resolved list (same order and length) and the ``{old: new}`` changes.
    """
    current, aliases = human_symbols(), alias_table()
    resolved, changes = [], {}
    for symbol in symbols:
        if symbol not in current and symbol in aliases:
            changes[symbol] = aliases[symbol]
            symbol = aliases[symbol]
        resolved.append(symbol)
    return resolved, changes


def ensembl_to_symbol(ids: Iterable[str], species: str = "human") -> list[str]:
    """Map Ensembl gene ids (version suffix allowed) to GENCODE v44 symbols.

    Ids absent from GENCODE v44 are returned without their version suffix, unchanged
    otherwise, so the caller can count and report them. Only human is supported: the shipped
    ortholog table has no mouse Ensembl ids, and asking for mouse raises :class:`InputError`.
    """
    _check_species(species)
    if species == "mouse":
        raise InputError(
            "mouse Ensembl gene ids cannot be mapped: seedsoil ships no mouse Ensembl id → "
            "symbol table (the Ensembl 105 ortholog table has symbols only). Provide mouse data "
            "with gene symbols as var_names (e.g. the features' second column of a 10x dataset)."
        )
    table = gencode_table()
    lookup = dict(zip(table["gene_id"], table["symbol"], strict=True))
    unversioned = [str(i).split(".", 1)[0] for i in ids]
    return [lookup.get(i, i) for i in unversioned]


def human_to_mouse(symbols: Iterable[str]) -> dict[str, tuple[str, ...]]:
    """Mouse orthologs of each human symbol (an empty tuple when the tables have none).

    All orthologs are returned; :func:`pick_mouse_ortholog` chooses the one a signature keeps.
    """
    table = ortholog_table()
    return {symbol: table.get(symbol, ()) for symbol in symbols}


def pick_mouse_ortholog(human: str, orthologs: tuple[str, ...]) -> str | None:
    """The mouse gene a signature keeps for ``human``, or None.

    Rule: the ortholog with the same name ignoring case (one-to-many families such as GZMB →
    Gzmb, Gzmc, … keep Gzmb); otherwise the single ortholog of a one-to-one pair; otherwise
    None — a one-to-many mapping without a same-name member has no clear counterpart.
    """
    same_name = [m for m in orthologs if m.lower() == human.lower()]
    if same_name:
        return same_name[0]
    return orthologs[0] if len(orthologs) == 1 else None


def _fraction(names: list[str], pattern: re.Pattern[str]) -> float:
    return sum(bool(pattern.match(n)) for n in names) / len(names) if names else 0.0


def looks_like_ensembl(var_names: Iterable[str], min_fraction: float = 0.5) -> bool:
    """True when at least ``min_fraction`` of the names are Ensembl gene ids (ENSG…, ENSMUSG…)."""
    names = [str(n) for n in var_names]
    return bool(names) and _fraction(names, ENSEMBL_ID) >= min_fraction


def guess_species(var_names: Iterable[str], min_fraction: float = 0.6) -> str:
    """Guess "human", "mouse" or "unknown" from the letter case of gene symbols.

    Human HGNC symbols are upper case ("CD3E"), mouse MGI symbols capitalised ("Cd3e").
    Among the informative names (at least two letters, all upper case or all but the first
    lower case; Ensembl ids and mixed names such as "C1orf112" are ignored), the case style
    shared by at least ``min_fraction`` of them wins; otherwise "unknown". Useful to detect
    mouse data declared human, or human-symbol data declared mouse.
    """
    names = [str(n) for n in var_names if not ENSEMBL_ID.match(str(n))]
    names = [n for n in names if HUMAN_CASE.match(n) or MOUSE_CASE.match(n)]
    if _fraction(names, HUMAN_CASE) >= min_fraction:
        return "human"
    if _fraction(names, MOUSE_CASE) >= min_fraction:
        return "mouse"
    return "unknown"


def symbol_changes_text(changes: Mapping[str, str]) -> str:
    """``"IL8→CXCL8, CD97→ADGRE5"``: a compact log/report rendering of alias changes."""
    return ", ".join(f"{old}→{new}" for old, new in sorted(changes.items()))
