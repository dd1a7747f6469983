"""The interpret job at atlas size: peak memory and time of the workflow's interpretation of one
sample of a million cells with LIANA's consensus resource (the fast kernel path).

Writes, once, ``cells.h5ad`` as ``split_sample`` writes it (log-normalised CSR ``X``, LZF; the
AnnData convention's ``obs``; 8 cell-type labels drawn at random) from :mod:`seedsoil.synthetic`,
with every gene the interpretation reads (``genes_needed``: the consensus resource's and the
chapter's pair genes and the markers, 1,997) at random positions among filler genes, plus ``scores``/``pvalues``/``fdr.parquet`` of the library's
signatures (uniform random values: the calls' cost, not their content, matters here). Then a
fresh process runs what ``workflow/scripts/interpret.py`` runs — the cell-type kNN graph from
the scores' cell-type columns and the cell names (``identity_graph``), ``read_genes`` of the
markers, ``interpret_cells`` on the three tables' files (each step reading the columns it
needs), ``interpret_communication`` with the pairs' genes streamed from the file — and prints
its wall time and peak RSS (``VmHWM``); ``--step communication`` measures the
communication step alone (the annotations and ``sample_communication`` with the genes streamed).
The interpret job also writes its three outputs as the rule does, and ``--stages`` prints each
stage's wall time and peak RSS (:class:`StageProfile`: the functions ``interpret_sample`` calls,
and the cell-type steps inside ``assign_cell_types``, wrapped in this process only).

    python benchmarks/interpret_atlas.py --cells 1000000 --genes 4000 --nnz-per-cell 314 \\
        --workdir /scratch/interp [--step communication]
"""

from __future__ import annotations

import argparse
import contextlib
import json
import resource
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "workflow" / "scripts"))

CELL_TYPES = ["T cell", "B cell", "NK cell", "monocyte", "neutrophil", "platelet",
              "epithelial", "fibroblast"]  # fmt: skip


