"""Atlas-scale benchmark: the whole workflow on one dataset of a million cells, on 2 cores.

Writes, into a scratch working directory, ``data/atlas.h5ad``: raw UMI-like counts from
:mod:`seedsoil.synthetic` (CSR ``X``, gzip, generated chunk by chunk, never whole in memory;
the signature library's genes and 13 mitochondrial genes among filler genes), one sample,
8 cell-type labels drawn at random. A sheet and config point the real workflow at it; ``snakemake --cores 2``
then runs every rule (ingest, split, the chunked scoring jobs, interpretation, annotated cells,
the sample report, the cohort). Wall time, every job's and every rule's wall time and peak
memory (Snakemake ``benchmark:`` files) are printed as Markdown tables, with the size of
``results/`` on disk after the run against the input's matrix uncompressed (stored values ×
(value + column index bytes) + row pointers). ``--standalone`` sets
``outputs.standalone_h5ad: true`` (full copies of the matrices in every sample file).

    python benchmarks/atlas.py --cells 1000000 --workdir ../seedsoil-atlas/run

The generated input is kept next to the working directory (``atlas_input_v2_*.h5ad`` in its
parent), so a second run skips writing it.
"""

from __future__ import annotations

import argparse
import json
import shutil
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd
import yaml

#: Beside the clone, as ``make benchmark-atlas`` (``ATLAS_DIR``) has it: ~35 GB at 1M cells.
DEFAULT_WORKDIR = Path(__file__).resolve().parents[2] / "seedsoil-atlas" / "run"

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "workflow" / "scripts"))

from seedsoil.signatures import load_library  # noqa: E402
from seedsoil.synthetic import cell_names, write_umi_h5ad  # noqa: E402

DATASET = SAMPLE = "atlas"  # one sample: the sheet names no sample column
CELL_TYPES = ["T cell", "B cell", "NK cell", "monocyte", "neutrophil", "platelet",
              "epithelial", "fibroblast"]  # fmt: skip
MITO_GENES = ("ND1", "ND2", "CO1", "CO2", "ATP8", "ATP6", "CO3", "ND3", "ND4L", "ND4", "ND5",
              "ND6", "CYB")  # fmt: skip


def library_genes() -> list[str]:
    genes = []
    for signature in load_library([REPO / "resources" / "signatures"]).values():
        genes += list(signature.up) + list(getattr(signature, "down", None) or [])
    return list(dict.fromkeys(genes))


def gene_symbols(n_genes: int, seed: int) -> list[str]:
    """Library genes at random positions among ``FILLER`` genes (so across abundance levels)."""
    library = library_genes()
    names = [f"FILLER{i:05d}" for i in range(n_genes)]
    positions = np.random.default_rng(seed).choice(n_genes, size=len(library), replace=False)
    for position, gene in zip(positions, library, strict=True):
        names[position] = gene
    return names


