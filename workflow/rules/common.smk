# Sheet loading, input functions and wildcard constraints shared by every stage.
import math
import re
import sys
from pathlib import Path

import pandas as pd

# Shipped files (schemas, resources) live beside the Snakefile, whatever the working directory.
BASEDIR = Path(workflow.basedir)
# The rule scripts get workflow/scripts on sys.path from Snakemake; the Snakefile needs it too.
sys.path.insert(0, str(BASEDIR / "workflow" / "scripts"))

from seedsoil.datasets import get_builtin
from seedsoil.fetch import url_filename
from seedsoil.scoring.chunked import n_chunks_for, needs_gene_stats
from seedsoil.sheet import source_kind
from seedsoil.validate import report_gaps, validate_run
from seedsoil.errors import InputError
from snakemake.exceptions import WorkflowError

COMMUNICATION_PAIRS = str(BASEDIR / "resources" / "communication" / "pairs.tsv")

# The sheet, every signature file and the pairs table, checked before any job: all problems at once.
try:
    RUN_INPUTS = validate_run(config, BASEDIR, pairs=COMMUNICATION_PAIRS)
except InputError as error:
    raise WorkflowError(str(error)) from None
DATASETS = RUN_INPUTS.sheet

# `snakemake --report` covers the datasets of the config it is given: warn when some have no
# results (a run made with another --configfile), instead of a report without their samples.
if any(arg == "--report" or arg.startswith("--report=") for arg in sys.argv):
    REPORT_GAPS = report_gaps(DATASETS.index)
    if REPORT_GAPS:
        print(f"WARNING: snakemake --report: {REPORT_GAPS}", file=sys.stderr)


wildcard_constraints:
    dataset="|".join(map(re.escape, DATASETS.index)),
    sample="[^/]+",
    name="[A-Za-z0-9_.-]+",


# Signature files are inputs of the scoring rules, so editing one re-runs scoring.
SIGNATURE_PATHS = RUN_INPUTS.library_paths
GMT_PATHS = RUN_INPUTS.gmt_paths
LIBRARY_INPUTS = RUN_INPUTS.signature_files


def dataset_row(wildcards):
    return DATASETS.loc[wildcards.dataset].to_dict()


def dataset_input(wildcards):
    """The file (or 10x directory) ingest reads for a dataset, fetched first when remote."""
    row = DATASETS.loc[wildcards.dataset]
    kind = source_kind(row.source)
    if kind == "url":
        return f"resources/downloads/url/{row.id}/{url_filename(row.source)}"
    if kind == "builtin":
        name = row.source.removeprefix("builtin:")
        return (
            f"resources/downloads/builtin/{name}/{Path(get_builtin(name).member).name}"
        )
    return row.source


def attempt_number(wildcards, attempt):
    """The job's attempt (1, then 2, 3 on retries), as a resource read by the scripts:
    seedsoil.util.rule_logging ends a retry of an input error at once (retry only memory or
    transient failures)."""
    return attempt


def qc_params(wildcards):
    """QC thresholds for a dataset: the config's defaults, overridden by the sheet's row."""
    row = DATASETS.loc[wildcards.dataset]
    qc = dict(config["qc"])
    if row.min_genes:
        qc["min_genes"] = int(row.min_genes)
    if row.max_mito_fraction:
        qc["max_mito_fraction"] = float(row.max_mito_fraction)
    return qc


def samples_of(dataset):
    """Sample names of a dataset, known once its ingest checkpoint has run."""
    table = checkpoints.ingest.get(dataset=dataset).output.samples
    return pd.read_csv(table, sep="\t", dtype=str, keep_default_na=False)[
        "sample"
    ].tolist()


def sample_outputs(pattern):
    """Input function: ``pattern`` expanded over every dataset and sample."""

    def expand_over_samples(wildcards):
        return [
            pattern.format(dataset=dataset, sample=sample)
            for dataset in DATASETS.index
            for sample in samples_of(dataset)
        ]

    return expand_over_samples


def get_final_output():
    # Asking for every sample table up front lets all ingest checkpoints run in parallel.
    samples = [f"results/{dataset}/samples.tsv" for dataset in DATASETS.index]
    annotated = sample_outputs("results/{dataset}/{sample}/scored.h5ad")
    return samples + [
        "results/cohort/index.html",
        "results/cohort/scored_cells.h5ad",
        annotated,
    ]


def input_size_mb(input):
    """Total size of a job's input files in MB, counting a directory (10x folder) by its contents
    and an .h5ad by the bytes it reads, including the matrices it references in another file
    (seedsoil.cellfile.stored_bytes: a cells.h5ad is a few MB of references)."""
    # imported when a job is planned, not at parse
    from seedsoil.cellfile import stored_bytes

    total = 0
    for name in input:
        path = Path(name)
        files = (p for p in path.rglob("*") if p.is_file()) if path.is_dir() else [path]
        total += sum(
            stored_bytes(p) if p.suffix == ".h5ad" else p.stat().st_size for p in files
        )
    return total / 2**20


def mem_mb_from_input(base_mb, per_input_mb):
    """mem_mb resource: (base_mb + per_input_mb * input MB) * attempt.

    Measured: scoring a 7.8 MB gzipped cells.h5ad peaked at 360 MB, a 75 MB one at 650 MB;
    the smallest ingest peaked at 460 MB, interpret at 245 MB.
    """

    def mem_mb(wildcards, input, attempt):
        return math.ceil((base_mb + per_input_mb * input_size_mb(input)) * attempt)

    return mem_mb


