"""Benchmark seedsoil's scoring engine against the reference tools, in one run.

Generates a UMI-like log-normalised matrix (seedsoil.synthetic: ~1,800 non-zeros per
cell, most counts 1), writes it as an .h5ad in chunks, then runs every tool in its own
subprocess (so peak memory is per tool): seedsoil (in memory and streamed from disk)
versus scanpy ``tl.score_genes`` looped over signatures, pyucell, decoupler ``mt.aucell``
and ``mt.ulm``. Prints times, speed-up ratios, peak memory and agreement of the scores.

    python benchmarks/bench_scoring.py --cells 50000 --genes 20000 --signatures 24
    python benchmarks/bench_scoring.py --cells 0 --stream-cells 1000000   # streaming only
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import numpy as np

#: seedsoil method -> the reference tool it must agree with
REFERENCES = {"scanpy": "scanpy", "ucell": "pyucell", "aucell": "decoupler-aucell"}
SIZES = [10, 20, 30, 50, 100, 200]  # signature sizes, cycled


# --------------------------------------------------------------------------- worker side
class PeakRSS:
    """Sample this process's resident memory every few ms while the block runs."""

    def __init__(self) -> None:
        import psutil

        self.process = psutil.Process()
        self.base = self.peak = self.process.memory_info().rss
        self._stop = threading.Event()

    def _sample(self) -> None:
        while not self._stop.is_set():
            self.peak = max(self.peak, self.process.memory_info().rss)
            time.sleep(0.005)

    def __enter__(self):
        self.base = self.peak = self.process.memory_info().rss
        self._thread = threading.Thread(target=self._sample, daemon=True)
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self._stop.set()
        self._thread.join()
        self.peak = max(self.peak, self.process.memory_info().rss)


def _run_tool(tool: str, data, signatures: dict, threads: int) -> np.ndarray:
    import pandas as pd

    if tool.startswith("seedsoil"):
        import seedsoil

        method = tool.split(":")[1]
        return seedsoil.score(data, signatures, method, n_threads=threads).to_numpy()
    if tool == "scanpy":
        import scanpy as sc

        for name, genes in signatures.items():
            sc.tl.score_genes(data, genes, score_name=name)
        return data.obs[list(signatures)].to_numpy(np.float64)
    if tool == "pyucell":
        import pyucell

        pyucell.compute_ucell_scores(data, signatures, n_jobs=threads)
        return data.obs[[f"{n}_UCell" for n in signatures]].to_numpy(np.float64)
    if tool.startswith("decoupler"):
        import decoupler as dc

        net = pd.DataFrame(
            [(n, g) for n, genes in signatures.items() for g in genes], columns=["source", "target"]
        )
        method = tool.split("-")[1]
        out = getattr(dc.mt, method)(data, net, tmin=1)
        scores = (out if out is not None else data).obsm[f"score_{method}"]
        return scores.reindex(index=data.obs_names, columns=list(signatures)).to_numpy(np.float64)
    raise SystemExit(f"unknown tool {tool}")


def worker(args) -> None:
    import anndata as ad

    signatures = json.loads(Path(args.sigs).read_text())
    streamed = tool_streams(args.worker)
    if not args.worker.startswith("seedsoil"):
        os.environ.setdefault("NUMBA_NUM_THREADS", str(args.threads))
    data = args.data if streamed else ad.read_h5ad(args.data)
    # Warm-up on 200 cells of the same arrays (imports, JIT compilation for these dtypes,
    # numba cache loading), outside the timing.
    source = ad.read_h5ad(args.data, backed="r") if streamed else data
    _run_tool(
        args.worker,
        source[:200].to_memory() if streamed else data[:200].copy(),
        signatures,
        args.threads,
    )
    del source
    # Best of up to --repeats runs, stopping once 10 s have been spent: the machine is shared,
    # and the fastest run is the least disturbed one. Slow tools therefore run once.
    times, spent = [], 0.0
    with PeakRSS() as rss:
        while len(times) < args.repeats and spent < 10.0:
            start = time.perf_counter()
            scores = _run_tool(args.worker, data, signatures, args.threads)
            times.append(time.perf_counter() - start)
            spent += times[-1]
    seconds = min(times)
    np.save(args.out, scores)
    print(
        json.dumps(
            {
                "seconds": seconds,
                "runs": len(times),
                "base_mb": rss.base / 2**20,
                "peak_mb": rss.peak / 2**20,
            }
        )
    )


def tool_streams(tool: str) -> bool:
    return tool.startswith("seedsoil-stream")


# --------------------------------------------------------------------------- driver side
def make_signatures(path: Path, n_signatures: int, seed: int) -> dict:
    import h5py

    with h5py.File(path, "r") as f:
        var = f["var"]["_index"].asstr()[...]
        indices = f["X"]["indices"][: min(f["X"]["indices"].shape[0], 50_000_000)]
    detected = np.flatnonzero(np.bincount(indices, minlength=var.size) > 0)
    rng = np.random.default_rng(seed)
    return {
        f"sig{i:02d}_{SIZES[i % len(SIZES)]}": list(
            var[rng.choice(detected, SIZES[i % len(SIZES)], replace=False)]
        )
        for i in range(n_signatures)
    }