def write_input(path: Path, n_cells: int, n_genes: int, nnz_per_cell: int, seed: int) -> int:
    """The raw-count input (gzip, as public atlases ship), chunk by chunk; returns stored values."""
    names = gene_symbols(n_genes, seed)
    mito = [f"MT-{gene}" for gene in MITO_GENES]
    fillers = [i for i, name in enumerate(names) if name.startswith("FILLER")]
    for position, gene in zip(fillers[:: len(fillers) // len(mito)], mito, strict=False):
        names[position] = gene
    # labels drawn at random: the interpretation's communication test runs over 8 groups
    labels = np.random.default_rng(seed).integers(len(CELL_TYPES), size=n_cells)
    obs = pd.DataFrame(
        {"cell_type": pd.Categorical.from_codes(labels, CELL_TYPES)}, index=cell_names(n_cells)
    )
    return write_umi_h5ad(
        path, n_cells, n_genes, nnz_per_cell, seed,
        log=False, var_names=names, obs=obs, compression="gzip",
    )  # fmt: skip


def prepare(workdir: Path, args) -> None:
    if workdir.exists():
        shutil.rmtree(workdir)
    (workdir / "data").mkdir(parents=True)
    sheet = workdir / "datasets.tsv"
    pd.DataFrame(
        [
            {
                "id": DATASET,
                "source": "data/atlas.h5ad",
                "format": "h5ad",
                "species": "human",
                "cell_type_column": "cell_type",
            }
        ]  # fmt: skip
    ).to_csv(sheet, sep="\t", index=False)
    config = {
        "datasets": str(sheet),
        "signatures": {"library": [str(REPO / "resources" / "signatures")], "gmt": []},
        # the poorest ~0.01 % of cells fail, so the split copies rows rather than the whole file
        "qc": {"min_genes": args.min_genes, "max_mito_fraction": 0.2, "min_cells_per_sample": 10},
        "scoring": {
            "method": args.method,
            "n_null": args.n_null,
            "random_state": 0,
            "chunk_cells": args.chunk_cells,
        },
    }
    if args.standalone:
        config["outputs"] = {"standalone_h5ad": True}
    (workdir / "config.yaml").write_text(yaml.safe_dump(config))
    # generated once per size next to the working directory, then linked in
    cached = workdir.parent / f"atlas_input_v2_{args.cells}x{args.genes}x{args.nnz}.h5ad"
    if not cached.exists():
        started = time.time()
        nnz = write_input(cached.with_suffix(".partial"), args.cells, args.genes, args.nnz, 0)
        cached.with_suffix(".partial").rename(cached)
        print(f"input: {args.cells:,} cells, {nnz:,} stored values, "
              f"{cached.stat().st_size / 2**30:.2f} GiB gzip, written in "
              f"{time.time() - started:.0f} s")  # fmt: skip
    (workdir / "data" / "atlas.h5ad").symlink_to(cached)


def snakemake(workdir: Path, cores: int, *extra: str) -> subprocess.CompletedProcess:
    command = [
        str(Path(sys.executable).with_name("snakemake")), "--snakefile", str(REPO / "Snakefile"),
        "--directory", str(workdir), "--configfile", str(workdir / "config.yaml"),
        "--cores", str(cores), *extra,
    ]  # fmt: skip
    return subprocess.run(command, capture_output=True, text=True)


def job_table(workdir: Path) -> pd.DataFrame:
    rows = []
    for path in sorted((workdir / "results" / "benchmarks").rglob("*.tsv")):
        record = pd.read_csv(path, sep="\t").iloc[-1]
        rows.append(
            {
                "rule": path.parent.parent.name
                if path.parent.name == DATASET
                else path.parent.name,
                "job": path.stem,
                "wall (s)": round(float(record["s"]), 1),
                "max RSS (MB)": round(float(record["max_rss"])),
            }
        )
    return pd.DataFrame(rows)


def rule_table(jobs: pd.DataFrame) -> pd.DataFrame:
    """Per rule: jobs, summed and longest wall time, largest peak memory."""
    grouped = jobs.groupby("rule", sort=False)
    return pd.DataFrame(
        {
            "jobs": grouped.size(),
            "wall, sum (s)": grouped["wall (s)"].sum().round(1),
            "wall, longest job (s)": grouped["wall (s)"].max(),
            "max RSS (MB)": grouped["max RSS (MB)"].max(),
        }
    ).reset_index()


def disk_bytes(folder: Path) -> int:
    """Bytes ``folder``'s files occupy on disk (allocated blocks; a hard-linked file once)."""
    seen, total = set(), 0
    for path in folder.rglob("*"):
        info = path.lstat()
        if path.is_file() and not path.is_symlink() and (info.st_dev, info.st_ino) not in seen:
            seen.add((info.st_dev, info.st_ino))
            total += info.st_blocks * 512
    return total


def disk_bytes_of(path: Path) -> int:
    return path.stat().st_blocks * 512


def uncompressed_matrix_bytes(path: Path) -> int:
    """The input's ``X`` (CSR) uncompressed: values, column indices and row pointers."""
    import h5py

    with h5py.File(path, "r") as f:
        return sum(f[f"X/{part}"].size * f[f"X/{part}"].dtype.itemsize
                   for part in ("data", "indices", "indptr"))  # fmt: skip


def print_markdown(table: pd.DataFrame) -> None:
    print("| " + " | ".join(table.columns) + " |")
    print("|" + "---|" * len(table.columns))
    for row in table.itertuples(index=False):
        print("| " + " | ".join(map(str, row)) + " |")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--cells", type=int, default=1_000_000)
    parser.add_argument("--genes", type=int, default=20_000)
    parser.add_argument("--nnz", type=int, default=1500, help="non-zeros per cell (mean)")
    parser.add_argument("--chunk-cells", type=int, default=200_000)
    parser.add_argument("--min-genes", type=int, default=500, help="QC threshold")
    parser.add_argument("--method", default="ucell")
    parser.add_argument("--n-null", type=int, default=1000)
    parser.add_argument("--cores", type=int, default=2)
    parser.add_argument("--workdir", type=Path, default=DEFAULT_WORKDIR)
    parser.add_argument("--standalone", action="store_true",
                        help="outputs.standalone_h5ad: true (matrices copied into sample files)")  # fmt: skip
    args = parser.parse_args()

    if args.workdir.exists():  # a previous run's files count as free space
        shutil.rmtree(args.workdir)
    needed = args.cells * args.nnz * 25  # bytes: input, ingested, cells and scored files, slack
    free = shutil.disk_usage(args.workdir.parent if args.workdir.parent.exists() else "/").free
    if needed > 0.8 * free:
        raise SystemExit(f"need ~{needed / 2**30:.0f} GiB, {free / 2**30:.0f} GiB free")
    prepare(args.workdir, args)
    started = time.time()
    run = snakemake(args.workdir, args.cores)
    wall = time.time() - started
    if run.returncode != 0:
        raise SystemExit(run.stderr[-5000:])
    jobs = job_table(args.workdir)
    scores = pd.read_parquet(args.workdir / "results" / DATASET / SAMPLE / "scores.parquet")
    summary = {
        "cells": args.cells,
        "genes": args.genes,
        "cells after QC": len(scores),
        "signatures scored": scores.shape[1],
        "chunk_cells": args.chunk_cells,
        "method": args.method,
        "n_null": args.n_null,
        "cores": args.cores,
        "workflow wall time (s)": round(wall, 1),
        "largest job RSS (MB)": int(jobs["max RSS (MB)"].max()),
    }
    results = args.workdir / "results"
    matrix = uncompressed_matrix_bytes(args.workdir / "data" / "atlas.h5ad")
    summary["input matrix uncompressed (GB)"] = round(matrix / 1e9, 2)
    summary["results/ on disk (GB)"] = round(disk_bytes(results) / 1e9, 2)
    summary["results/ / input matrix"] = round(disk_bytes(results) / matrix, 3)
    h5ad = [results / DATASET / "ingested.h5ad", *sorted(results.glob("*/*/*.h5ad"))]
    for path in (path for path in h5ad if path.exists()):  # ingested.h5ad is temp if standalone
        summary[f"{path.relative_to(results)} (GB)"] = round(disk_bytes_of(path) / 1e9, 3)
    print(json.dumps(summary, indent=1))
    print_markdown(rule_table(jobs))
    print()
    print_markdown(jobs)


if __name__ == "__main__":
    main()