def ingest_mem_mb(wildcards, input, attempt):
    """A streamed .h5ad input (seedsoil.ingest.is_streamed) needs one block of cells, the
    dataset's obs and the embedding's subsample, ~2 GB at a million cells; other inputs are
    read whole.
    """
    from seedsoil.ingest import (
        is_streamed,
    )  # imported when a job is planned, not at parse

    if is_streamed(input.data, dataset_row(wildcards)):
        return math.ceil((INGEST_STREAM_MEM_MB + input_size_mb(input) / 10) * attempt)
    return mem_mb_from_input(1000, 10)(wildcards, input, attempt)


INGEST_STREAM_MEM_MB = 2000


def runtime_from_input(base_min, per_input_gb_min):
    """runtime resource in minutes: (base_min + per_input_gb_min * input GB) * attempt."""

    def runtime(wildcards, input, attempt):
        return math.ceil(
            (base_min + per_input_gb_min * input_size_mb(input) / 1024) * attempt
        )

    return runtime


# ---- scoring in cell ranges (score.smk)

CHUNK_CELLS = config["scoring"]["chunk_cells"]
# Streaming jobs hold one block of 20,000 cells plus per-cell result tables: memory is
# nearly independent of the sample's size (measured in benchmarks/README.md, "Atlas").
STREAM_MEM_MB = 1500


def n_cells(wildcards):
    """QC-passed cells of a sample, from the ingest checkpoint's sample table."""
    table = checkpoints.ingest.get(dataset=wildcards.dataset).output.samples
    samples = pd.read_csv(table, sep="\t", dtype={"sample": str}, keep_default_na=False)
    return int(samples.set_index("sample").loc[wildcards.sample, "n_cells"])


def n_chunks(wildcards):
    """Cell ranges of a sample (1: scored in one job)."""
    return n_chunks_for(n_cells(wildcards), CHUNK_CELLS)


def chunk_tables(kind):
    """Input function: the per-range tables of a chunked sample, none for a one-job sample."""

    def tables(wildcards):
        count = n_chunks(wildcards)
        if count == 1:
            return []
        folder = f"results/{wildcards.dataset}/{wildcards.sample}/chunks"
        return [f"{folder}/{kind}.{chunk}.parquet" for chunk in range(count)]

    return tables


def final_gene_stats(wildcards):
    """The gene statistics of all a sample's cells (ingest writes every sample's), if the
    scoring needs them."""
    scoring = config["scoring"]
    options = (
        {"random_state": scoring["random_state"]}
        if scoring["method"] == "scanpy"
        else {}
    )
    if not needs_gene_stats(scoring["method"], scoring["n_null"], **options):
        return []
    return f"results/{wildcards.dataset}/gene_stats.npz"


def one_job_gene_stats(wildcards):
    """final_gene_stats for a sample scored by `score` alone; none for a chunked sample (its
    score_chunk jobs read them)."""
    return final_gene_stats(wildcards) if n_chunks(wildcards) == 1 else []


def stream_mem_mb(wildcards, attempt):
    return STREAM_MEM_MB * attempt


def tables_mem_mb(wildcards, attempt):
    """Streaming jobs that also hold the sample's cells × signatures tables (score, interpret,
    sample_report): about 1 KB per cell for a library of ~40 signatures."""
    return math.ceil((STREAM_MEM_MB + n_cells(wildcards) / 1024) * attempt)


def interpret_mem_mb(wildcards, input, attempt):
    """tables_mem_mb, plus ~1 KB per cell for the cell-type step's cells x types arrays (scores,
    p-values, posterior in float64, the neighbour graph, the marker flags), plus the marker genes
    held as CSR (8 B per stored value; the resource's genes are streamed,
    seedsoil.interpret.communication): 0.6-4.4 % of a cells.h5ad's stored values on the demo's
    five data sets (the resource's 5-15 %), so <= ~0.06 x the file's MB, counted twice for
    read_genes' concatenation. benchmarks/interpret_atlas.py at 1,000,000 cells: declared
    3,628 MB, measured peak 1.9 GB; the workflow's 1M atlas job 2.1-2.5 GB before the cells
    file was read in pieces cut to the rows and genes kept, 1.9 GB after, on that job's own
    files (benchmarks/README.md).
    """
    return (
        tables_mem_mb(wildcards, attempt)
        + math.ceil(n_cells(wildcards) / 1024 * attempt)
        + math.ceil(0.12 * input_size_mb([input.cells]) * attempt)
    )


def runtime_from_cells(base_min, per_100k_cells_min):
    """runtime in minutes for a job whose work grows with the sample's cells, times attempt."""

    def runtime(wildcards, attempt):
        return math.ceil(
            (base_min + per_100k_cells_min * n_cells(wildcards) / 1e5) * attempt
        )

    return runtime


def runtime_per_range(base_min, per_input_gb_min):
    """runtime in minutes for a job reading one range: the cells file's share, times attempt."""

    def runtime(wildcards, input, attempt):
        share = input_size_mb([input.cells]) / 1024 / n_chunks(wildcards)
        return math.ceil((base_min + per_input_gb_min * share) * attempt)

    return runtime


def reference_labels_input(wildcards):
    """The sample's reference labels when a reference is configured, else nothing."""
    if not config.get("annotation", {}).get("reference"):
        return []
    return f"results/{wildcards.dataset}/{wildcards.sample}/reference_labels.parquet"
