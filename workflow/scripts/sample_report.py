import json
from pathlib import Path

import anndata as ad
import pandas as pd

from seedsoil.report import pseudobulk, summarise_sample, write_sample_report
from seedsoil.signatures import library_version, load_library
from seedsoil.util import atomic_path, rule_logging

with rule_logging(snakemake.log[0]):
    cells = ad.read_h5ad(snakemake.input.cells)
    scores = pd.read_parquet(snakemake.input.scores)
    calls = pd.read_parquet(snakemake.input.calls)
    interpretation = json.loads(Path(snakemake.input.interpretation).read_text())
    library = load_library(snakemake.params.library, gmt=snakemake.params.gmt)
    write_sample_report(
        snakemake.output.html,
        adata=cells,
        scores=scores,
        coverage=pd.read_csv(snakemake.input.coverage, sep="\t"),
        pvalues=pd.read_parquet(snakemake.input.pvalues),
        fdr=pd.read_parquet(snakemake.input.fdr),
        calls=calls,
        communication=pd.read_csv(snakemake.input.communication, sep="\t"),
        interpretation=interpretation,
        config=snakemake.params.config,
        versions={"signature library": library_version(library)},
    )
    with atomic_path(snakemake.output.summary) as path:
        row = summarise_sample(cells, scores, calls=calls, interpretation=interpretation)
        # The cohort links reports by their folder, so the row carries the folder's names.
        row.update(dataset=snakemake.wildcards.dataset, sample=snakemake.wildcards.sample)
        path.write_text(json.dumps(row, indent=2, default=str))
    with atomic_path(snakemake.output.pseudobulk) as path:
        pseudobulk(cells).to_parquet(path)
