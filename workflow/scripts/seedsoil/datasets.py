"""Built-in datasets: real public single-cell data that ships inside Python packages.

Each dataset is one file inside an installed package (scanpy), inside a pinned wheel from
PyPI (fetched with ``pip download --no-deps``), or shipped in this repository's
``resources/data/`` (``in_project``; present in a checkout, not in a wheel of seedsoil). The file's sha256 is a fixed fact recorded
here and checked on every fetch. ``suggested`` holds the dataset-sheet values that fit each
file (where its counts, labels and samples live).
"""

from __future__ import annotations

import importlib.resources
import os
import shutil
import subprocess
import sys
import zipfile
from dataclasses import dataclass, field
from pathlib import Path

from seedsoil.errors import InputError
from seedsoil.fetch import sha256sum
from seedsoil.util import atomic_path


@dataclass(frozen=True)
class BuiltinDataset:
    """One built-in dataset: where its file lives and where it comes from."""

    name: str
    description: str
    package: str  #: distribution that carries the file
    version: str  #: "" for a file of an installed package, else the pinned wheel version
    member: str  #: path of the file inside the package (installed) or the wheel (zip member)
    sha256: str  #: digest of the file itself (not of the wheel)
    format: str
    provenance: dict[str, str]
    suggested: dict[str, str | int | float] = field(default_factory=dict)
    #: True when ``member`` is a path relative to the repository root (a file of this project)
    in_project: bool = False

    @property
    def filename(self) -> str:
        return Path(self.member).name


_DATA_LICENCE = "as published by the original authors"
#: Repository root: ``in_project`` members are relative to it.
REPO = Path(__file__).resolve().parents[3]

