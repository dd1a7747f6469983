"""Atlas-scale scoring benchmark: the workflow's score rules on one sample of a million cells.

Writes, into a scratch working directory, a sample file ``results/atlas/S1/cells.h5ad`` laid
out as ``split_sample`` writes it (gzip-compressed float32 CSR ``X`` = log1p CP10k of UMI-like
counts from :mod:`seedsoil.synthetic`, generated chunk by chunk, never whole in memory; gene
symbols of the signature library among filler genes), the ingest checkpoint's sample table
and a placeholder ``ingested.h5ad`` older than the sample file. It then runs the real workflow
(``snakemake --cores 2``) for the sample's score tables: the chunked scoring jobs
(``score_stats`` chain, ``score_chunk`` per range, ``score`` gather) run; ingest and split do
not (a dry run is checked first), because they still load a dataset whole into memory.
Wall time and every job's peak memory (Snakemake ``benchmark:`` files) are printed as a
Markdown table.

    python benchmarks/atlas.py --cells 1000000 --workdir /work/scratch_atlas/run
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

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "workflow" / "scripts"))

from seedsoil.signatures import load_library  # noqa: E402
from seedsoil.synthetic import cell_names, write_umi_h5ad  # noqa: E402

DATASET, SAMPLE = "atlas", "S1"


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


def write_sample(path: Path, n_cells: int, n_genes: int, nnz_per_cell: int, seed: int) -> int:
    """The sample file (gzip, as the workflow writes it), chunk by chunk; returns the stored values."""
    obs = pd.DataFrame(
        {"sample": SAMPLE, "cell_type": "unlabelled", "condition": "NA"},
        index=cell_names(n_cells),
    )
    uns = {
        "seedsoil": {"dataset": DATASET, "sample": SAMPLE, "species": "human",
                     "source": "benchmarks/atlas.py", "version": "benchmark"}
    }  # fmt: skip
    return write_umi_h5ad(
        path, n_cells, n_genes, nnz_per_cell, seed,
        var_names=gene_symbols(n_genes, seed), obs=obs, uns=uns, compression="gzip",
    )  # fmt: skip


def prepare(workdir: Path, args) -> None:
    if workdir.exists():
        shutil.rmtree(workdir)
    (workdir / "data").mkdir(parents=True)
    results = workdir / "results" / DATASET
    (results / SAMPLE).mkdir(parents=True)
    # Oldest first: the dataset file and sheet, then the ingest outputs, then the sample file.
    (workdir / "data" / "atlas.h5ad").write_text("placeholder: ingest is not run\n")
    sheet = workdir / "datasets.tsv"
    pd.DataFrame(
        [{"id": DATASET, "source": "data/atlas.h5ad", "format": "h5ad", "species": "human"}]
    ).to_csv(sheet, sep="\t", index=False)
    config = {
        "datasets": str(sheet),
        "signatures": {"library": [str(REPO / "resources" / "signatures")], "gmt": []},
        "scoring": {
            "method": args.method,
            "n_null": args.n_null,
            "random_state": 0,
            "chunk_cells": args.chunk_cells,
        },
    }
    (workdir / "config.yaml").write_text(yaml.safe_dump(config))
    time.sleep(1.1)
    (results / "ingested.h5ad").write_text("placeholder: ingest is not run\n")
    pd.DataFrame(
        [{"sample": SAMPLE, "condition": "NA", "n_cells": args.cells, "n_cells_total": args.cells}]
    ).to_csv(results / "samples.tsv", sep="\t", index=False)
    time.sleep(1.1)
    started = time.time()
    nnz = write_sample(results / SAMPLE / "cells.h5ad", args.cells, args.genes, args.nnz, 0)
    size = (results / SAMPLE / "cells.h5ad").stat().st_size
    print(f"sample file: {args.cells:,} cells, {nnz:,} stored values, {size / 2**30:.2f} GiB "
          f"gzip, written in {time.time() - started:.0f} s")  # fmt: skip


def snakemake(workdir: Path, cores: int, *extra: str) -> subprocess.CompletedProcess:
    targets = [f"results/{DATASET}/{SAMPLE}/{name}" for name in ("scores.parquet", "fdr.parquet")]
    command = [
        str(Path(sys.executable).with_name("snakemake")), "--snakefile", str(REPO / "Snakefile"),
        "--directory", str(workdir), "--configfile", str(workdir / "config.yaml"),
        "--cores", str(cores), *extra, *targets,
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


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--cells", type=int, default=1_000_000)
    parser.add_argument("--genes", type=int, default=20_000)
    parser.add_argument("--nnz", type=int, default=1500, help="non-zeros per cell (mean)")
    parser.add_argument("--chunk-cells", type=int, default=200_000)
    parser.add_argument("--method", default="ucell")
    parser.add_argument("--n-null", type=int, default=1000)
    parser.add_argument("--cores", type=int, default=2)
    parser.add_argument("--workdir", type=Path, default=Path("/work/scratch_atlas/run"))
    args = parser.parse_args()

    needed = args.cells * args.nnz * 8 / 3 * 1.3  # gzip keeps about a third; scores, slack
    free = shutil.disk_usage(args.workdir.parent if args.workdir.parent.exists() else "/").free
    if needed > 0.8 * free:
        raise SystemExit(f"need ~{needed / 2**30:.0f} GiB, {free / 2**30:.0f} GiB free")
    prepare(args.workdir, args)
    plan = snakemake(args.workdir, args.cores, "--dry-run")
    planned = {line.split()[0] for line in plan.stdout.splitlines()[1:] if line[:1].isalpha()}
    if plan.returncode != 0 or {"ingest", "split_sample"} & planned:
        raise SystemExit(f"dry run failed or would re-ingest:\n{plan.stdout}\n{plan.stderr}")
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
        "signatures scored": scores.shape[1],
        "chunk_cells": args.chunk_cells,
        "method": args.method,
        "n_null": args.n_null,
        "cores": args.cores,
        "workflow wall time (s)": round(wall, 1),
        "largest job RSS (MB)": int(jobs["max RSS (MB)"].max()),
    }
    print(json.dumps(summary, indent=1))
    print("| " + " | ".join(jobs.columns) + " |")
    print("|" + "---|" * len(jobs.columns))
    for row in jobs.itertuples(index=False):
        print("| " + " | ".join(map(str, row)) + " |")


if __name__ == "__main__":
    main()