def peak_rss_mb() -> int:
    """This process's peak resident memory (``VmHWM``): unlike ``getrusage``'s ``ru_maxrss``,
    which keeps the high-water mark of the process before ``exec`` (here the parent that wrote
    the data), it counts only this program."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return round(int(line.split()[1]) / 1024)
    return round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024)


def _status_mb(field: str) -> float:
    """The memory ``field`` (``VmHWM``, ``VmRSS``) of this process's ``/proc/self/status`` in MB
    (0 where ``/proc`` is unavailable)."""
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith(f"{field}:"):
                return int(line.split()[1]) / 1024
    except OSError:
        pass
    return 0.0


def current_hwm_mb() -> float:
    """``VmHWM`` of this process in MB: the peak since the last :func:`reset_hwm`."""
    return _status_mb("VmHWM")


def current_rss_mb() -> float:
    """``VmRSS`` of this process in MB: what is held now."""
    return _status_mb("VmRSS")


def reset_hwm() -> None:
    """Reset this process's ``VmHWM`` to its current RSS (``/proc/self/clear_refs`` ``5``, Linux
    ≥ 4.0), so that the next reading is the peak of what runs in between."""
    with contextlib.suppress(OSError):
        Path("/proc/self/clear_refs").write_text("5")


class StageProfile:
    """Wall time and peak RSS per named stage, stages nested as the calls are.

    A stage's peak is the largest ``VmHWM`` seen while it ran, children included; ``held_mb``
    the ``VmRSS`` on entering it (the largest over its calls): what the stages before it left
    in memory, so that ``peak_mb − held_mb`` is the stage's own working memory. Entering a
    stage folds the running peak into every open stage and resets the mark; leaving one folds
    its peak into its parents. Stages of the same name add their time and keep the largest peak.
    """

    def __init__(self) -> None:
        self.open: list[list] = []  # [name, start, peak]
        self.totals: dict[str, dict] = {}
        self.peak = 0.0  # the largest VmHWM seen before any reset: the process's own peak

    def _fold(self) -> None:
        hwm = current_hwm_mb()
        self.peak = max(self.peak, hwm)
        for frame in self.open:
            frame[2] = max(frame[2], hwm)

    def wrap(self, module, attribute: str, name: str) -> None:
        """Replace ``module.attribute`` by a timed copy (nothing when it is absent)."""
        import functools

        function = getattr(module, attribute, None)
        if function is None:
            return

        @functools.wraps(function)
        def timed(*args, **kwargs):
            self._fold()
            held = current_rss_mb()
            reset_hwm()
            self.open.append([name, time.perf_counter(), current_hwm_mb()])
            try:
                return function(*args, **kwargs)
            finally:
                self._fold()
                _, start, peak = self.open.pop()
                for frame in self.open:
                    frame[2] = max(frame[2], peak)
                total = self.totals.setdefault(
                    name,
                    {"s": 0.0, "calls": 0, "peak_mb": 0, "held_mb": 0, "depth": len(self.open)},
                )
                total["held_mb"] = max(total["held_mb"], round(held))
                total["s"] += time.perf_counter() - start
                total["calls"] += 1
                total["peak_mb"] = max(total["peak_mb"], round(peak))

        setattr(module, attribute, timed)

    def report(self) -> dict:
        return {
            ("  " * t["depth"]) + name: {**t, "s": round(t["s"], 2)}
            for name, t in self.totals.items()
        }


#: (module, function, stage) wrapped by ``--stages``, outer stages first.
STAGES = [
    ("seedsoil.interpret", "identity_graph", "identity graph (before the tables)"),
    ("seedsoil.interpret", "call_ctc", "ctc calls"),
    ("seedsoil.interpret.celltypes", "robust_z", "robust z (embedding)"),
    ("seedsoil.interpret", "assign_cell_types", "cell types"),
    ("seedsoil.interpret.celltypes", "neighbour_index", "kNN graph"),
    ("seedsoil.interpret.celltypes", "neighbourhood_mean", "neighbourhood means"),
    ("seedsoil.interpret.celltypes", "_expression_columns", "marker columns"),
    ("seedsoil.interpret.celltypes", "softmax", "posterior"),
    ("seedsoil.interpret.celltypes", "apply_sibling_contrasts", "sibling contrasts"),
    ("seedsoil.interpret.celltypes", "_markers", "assignment markers"),
    ("seedsoil.interpret.celltypes", "refine_calls", "classifier step"),
    ("seedsoil.interpret.celltypes", "transfer_labels", "transcriptome neighbours"),
    ("seedsoil.interpret", "flag_heterotypic", "heterotypic flags"),
    ("seedsoil.interpret", "summarise_interpretation", "summary (cells)"),
    ("seedsoil.interpret", "cell_types_used", "groups"),
    ("seedsoil.interpret", "sample_communication", "communication"),
]


def write_sample(folder: Path, n_cells: int, n_genes: int, nnz_per_cell: int, seed: int) -> dict:
    """``cells.h5ad`` and the three score tables; returns what was written."""
    from seedsoil.interpret import communication_pairs, genes_needed, load_pairs
    from seedsoil.signatures import load_library
    from seedsoil.synthetic import cell_names, write_umi_h5ad

    needed = genes_needed(communication_pairs(load_pairs()))
    library = load_library([REPO / "resources" / "signatures"])
    if n_genes < len(needed):
        raise SystemExit(
            f"--genes {n_genes}: the sample must hold the {len(needed)} genes interpretation "
            f"reads (interpret.genes_needed); use --genes {len(needed)} or more"
        )
    rng = np.random.default_rng(seed)
    names = [f"FILLER{i:05d}" for i in range(n_genes)]
    for position, gene in zip(rng.choice(n_genes, len(needed), replace=False), needed, strict=True):
        names[position] = gene
    labels = rng.integers(len(CELL_TYPES), size=n_cells)
    cells = cell_names(n_cells)
    obs = pd.DataFrame(
        {
            "sample": "atlas",
            "cell_type": pd.Categorical.from_codes(labels, CELL_TYPES),
            "condition": "NA",
            "n_counts": rng.integers(1000, 20000, n_cells).astype(np.float32),
            "n_genes": rng.integers(500, 4000, n_cells).astype(np.int32),
            "mito_fraction": rng.random(n_cells).astype(np.float32) * 0.1,
            "qc_pass": True,
            "qc_reason": "",
        },
        index=cells,
    )
    start = time.perf_counter()
    stored = write_umi_h5ad(
        folder / "cells.h5ad", n_cells, n_genes, nnz_per_cell, seed,
        var_names=names, obs=obs, compression="lzf",
    )  # fmt: skip
    rows = None
    for name, source in real_score_tables(folder, library).items():
        rows = rng.integers(len(source), size=n_cells) if rows is None else rows
        values = source.to_numpy()[rows]
        if name == "scores":  # resampled cells differ a little, as thinned copies of a cell do
            values = np.clip(values + rng.normal(0.0, 0.01, values.shape), 0.0, 1.0)
        table = pd.DataFrame(values, index=cells, columns=source.columns)
        table.index.name = "cell"
        table.to_parquet(folder / f"{name}.parquet")
    return {
        "cells": n_cells,
        "genes": n_genes,
        "stored_values": stored,
        "needed_genes": len(needed),
        "signatures": len(library),
        "written_s": round(time.perf_counter() - start, 1),
    }


def real_score_tables(folder: Path, library: dict) -> dict[str, pd.DataFrame]:
    """UCell scores, p-values (engine null, ``n_null`` 200) and BH FDR of every library signature
    on the real UMI cells of the built-in celltypist_sample (log-normalised): the value
    distributions and the cell-type structure of real data, which the calls and the kNN search
    depend on. Signatures with no gene in the sample are absent, as in the workflow."""
    import anndata as ad
    import scipy.sparse as sp
    from bench_scoring import _builtin

    from seedsoil.harmonise import log_normalise
    from seedsoil.names import current_symbols
    from seedsoil.scoring import score, significance

    counts = pd.read_csv(_builtin("celltypist_sample", folder), index_col=0)
    adata = ad.AnnData(
        log_normalise(sp.csr_matrix(counts.to_numpy(np.float32))),
        # outdated symbols renamed as ingest does (IL8 → CXCL8, IGJ → JCHAIN)
        var=pd.DataFrame(index=current_symbols(counts.columns.to_numpy())[0].astype(str)),
    )
    sets = {n: {"up": list(s.up), "down": list(s.down)} for n, s in library.items()}
    sets = {n: s for n, s in sets.items() if adata.var_names.isin(s["up"] + s["down"]).any()}
    pvalues, fdr = significance(adata, sets, n_null=200)
    return {"scores": score(adata, sets, method="ucell"), "pvalues": pvalues, "fdr": fdr}


def random_neighbours(embedding: np.ndarray, n_neighbors: int = 15) -> np.ndarray:
    """A stand-in for ``neighbour_index`` (``--random-neighbours``): ``n_neighbors`` seeded
    random other cells per cell, in the same int32 form, at the cost of drawing them. Measures
    everything but the neighbour search."""
    n = embedding.shape[0]
    k = min(n_neighbors, n - 1)
    draw = np.random.default_rng(0).integers(0, n - 1, size=(n, k), dtype=np.int64)
    draw += draw >= np.arange(n)[:, None]  # never the cell itself
    return draw.astype(np.int32)


def run_job(
    folder: Path, n_perm: int, threads: int, stages: bool = False, stub_knn: bool = False
) -> dict:
    """What workflow/scripts/interpret.py does, in this process; wall time and peak RSS, and
    with ``stages`` each stage's (:data:`STAGES`); ``stub_knn``: :func:`random_neighbours`
    in place of the exact neighbour search."""
    import importlib
    import logging

    from seedsoil.cellfile import read_genes, read_obs_names
    from seedsoil.interpret import (
        communication_pairs,
        genes_needed,
        identity_graph,
        interpret_cells,
        interpret_communication,
        load_pairs,
    )
    from seedsoil.interpret.ctc import core_marker_groups, library_signature
    from seedsoil.util import (
        numba_threads,
        return_freed_memory,
        use_system_allocator,
        write_cell_table,
    )

    logging.basicConfig(level=logging.INFO, format="%(relativeCreated)8.0f ms %(message)s")
    use_system_allocator()  # as the rule's rule_logging does
    profile = StageProfile()
    if stub_knn:
        importlib.import_module("seedsoil.interpret.celltypes").neighbour_index = random_neighbours
    if stages:
        import seedsoil.interpret  # noqa: F401  (the package the wrapped modules belong to)

        for module, function, name in STAGES:
            profile.wrap(importlib.import_module(module), function, name)
        interpret = importlib.import_module("seedsoil.interpret")
        profile.wrap(interpret, "interpret_cells", "per-cell calls")
        profile.wrap(interpret, "interpret_communication", "communication and summary")
        interpret_cells = interpret.interpret_cells  # noqa: F811  (the timed copies)
        identity_graph = interpret.identity_graph  # noqa: F811
        interpret_communication = interpret.interpret_communication  # noqa: F811
    start = time.perf_counter()
    with numba_threads(threads):
        pairs = communication_pairs(load_pairs(), "consensus", "human")
        # the CTC call's core markers and blood-background null, as the rule passes them
        ctc_signature = library_signature([REPO / "resources" / "signatures"])
        ctc_core = core_marker_groups(ctc_signature)
        ctc_null = {"signature": ctc_signature, "n_null": 1000, "random_state": 0}
        cells = folder / "cells.h5ad"
        neighbours = identity_graph(folder / "scores.parquet", read_obs_names(cells))
        adata = read_genes(cells, genes_needed(pairs, ctc_core, communication=False))
        genes_mb = (current_hwm_mb(), current_rss_mb())
        read_s = time.perf_counter() - start
        read_mb = current_hwm_mb()
        held = {"graph, then markers read (peak, held)": [round(x) for x in genes_mb]}
        # as workflow/scripts/interpret.py: the tables as files, read a few columns per step
        tables = [folder / f"{n}.parquet" for n in ("scores", "pvalues", "fdr")]
        # the whole matrix is the cells file (the transcriptome step and the CTC null read it)
        calls, summary = interpret_cells(
            adata, *tables, ctc_core=ctc_core, expression=cells, ctc_null=ctc_null,
            neighbours=neighbours,
        )  # fmt: skip
        del neighbours
        return_freed_memory()
        table, summary = interpret_communication(
            adata, calls, summary, pairs=pairs, n_perm=n_perm, random_state=0, min_cells=5,
            expr_prop=0.1, max_cells=50_000, expression=cells,
        )  # fmt: skip
        written = time.perf_counter()
        out = folder / "out"
        out.mkdir(exist_ok=True)
        write_cell_table(calls, out / "calls.parquet", {"alpha": 0.05, "n_perm": n_perm})
        table.to_csv(out / "communication.tsv", sep="\t", index=False)
        (out / "interpretation.json").write_text(json.dumps(summary, indent=2, default=str))
        write_s = time.perf_counter() - written
    return {
        "wall_s": round(time.perf_counter() - start, 1),
        "read_s": round(read_s, 1),  # the markers and the graph
        "write_s": round(write_s, 1),
        # resetting VmHWM per stage loses the earlier peaks: the profile kept them
        "max_rss_mb": max(peak_rss_mb(), round(profile.peak)),
        **({"read_peak_mb": round(read_mb), **held, "stages": profile.report()} if stages else {}),
        "genes_in_memory": int(adata.n_vars),
        "communication_rows": len(table),
        "liana": summary["communication_skipped"].get("liana", "run"),
    }


def run_communication(folder: Path, n_perm: int, threads: int) -> dict:
    """The communication step alone, as interpret_sample runs it on a labelled sample: the
    annotations, then the pairs' genes streamed from the file; wall time and peak RSS."""
    import logging

    from seedsoil.cellfile import read_annotations
    from seedsoil.interpret import communication_pairs, load_pairs
    from seedsoil.interpret.liana_methods import sample_communication
    from seedsoil.util import numba_threads

    logging.basicConfig(level=logging.INFO, format="%(relativeCreated)8.0f ms %(message)s")
    start = time.perf_counter()
    with numba_threads(threads):
        pairs = communication_pairs(load_pairs(), "consensus", "human")
        cells = folder / "cells.h5ad"
        adata = read_annotations(cells)
        table, skipped = sample_communication(
            adata, adata.obs["cell_type"].astype(str), pairs, n_perm=n_perm, random_state=0,
            min_cells=5, expr_prop=0.1, max_cells=50_000, expression=cells,
        )  # fmt: skip
    return {
        "wall_s": round(time.perf_counter() - start, 1),
        "max_rss_mb": peak_rss_mb(),
        "communication_rows": len(table),
        "liana": skipped.get("liana", "run"),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--cells", type=int, default=1_000_000)
    parser.add_argument("--genes", type=int, default=20_000)
    parser.add_argument("--nnz-per-cell", type=int, default=1570)  # benchmarks/atlas.py's matrix
    parser.add_argument("--n-perm", type=int, default=1000)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--workdir", type=Path, required=True)
    parser.add_argument(
        "--step", choices=["interpret", "communication"], default="interpret",
        help="the whole interpret job, or its communication step alone",
    )  # fmt: skip
    parser.add_argument(
        "--stages", action="store_true",
        help="print each stage's wall time and peak RSS (the job's own peak is then the largest)",
    )  # fmt: skip
    parser.add_argument(
        "--random-neighbours", action="store_true",
        help="seeded random neighbours instead of the kNN search: times everything else at "
             "atlas size; the calls then differ",
    )  # fmt: skip
    parser.add_argument("--job", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.job:  # the measured process
        if args.step == "interpret":
            result = run_job(
                args.workdir, args.n_perm, args.threads, args.stages, args.random_neighbours
            )
        else:
            result = run_communication(args.workdir, args.n_perm, args.threads)
        print(json.dumps(result, indent=1))
        return
    args.workdir.mkdir(parents=True, exist_ok=True)
    written = args.workdir / "written.json"
    if not written.exists():
        info = write_sample(args.workdir, args.cells, args.genes, args.nnz_per_cell, args.seed)
        written.write_text(json.dumps(info))
    print(written.read_text())
    command = [sys.executable, __file__, "--job", "--workdir", str(args.workdir),
               "--n-perm", str(args.n_perm), "--threads", str(args.threads),
               "--step", args.step, *(["--stages"] if args.stages else []),
               *(["--random-neighbours"] if args.random_neighbours else [])]  # fmt: skip
    result = subprocess.run(command, capture_output=True, text=True, check=False)
    sys.stderr.write(result.stderr[-4000:])
    print(result.stdout)


if __name__ == "__main__":
    main()
