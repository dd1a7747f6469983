"""Communication compared between conditions, samples as replicates (``communication_tests.tsv``).

For each dataset (config ``cohort.compare_within: dataset``; ``null`` pools the cohort), each
interaction (sender, receiver, ligand, receptor) and each pair of conditions, the samples'
magnitudes are compared by a two-sided Mann–Whitney U test (the cohort's test, :func:`seedsoil.report.cohort.condition_tests`). A sample's magnitude is its
``score`` (CellPhoneDB's ligand–receptor mean) in its ``communication.tsv``; 0 when both types
are in that table but the row is not (below the expression-proportion filter: the pair is not
expressed there); missing when the sample lacks the sender or the receiver type, and that
sample then does not join the comparison. Interactions tested in fewer than 2 samples of a
dataset are not compared. FDR is Benjamini–Hochberg over the compared rows of one family
(column ``family``: the dataset, or ``cohort`` when pooled), as in the cohort's other tests.
"""

from __future__ import annotations

import itertools
from collections.abc import Mapping

import numpy as np
import pandas as pd

from seedsoil.report.cohort import NO_CONDITION, _mann_whitney, bh_fdr_finite

KEYS = ["sender", "receiver", "ligand", "receptor"]
COMMUNICATION_TEST_COLUMNS = [
    "family", *KEYS, "chapter", "group_a", "group_b", "n_a", "n_b",
    "median_a", "median_b", "effect", "pvalue", "fdr", "test",
]  # fmt: skip


def cell_types_tested(summary: pd.DataFrame) -> dict[tuple[str, str], set[str]]:
    """(dataset, sample) → the cell types its communication test covered: those with at least
    ``min_cells`` cells, from the summary's ``composition:<type>`` fractions × ``n_cells``
    (the groups communication uses, :func:`seedsoil.interpret.summary.cell_types_used`)."""
    columns = [c for c in summary.columns if str(c).startswith("composition:")]
    if not columns or "n_cells" not in summary or "min_cells" not in summary:
        return {}
    types = {}
    for _, row in summary.iterrows():
        counts = row[columns].astype(float).fillna(0.0) * float(row["n_cells"])
        present = counts.round() >= float(row["min_cells"])
        names = {c.removeprefix("composition:") for c in counts.index[present]}
        types[(str(row["dataset"]), str(row["sample"]))] = names - {"unassigned"}
    return types


def sample_magnitudes(
    tables: Mapping[str, pd.DataFrame], cell_types: Mapping[str, set[str]] | None = None
) -> pd.DataFrame:
    """Interactions × samples of one dataset: ``score``, 0 for an untested row between types the
    sample has, NaN when it lacks the sender or receiver; rows tested in ≥ 2 samples.

    ``cell_types``: sample → the types its test covered (:func:`cell_types_tested`); a sample
    not in it is taken to have the types its table names (none when no row passed the filter).
    """
    cell_types = cell_types or {}
    long = pd.concat(
        [t.assign(sample=s)[[*KEYS, "score", "sample"]] for s, t in tables.items() if len(t)],
        ignore_index=True,
    )
    if long.empty:
        return pd.DataFrame()
    wide = long.pivot_table(index=KEYS, columns="sample", values="score", aggfunc="first")
    wide = wide[wide.notna().sum(axis=1) >= 2]
    for sample, table in tables.items():
        types = cell_types.get(sample)
        if types is None:
            types = set(table["sender"]) | set(table["receiver"]) if len(table) else set()
        has_both = wide.index.get_level_values("sender").isin(types) & wide.index.get_level_values(
            "receiver"
        ).isin(types)
        column = wide[sample] if sample in wide else pd.Series(np.nan, index=wide.index)
        wide[sample] = column.where(~(has_both & column.isna()), 0.0)
    return wide


def communication_condition_tests(
    tables: Mapping[tuple[str, str], pd.DataFrame],
    conditions: Mapping[tuple[str, str], str],
    *,
    within: str | None = "dataset",
    cell_types: Mapping[tuple[str, str], set[str]] | None = None,
) -> pd.DataFrame:
    """:data:`COMMUNICATION_TEST_COLUMNS` for every family with ≥ 2 conditions.

    ``tables`` maps (dataset, sample) to the sample's ``communication.tsv``; ``conditions``
    maps (dataset, sample) to its condition (samples without one join no comparison);
    ``cell_types`` (dataset, sample) to the types its test covered (:func:`cell_types_tested`:
    a sample where no row passed the expression filter still has magnitude 0 between them).
    ``within="dataset"`` (config ``cohort.compare_within``) compares conditions among one
    dataset's samples, ``None`` among all the cohort's (family ``"cohort"``); ``family`` names
    the Benjamini–Hochberg family of each row's ``fdr``. ``effect`` = median(a) − median(b)
    of the magnitudes.
    """

    def family_of(dataset: str) -> str:
        return dataset if within == "dataset" else "cohort"

    rows = []
    for family in sorted({family_of(d) for d, _ in tables}):
        keys = [
            key
            for key in tables
            if family_of(key[0]) == family and str(conditions.get(key, "NA")) not in NO_CONDITION
        ]
        # a sample is named by its dataset too when datasets are pooled: names may repeat
        name = {key: key[1] if within == "dataset" else "/".join(key) for key in keys}
        samples = {name[key]: tables[key] for key in keys}
        labels = pd.Series({name[key]: str(conditions[key]) for key in keys}, dtype=object)
        groups = sorted(set(labels))
        if len(groups) < 2:
            continue
        types = {name[key]: (cell_types or {})[key] for key in keys if key in (cell_types or {})}
        wide = sample_magnitudes(samples, types)
        if wide.empty:
            continue
        chapter = _chapter_flags(samples.values())
        part = []
        for key, values in wide.iterrows():
            for group_a, group_b in itertools.combinations(groups, 2):
                a = values[labels.index[labels == group_a]].dropna().to_numpy(float)
                b = values[labels.index[labels == group_b]].dropna().to_numpy(float)
                pvalue, test = _mann_whitney(a, b)
                median_a = float(np.median(a)) if a.size else np.nan
                median_b = float(np.median(b)) if b.size else np.nan
                part.append(
                    [family, *key, chapter.get(key, False), group_a, group_b, a.size, b.size,
                     median_a, median_b, median_a - median_b, pvalue, np.nan, test]
                )  # fmt: skip
        part = pd.DataFrame(part, columns=COMMUNICATION_TEST_COLUMNS)
        part["fdr"] = bh_fdr_finite(part["pvalue"].to_numpy(float))
        rows.append(part)
    if not rows:
        return pd.DataFrame(columns=COMMUNICATION_TEST_COLUMNS)
    return pd.concat(rows, ignore_index=True)


def _chapter_flags(tables) -> dict:
    flags = {}
    for table in tables:
        if "chapter" in table and len(table):
            flagged = table[table["chapter"].astype(str).str.lower() == "true"]
            flags.update(dict.fromkeys(map(tuple, flagged[KEYS].to_numpy()), True))
    return flags
