"""Run the real workflow in a scratch directory (used by the workflow tests)."""

from __future__ import annotations

import importlib.util
import subprocess
import sys
from pathlib import Path

import anndata as ad
import numpy as np
import pandas as pd
import scipy.sparse as sp
import yaml

REPO = Path(__file__).resolve().parents[1]
SHEET_HEADER = [
    "id",
    "source",
    "format",
    "sample_column",
    "cell_type_column",
    "condition_column",
    "condition",
    "species",
    "gene_id",
    "counts",
    "sha256",
    "min_genes",
]

# Marker genes planted in the synthetic tumour so that the scores have a known direction.
EPITHELIAL = ["EPCAM", "KRT8", "KRT18", "KRT19", "CDH1", "CLDN4", "CLDN7", "KRT7", "ESRP1", "MUC1"]
NEUTROPHIL = [
    "ELANE",
    "MPO",
    "PADI4",
    "CSF3R",
    "FCGR3B",
    "S100A8",
    "S100A9",
    "CXCR2",
    "PTPRC",
    "CXCR1",
]
T_CELL = ["CD3E", "CD3D", "CD2", "CD8A", "GZMB", "NKG7", "PTPRC", "CD247", "IL7R", "CD3G"]


#: Sheet row of :func:`synthetic_tumour` written to ``data/tumour.h5ad`` of a workdir.
TUMOUR_ROW = {
    "id": "tumour",
    "source": "data/tumour.h5ad",
    "format": "h5ad",
    "sample_column": "patient",
    "cell_type_column": "label",
    "condition_column": "site",
}


def benchmark_module(stem: str):
    """``benchmarks/{stem}.py`` imported as a module (its data builders and evaluation
    functions; the benchmarks are scripts, not a package)."""
    spec = importlib.util.spec_from_file_location(stem, REPO / "benchmarks" / f"{stem}.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def synthetic_tumour(n_per_type: int = 40, n_filler: int = 600, seed: int = 0) -> ad.AnnData:
    """Raw UMI counts of two patients, each with epithelial tumour cells, neutrophils and T cells.

    Every cell has background counts on filler genes; each type carries its own markers
    at high counts, so each type's signature should score highest in that type.
    """
    rng = np.random.default_rng(seed)
    markers = list(dict.fromkeys(EPITHELIAL + NEUTROPHIL + T_CELL))
    genes = markers + ["MT-CO1", "MT-ND1"] + [f"FILLER{i:04d}" for i in range(n_filler)]
    blocks, obs = [], []
    for patient in ("P1", "P2"):
        for cell_type, planted in (
            ("tumour", EPITHELIAL),
            ("neutrophil", NEUTROPHIL),
            ("T cell", T_CELL),
        ):
            counts = rng.poisson(0.4, size=(n_per_type, len(genes))).astype(np.float32)
            columns = [genes.index(gene) for gene in planted]
            counts[:, columns] += rng.poisson(8.0, size=(n_per_type, len(columns)))
            blocks.append(counts)
            obs += [{"patient": patient, "label": cell_type, "site": "tumour"}] * n_per_type
    obs_frame = pd.DataFrame(obs)
    obs_frame.index = [f"cell{i:04d}" for i in range(len(obs_frame))]
    return ad.AnnData(
        sp.csr_matrix(np.vstack(blocks)), obs=obs_frame, var=pd.DataFrame(index=genes)
    )


def sheet_row(tmp_path: Path, source, **columns) -> dict:
    """A one-row sheet ("tumour", h5ad) with every default filled in, as the workflow passes it."""
    from seedsoil.sheet import load_sheet

    path = tmp_path / "datasets.tsv"
    row = {"id": "tumour", "source": str(source), "format": "h5ad", **columns}
    pd.DataFrame([row]).to_csv(path, sep="\t", index=False)
    sheet = load_sheet(path, REPO / "workflow" / "schemas" / "datasets.schema.yaml")
    return {"id": sheet.index[0], **sheet.iloc[0].to_dict()}


def write_sheet(path: Path, rows: list[dict]) -> Path:
    frame = pd.DataFrame(rows, columns=SHEET_HEADER).fillna("")
    frame.to_csv(path, sep="\t", index=False)
    return path


def write_config(workdir: Path, sheet: Path, **overrides) -> Path:
    config = {
        "datasets": str(sheet),
        "signatures": {
            "library": [str(REPO / "resources" / "signatures")],
            "gmt": [],
            "min_coverage": 0.5,
        },
        "qc": {"min_genes": 5, "max_mito_fraction": 0.5, "min_cells_per_sample": 10},
        "scoring": {"method": "ucell", "n_null": 100, "random_state": 0},
        "interpretation": {"alpha": 0.05, "n_perm": 100, "min_cells": 5, "random_state": 0},
    }
    for section, values in overrides.items():
        config[section].update(values)
    path = workdir / "config.yaml"
    path.write_text(yaml.safe_dump(config))
    return path


def run_snakemake(
    workdir: Path, config: Path, *args: str, cores: int | None = 2, wrapper: tuple[str, ...] = ()
) -> subprocess.CompletedProcess:
    """Run the repository's workflow in ``workdir`` with ``config``; ``wrapper`` prefixes the command
    (e.g. ``timeout``); ``cores=None`` leaves them to a profile."""
    command = [
        *wrapper,
        str(Path(sys.executable).with_name("snakemake")),
        "--snakefile",
        str(REPO / "Snakefile"),
        "--directory",
        str(workdir),
        "--configfile",
        str(config),
        *(["--cores", str(cores)] if cores is not None else []),
        *args,
    ]
    return subprocess.run(command, capture_output=True, text=True, timeout=1200)
