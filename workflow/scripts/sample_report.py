import json
from pathlib import Path

import pandas as pd

from seedsoil.cellfile import read_annotations
from seedsoil.report import pseudobulk, summarise_sample, write_sample_report
from seedsoil.report.cohort import pseudobulk_with_columns
from seedsoil.report.sample import CTC_CHECK_GENES, needs_ctc_markers
from seedsoil.signatures import library_version, load_library
from seedsoil.util import atomic_path, rule_logging

with rule_logging(snakemake.log[0]):
    # The matrices of an atlas-size sample do not fit in memory: the report and the summary
    # need only the annotations, and the pseudobulk streams the counts block by block.
    cells = read_annotations(snakemake.input.cells)
    scores = pd.read_parquet(snakemake.input.scores)
    calls = pd.read_parquet(snakemake.input.calls)
    # The CTC marker check needs a handful of genes' columns of X, and only when some cell is
    # a candidate: read in the pseudobulk's pass over the file (the indices read once).
    if needs_ctc_markers(calls):
        table, markers = pseudobulk_with_columns(snakemake.input.cells, CTC_CHECK_GENES)
        cells.obsm["ctc_markers"] = markers.set_axis(cells.obs_names)
    else:
        table = pseudobulk(snakemake.input.cells)
    with atomic_path(snakemake.output.pseudobulk) as path:
        table.to_parquet(path)
    interpretation = json.loads(Path(snakemake.input.interpretation).read_text())
    library = load_library(snakemake.params.library, gmt=snakemake.params.gmt)
    write_sample_report(
        snakemake.output.html,
        adata=cells,
        scores=scores,
        coverage=pd.read_csv(snakemake.input.coverage, sep="\t"),
        # The report links the p-values and checks they are this sample's cells; it shows
        # none of their values, so only the index is read (an atlas's table is ~0.3 GB).
        pvalues=pd.read_parquet(snakemake.input.pvalues, columns=[]),
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