def run(tool: str, data: Path, sigs: Path, workdir: Path, threads: int, repeats: int) -> dict:
    out = workdir / f"{tool.replace(':', '_')}.npy"
    command = [sys.executable, __file__, "--worker", tool, "--data", str(data), "--sigs", str(sigs)]
    command += ["--out", str(out), "--threads", str(threads), "--repeats", str(repeats)]
    env = dict(os.environ, NUMBA_NUM_THREADS=str(threads), OMP_NUM_THREADS=str(threads))
    done = subprocess.run(command, capture_output=True, text=True, env=env)
    if done.returncode != 0:
        print(f"{tool} failed:\n{done.stderr[-3000:]}", file=sys.stderr)
        return {"tool": tool, "failed": True}
    result = json.loads(done.stdout.strip().splitlines()[-1])
    result.update(tool=tool, scores=str(out))
    print(
        f"  {tool:<24} {result['seconds']:8.2f} s (best of {result['runs']})   peak {result['peak_mb']:8.0f} MB",
        flush=True,
    )
    return result


def agreement(ours: np.ndarray, reference: np.ndarray) -> float:
    both = ~(np.isnan(ours) | np.isnan(reference))
    return float(np.abs(ours[both] - reference[both]).max()) if both.any() else float("nan")


def table(results: list[dict], matrix_mb: float) -> str:
    by_tool = {r["tool"]: r for r in results if not r.get("failed")}
    lines = [
        "| tool | time (s) | runs | reference / seedsoil | peak RSS (MB) | extra over loaded data | max abs diff vs reference |",
        "|---|---:|---:|---:|---:|---:|---:|",
    ]
    for r in results:
        if r.get("failed"):
            lines.append(f"| {r['tool']} | failed | | | | | |")
            continue
        ratio, diff = "", ""
        if r["tool"].startswith("seedsoil"):
            method = r["tool"].split(":")[1]
            reference = by_tool.get(REFERENCES.get(method, ""))
            if reference:
                ratio = f"{reference['seconds'] / r['seconds']:.1f}×"
                diff = f"{agreement(np.load(r['scores']), np.load(reference['scores'])):.1e}"
        extra = r["peak_mb"] - r["base_mb"]
        extra_text = f"{extra:.0f} MB" + (
            f" ({100 * extra / matrix_mb:.0f} %)" if not tool_streams(r["tool"]) else ""
        )
        lines.append(
            f"| {r['tool']} | {r['seconds']:.2f} | {r['runs']} | {ratio} | {r['peak_mb']:.0f} | {extra_text} | {diff} |"
        )
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument(
        "--cells", type=int, default=10_000, help="cells of the in-memory benchmark (0: skip)"
    )
    parser.add_argument("--genes", type=int, default=20_000)
    parser.add_argument("--nnz", type=int, default=1800, help="typical non-zeros per cell")
    parser.add_argument("--signatures", type=int, default=24)
    parser.add_argument("--methods", default="scanpy,ucell,aucell", help="seedsoil methods to time")
    parser.add_argument(
        "--references", default="scanpy,pyucell,decoupler-aucell,decoupler-ulm", help="'' for none"
    )
    parser.add_argument(
        "--stream-cells", type=int, default=0, help="also stream an on-disk h5ad of this many cells"
    )
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument(
        "--repeats", type=int, default=3, help="best of this many runs (within 10 s)"
    )
    parser.add_argument(
        "--workdir", type=Path, default=None, help="where the generated .h5ad files go"
    )
    parser.add_argument("--worker", help=argparse.SUPPRESS)
    parser.add_argument("--data", help=argparse.SUPPRESS)
    parser.add_argument("--sigs", help=argparse.SUPPRESS)
    parser.add_argument("--out", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.worker:
        worker(args)
        return

    from seedsoil.synthetic import write_umi_h5ad

    workdir = args.workdir or Path(tempfile.mkdtemp(prefix="seedsoil-bench-"))
    workdir.mkdir(parents=True, exist_ok=True)
    methods = [m for m in args.methods.split(",") if m]
    references = [r for r in args.references.split(",") if r]
    results = []
    jobs = []
    if args.cells:
        jobs.append((args.cells, [f"seedsoil:{m}" for m in methods] + references))
    if args.stream_cells:
        jobs.append((args.stream_cells, [f"seedsoil-stream:{m}" for m in methods]))
    for n_cells, tools in jobs:
        data = workdir / f"umi_{n_cells}x{args.genes}.h5ad"
        if not data.exists():
            start = time.perf_counter()
            write_umi_h5ad(data, n_cells, args.genes, args.nnz, seed=args.seed)
            print(f"wrote {data} in {time.perf_counter() - start:.0f} s", flush=True)
        sigs = workdir / f"signatures_{args.signatures}.json"
        if not sigs.exists():
            sigs.write_text(json.dumps(make_signatures(data, args.signatures, args.seed)))
        import h5py

        with h5py.File(data) as f:
            nnz = f["X"]["data"].shape[0]
        matrix_mb = nnz * 8 / 2**20 + (n_cells + 1) * 8 / 2**20
        print(
            f"{n_cells} cells × {args.genes} genes, {nnz / n_cells:.0f} non-zeros/cell, "
            f"X = {matrix_mb:.0f} MB, {args.signatures} signatures, {args.threads} threads",
            flush=True,
        )
        runs = [run(tool, data, sigs, workdir, args.threads, args.repeats) for tool in tools]
        results += runs
        print(table(runs, matrix_mb), flush=True)
    (workdir / "results.json").write_text(json.dumps(results, indent=1))


if __name__ == "__main__":
    main()