BUILTINS: dict[str, BuiltinDataset] = {
    d.name: d
    for d in [
        BuiltinDataset(
            name="pbmc68k_reduced",
            description=(
                "700 peripheral blood mononuclear cells, 765 genes, 10 cell-type labels "
                "(obs 'bulk_labels'); X is scaled, .raw holds log-normalised values; "
                "a subsample of the 10x Genomics 68k PBMC data set shipped with scanpy."
            ),
            package="scanpy",
            version="",
            member="datasets/10x_pbmc68k_reduced.h5ad",
            sha256="e71d41e737c941559b7c57c9243bdb3d2c889c2adfdf00e3422ac6b46783676f",
            format="h5ad",
            provenance={
                "publication": (
                    "Zheng GXY et al. (2017) Massively parallel digital transcriptional "
                    "profiling of single cells. Nat Commun 8:14049. doi:10.1038/ncomms14049"
                ),
                "accession": "10x Genomics: Fresh 68k PBMCs (Donor A); SRA SRP073767",
                "licence": f"data {_DATA_LICENCE}; file distributed in scanpy (BSD-3-Clause)",
                "url": "https://pypi.org/project/scanpy/1.11.5/",
            },
            suggested={"counts": "raw", "cell_type": "bulk_labels", "min_genes": 50},
        ),
        BuiltinDataset(
            name="oligodendroglioma",
            description=(
                "184 cells of oligodendroglioma (Smart-seq2): malignant cells of 4 patients "
                "(obs 'cell_type' malignant_<patient>), microglia/macrophages and "
                "oligodendrocytes; 9,450 genes; TPM-like non-integer values, no raw counts."
            ),
            package="infercnvpy",
            version="0.6.1",
            member="infercnvpy/datasets/data/oligodendroglioma.h5ad",
            sha256="f1c5bf67613cabc6931b90f4a623bdd5ed7e32f574a98901f3f55b9d80523f5e",
            format="h5ad",
            provenance={
                "publication": (
                    "Tirosh I et al. (2016) Single-cell RNA-seq supports a developmental "
                    "hierarchy in human oligodendroglioma. Nature 539:309-313. "
                    "doi:10.1038/nature20123"
                ),
                "accession": "GEO GSE70630",
                "licence": f"data {_DATA_LICENCE}; file distributed in infercnvpy (BSD-3-Clause)",
                "url": "https://pypi.org/project/infercnvpy/0.6.1/",
            },
            suggested={"counts": "X", "cell_type": "cell_type", "min_genes": 200},
        ),
        BuiltinDataset(
            name="wu2020_200",
            description=(
                "200 T cells from tumour, normal adjacent tissue and blood of 14 patients "
                "(obs 'source' Tumor/NAT/Blood, 'patient', 'sample'); raw counts in X; "
                "30,727 genes; the authors' UMAP in obsm 'X_umap_orig'. A scirpy test subset."
            ),
            package="scirpy",
            version="0.22.5",
            member="scirpy/tests/data/wu2020_200_v0_11.h5ad",
            sha256="85d519686ffa31905e3055e9422e3f1eb5a06e79d9513a4aed7040437e02eed7",
            format="h5ad",
            provenance={
                "publication": (
                    "Wu TD et al. (2020) Peripheral T cell expansion predicts tumour "
                    "infiltration and clinical response. Nature 579:274-278. "
                    "doi:10.1038/s41586-020-2056-8"
                ),
                "accession": "GEO GSE139555",
                "licence": f"data {_DATA_LICENCE}; file distributed in scirpy (BSD-3-Clause)",
                "url": "https://pypi.org/project/scirpy/0.22.5/",
            },
            suggested={
                "counts": "X",
                "sample": "source",
                "condition": "source",
                "cell_type": "cluster_orig",
                "min_genes": 200,
            },
        ),
        BuiltinDataset(
            name="celltypist_sample",
            description=(
                "559 immune cells × 32,786 genes, UMI counts as a cells × genes CSV "
                "(barcodes replaced by Cell_1 … Cell_559; 30 MT- genes present); no labels."
            ),
            package="celltypist",
            version="1.7.1",
            member="celltypist/data/samples/sample_cell_by_gene.csv",
            sha256="0d729bd7a9e4d8f5a8ccc167f222530f4ece8d334b939d21b796bd77daf967f2",
            format="csv",
            provenance={
                "publication": (
                    "celltypist package sample data; origin as documented by celltypist "
                    "(described there only as 'a UMI count csv file with cells as rows and "
                    "gene symbols as columns'). Package: Domínguez Conde C et al. (2022) "
                    "Science 376:eabl5197. doi:10.1126/science.abl5197"
                ),
                "accession": "not documented by celltypist",
                "licence": f"data {_DATA_LICENCE}; file distributed in celltypist (MIT)",
                "url": "https://pypi.org/project/celltypist/1.7.1/",
            },
            suggested={"counts": "X", "min_genes": 200},
        ),
        BuiltinDataset(
            name="hydroseq_ctc_enriched",
            description=(
                "1,100 cells of CTC-enriched blood of breast-cancer patients (Hydro-Seq), "
                "integer counts in X on a targeted panel of 2,545 genes; unlabelled, "
                "keratin/EPCAM-positive cells among contaminating blood cells (no PTPRC)."
            ),
            package="seedsoil",
            version="",
            member="resources/data/hydroseq_ctc_enriched_1100.h5ad",
            sha256="03ec5cb83f1977baeb4226d4c5b561c4dd7e0f9e7591463cbf2fbb69ea338d52",
            format="h5ad",
            provenance={
                "publication": (
                    "Cheng YH et al. (2019) Hydro-Seq enables contamination-free high-throughput "
                    "single-cell RNA-sequencing for circulating tumor cells. Nat Commun 10:2163. "
                    "doi:10.1038/s41467-019-10122-2; distributed in the iCTC R package "
                    "(data/raw_test_data.rda, element hyrdo_test)"
                ),
                "accession": "iCTC commit 0bbb9f836793eee64c0934157d90e058631271b7",
                "licence": f"data {_DATA_LICENCE}; file distributed in iCTC (MIT)",
                "url": "https://github.com/krishan57gupta/iCTC",
            },
            suggested={"counts": "X", "condition": "Blood", "min_genes": 200},
            in_project=True,
        ),
    ]
}


