"""The ligand–receptor pairs communication tests: LIANA+'s resource plus the chapter's pairs.

LIANA+ ships its OmniPath-derived resources in the wheel (``liana/resource/omni_resource.csv``;
Türei et al. 2021, Mol Syst Biol 17:e9923; Dimitrov et al. 2022, Nat Commun 13:3224), so
:func:`liana_pairs` works offline. ``consensus`` (the default) is the union of the curated
resources (CellPhoneDB, CellChatDB, ICELLNET, connectomeDB2020, CellTalkDB, …) with complexes;
``mouseconsensus`` is LIANA's own orthology translation of it, used for mouse data. Another
resource is translated to mouse through the project's Ensembl ortholog tables
(:func:`seedsoil.genes.human_to_mouse`), keeping a pair only when every subunit has a clear
ortholog (:func:`seedsoil.genes.pick_mouse_ortholog`).

The chapter's curated pairs (``resources/communication/pairs.tsv``, with references) stay a
named subset: :func:`communication_pairs` flags them (``chapter``), keeps their theme and
references, and adds those no L–R resource has (gap junctions GJA1–GJA1, platelet
P-selectin SELP–SELPLG, …). Complexes are written ``A+B`` throughout (LIANA writes ``A_B``).
"""

from __future__ import annotations

import importlib.util
from pathlib import Path

import pandas as pd

from seedsoil.errors import InputError
from seedsoil.genes import human_to_mouse, pick_mouse_ortholog
from seedsoil.interpret.communication import subunits

DEFAULT_RESOURCE = "consensus"
PAIRS_COLUMNS = ("ligand", "receptor", "theme", "description", "references", "chapter")


def resource_names() -> list[str]:
    """Names of the resources in LIANA's shipped ``omni_resource.csv`` (its ``resource`` column,
    what ``liana.resource.show_resources()`` lists), sorted.

    Read from the file without importing ``liana`` (seconds): the Snakefile checks
    ``communication.resource`` with it while parsing (:func:`seedsoil.validate.validate_run`).
    """
    spec = importlib.util.find_spec("liana")
    if spec is None or not spec.submodule_search_locations:
        raise InputError(
            "communication.resource: the liana package is not installed; install the "
            "environment (make .venv/.installed, envs/seedsoil.yaml) or set it to null"
        )
    path = Path(next(iter(spec.submodule_search_locations))) / "resource" / "omni_resource.csv"
    return sorted(pd.read_csv(path, usecols=["resource"])["resource"].unique())


def resource_problem(name: str | None) -> str | None:
    """Why ``communication.resource`` = ``name`` cannot be used (naming the valid ones), or None."""
    if name is None:
        return None
    known = resource_names()
    if name in known:
        return None
    return (
        f"config communication.resource: unknown LIANA resource {name!r}; use one of "
        f"{', '.join(known)}, or null to test the chapter's pairs only"
    )


def liana_pairs(name: str = DEFAULT_RESOURCE, species: str = "human") -> pd.DataFrame:
    """Ligand and receptor columns (``A+B`` complexes) of LIANA's resource ``name`` for ``species``.

    Mouse: ``consensus`` → LIANA's ``mouseconsensus``; any other resource through
    :func:`translate_to_mouse`. Duplicate pairs are dropped.
    """
    from liana.resource import select_resource

    problem = resource_problem(name)
    if problem:
        raise InputError(problem)
    if species == "mouse" and name == DEFAULT_RESOURCE:
        name = "mouseconsensus"
    table = select_resource(name)[["ligand", "receptor"]]
    table = table.apply(lambda column: column.str.replace("_", "+", regex=False))
    if species == "mouse" and name != "mouseconsensus":
        table = translate_to_mouse(table)
    return table.drop_duplicates().reset_index(drop=True)


def translate_to_mouse(pairs: pd.DataFrame) -> pd.DataFrame:
    """``pairs`` with every subunit replaced by its mouse ortholog; pairs with a subunit
    lacking a clear ortholog are dropped. Other columns are kept."""
    genes = sorted(
        {g for spec in pd.concat([pairs["ligand"], pairs["receptor"]]) for g in subunits(spec)}
    )
    mapping = {g: pick_mouse_ortholog(g, o) for g, o in human_to_mouse(genes).items()}

    def translate(spec: str) -> str | None:
        mouse = [mapping.get(g) for g in subunits(spec)]
        return None if None in mouse else "+".join(mouse)

    out = pairs.copy()
    out["ligand"] = out["ligand"].map(translate)
    out["receptor"] = out["receptor"].map(translate)
    return out.dropna(subset=["ligand", "receptor"]).reset_index(drop=True)


def _key(ligand: pd.Series, receptor: pd.Series) -> pd.Series:
    """Pair identity regardless of subunit order within a complex."""
    order = lambda spec: "+".join(sorted(subunits(spec)))  # noqa: E731
    return ligand.map(order) + "|" + receptor.map(order)


def communication_pairs(
    chapter: pd.DataFrame, resource: str | None = DEFAULT_RESOURCE, species: str = "human"
) -> pd.DataFrame:
    """The pairs to test: LIANA's ``resource`` plus the ``chapter`` pairs, with :data:`PAIRS_COLUMNS`.

    ``chapter`` is :func:`~seedsoil.interpret.communication.load_pairs`' table (human
    symbols; translated for mouse). A chapter pair also in the resource keeps the resource's
    spelling and gets the chapter's theme, description and references; ``chapter`` is True for
    every chapter pair. ``resource=None`` tests the chapter pairs only.
    """
    chapter = chapter.assign(chapter=True)
    if species == "mouse":
        chapter = translate_to_mouse(chapter)
    if resource is None:
        return chapter[list(PAIRS_COLUMNS)].reset_index(drop=True)
    pairs = liana_pairs(resource, species).assign(
        theme="", description="", references="", chapter=False
    )
    by_key = pd.Series(pairs.index, index=_key(pairs["ligand"], pairs["receptor"]))
    chapter_keys = _key(chapter["ligand"], chapter["receptor"])
    in_resource = chapter_keys.isin(by_key.index).to_numpy()
    for column in ("theme", "description", "references", "chapter"):
        pairs.loc[by_key[chapter_keys[in_resource]].to_numpy(), column] = chapter.loc[
            in_resource, column
        ].to_numpy()
    extra = chapter.loc[~in_resource, list(PAIRS_COLUMNS)]
    return pd.concat([pairs[list(PAIRS_COLUMNS)], extra], ignore_index=True)
