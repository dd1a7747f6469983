"""Command-line entry point: ``seedsoil score INPUT.h5ad --gmt SETS.gmt --out scores.parquet``."""

from __future__ import annotations

import argparse
import sys

from .errors import InputError


def _signatures(args) -> dict:
    from .signatures import load_library

    signatures = load_library(args.signatures or [], gmt=args.gmt or [])
    if not signatures:
        raise InputError("give at least one gene-set file with --gmt or --signatures")
    return signatures


def _score(args) -> None:
    from . import score, significance
    from .util import atomic_path

    signatures = _signatures(args)
    options = {"zscore": True} if args.zscore else {}
    common = {"layer": args.layer, "chunk_size": args.chunk_size, "n_threads": args.threads}
    scores = score(args.input, signatures, args.method, **common, **options)
    with atomic_path(args.out) as tmp:
        scores.to_parquet(tmp)
    if args.pvalues or args.fdr:
        pvalues, fdr = significance(
            args.input, signatures, n_null=args.n_null, random_state=args.seed, **common
        )
        for frame, path in ((pvalues, args.pvalues), (fdr, args.fdr)):
            if path:
                with atomic_path(path) as tmp:
                    frame.to_parquet(tmp)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="seedsoil", description=__doc__)
    commands = parser.add_subparsers(dest="command", required=True)
    sub = commands.add_parser("score", help="score every cell of an .h5ad for every gene set")
    sub.add_argument("input", help="cells × genes .h5ad (X is scored unless --layer)")
    sub.add_argument("--gmt", action="append", help="gene sets in GMT format (repeatable)")
    sub.add_argument("--signatures", nargs="+", help="seedsoil signature library file(s)")
    sub.add_argument("--method", default="scanpy", choices=["scanpy", "ucell", "aucell", "mean"])
    sub.add_argument("--zscore", action="store_true", help="mean method: z-score genes first")
    sub.add_argument("--layer", help="score this layer instead of X")
    sub.add_argument("--out", required=True, help="cells × signatures scores (.parquet)")
    sub.add_argument("--pvalues", help="also write empirical p-values here (.parquet)")
    sub.add_argument("--fdr", help="also write BH FDR across cells here (.parquet)")
    sub.add_argument("--n-null", type=int, default=1000, help="null signatures per signature")
    sub.add_argument("--seed", type=int, default=0, help="seed of the null signatures")
    sub.add_argument("--chunk-size", type=int, default=20_000, help="cells read at a time")
    sub.add_argument("--threads", type=int, default=None, help="numba threads")
    sub.set_defaults(run=_score)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        args.run(args)
    except InputError as error:
        print(f"seedsoil: error: {error}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