def builtin_names() -> list[str]:
    """Names of the built-in datasets, sorted."""
    return sorted(BUILTINS)


def get_builtin(name: str) -> BuiltinDataset:
    """The built-in dataset called ``name``; :class:`InputError` listing the known names if none."""
    try:
        return BUILTINS[name]
    except KeyError:
        raise InputError(
            f"unknown built-in dataset {name!r}; known built-ins: {', '.join(builtin_names())}. "
            "Give one of these, a local path or an http(s) URL as the sheet's source."
        ) from None


def wheel_path(dataset: BuiltinDataset, cache_dir: str | os.PathLike) -> Path:
    """Path of the dataset's wheel in ``cache_dir``, downloading it with pip if absent."""
    cache_dir = Path(cache_dir)
    pattern = f"{dataset.package.replace('-', '_')}-{dataset.version}-*.whl"
    found = sorted(cache_dir.glob(pattern))
    if found:
        return found[0]
    cache_dir.mkdir(parents=True, exist_ok=True)
    command = [sys.executable, "-m", "pip", "download", "--no-deps", "--disable-pip-version-check"]
    command += [
        "--only-binary",
        ":all:",
        f"{dataset.package}=={dataset.version}",
        "-d",
        str(cache_dir),
    ]
    result = subprocess.run(command, capture_output=True, text=True)
    found = sorted(cache_dir.glob(pattern))
    if result.returncode != 0 or not found:
        raise InputError(
            f"cannot obtain the wheel {dataset.package}=={dataset.version} for built-in dataset "
            f"{dataset.name!r} (pip exit {result.returncode}: {result.stderr.strip()[-500:]}). "
            f"PyPI must be reachable once, or place the wheel in {cache_dir}."
        )
    return found[0]


def fetch_builtin(name: str, dest: str | os.PathLike, cache_dir: str | os.PathLike) -> Path:
    """Write built-in dataset ``name`` to ``dest`` (atomically) and return ``dest``.

    Files of installed packages are copied; wheel members are extracted from the wheel in
    ``cache_dir`` (downloaded there first if absent). The written file's sha256 must equal
    the recorded one, else :class:`InputError` and nothing is left under ``dest``.
    """
    dataset = get_builtin(name)
    dest = Path(dest)
    with atomic_path(dest) as tmp:
        if dataset.in_project:
            source = REPO / dataset.member
            if not source.is_file():
                raise InputError(
                    f"built-in dataset {name!r} is a file of the seedsoil repository "
                    f"({dataset.member}) and is missing from {REPO}; run from a full checkout."
                )
            shutil.copyfile(source, tmp)
            origin = dataset.member
        elif dataset.version:
            wheel = wheel_path(dataset, cache_dir)
            with (
                zipfile.ZipFile(wheel) as archive,
                archive.open(dataset.member) as src,
                open(tmp, "wb") as out,
            ):
                shutil.copyfileobj(src, out)
            origin = f"{wheel}!{dataset.member}"
        else:
            source = importlib.resources.files(dataset.package).joinpath(dataset.member)
            with source.open("rb") as src, open(tmp, "wb") as out:
                shutil.copyfileobj(src, out)
            origin = f"{dataset.package}/{dataset.member}"
        actual = sha256sum(tmp)
        if actual != dataset.sha256:
            raise InputError(
                f"built-in dataset {name!r} from {origin} has sha256 {actual}, expected "
                f"{dataset.sha256}; the package version differs from the pinned one. "
                "Reinstall the pinned version (requirements.lock) or delete the cached wheel."
            )
    return dest


def provenance(name: str) -> dict[str, str]:
    """Provenance of built-in dataset ``name`` in the convention's form (with ``sha256``)."""
    dataset = get_builtin(name)
    return {**dataset.provenance, "sha256": dataset.sha256}
