# Every signature of the library, every cell of a sample (seedsoil.score), streamed from disk.
# A sample above scoring.chunk_cells is scored as separate jobs over cell ranges:
#   score_stats (one per range, each continuing the previous range's gene statistics)
#   -> score_chunk (one per range, independent) -> score (gathers; FDR across all cells).
# The results equal a one-job run to the bit (tests/test_chunked_scoring.py,
# tests/test_workflow_chunked.py). A sample within chunk_cells is scored by `score` alone.

from seedsoil.scoring.chunked import n_chunks_for, needs_gene_stats

CHUNK_CELLS = config["scoring"]["chunk_cells"]
# Streaming jobs hold one block of 20,000 cells plus per-cell result tables: memory is
# nearly independent of the sample's size (measured in benchmarks/README.md, "Atlas").
STREAM_MEM_MB = 1500


def n_chunks(wildcards):
    """Cell ranges of a sample (1: scored in one job), from the ingest checkpoint's n_cells."""
    table = checkpoints.ingest.get(dataset=wildcards.dataset).output.samples
    samples = pd.read_csv(table, sep="\t", dtype={"sample": str}, keep_default_na=False)
    n_cells = samples.set_index("sample").loc[wildcards.sample, "n_cells"]
    return n_chunks_for(int(n_cells), CHUNK_CELLS)


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
    """The gene statistics of all a sample's cells: the last range's, if the scoring needs them."""
    scoring = config["scoring"]
    options = (
        {"random_state": scoring["random_state"]}
        if scoring["method"] == "scanpy"
        else {}
    )
    if not needs_gene_stats(scoring["method"], scoring["n_null"], **options):
        return []
    last = n_chunks(wildcards) - 1
    return f"results/{wildcards.dataset}/{wildcards.sample}/chunks/stats.{last}.npz"


def previous_gene_stats(wildcards):
    chunk = int(wildcards.chunk)
    if chunk == 0:
        return []
    return (
        f"results/{wildcards.dataset}/{wildcards.sample}/chunks/stats.{chunk - 1}.npz"
    )


def stream_mem_mb(wildcards, attempt):
    return STREAM_MEM_MB * attempt


def runtime_per_range(base_min, per_input_gb_min):
    """runtime in minutes for a job reading one range: the cells file's share, times attempt."""

    def runtime(wildcards, input, attempt):
        share = input_size_mb([input.cells]) / 1024 / n_chunks(wildcards)
        return math.ceil((base_min + per_input_gb_min * share) * attempt)

    return runtime


rule score_stats:
    input:
        cells="results/{dataset}/{sample}/cells.h5ad",
        previous=previous_gene_stats,
    output:
        temp("results/{dataset}/{sample}/chunks/stats.{chunk}.npz"),
    log:
        "logs/score_stats/{dataset}/{sample}.{chunk}.log",
    benchmark:
        "results/benchmarks/score_stats/{dataset}/{sample}.{chunk}.tsv"
    wildcard_constraints:
        chunk=r"\d+",
    retries: 2
    conda:
        "../../envs/seedsoil.yaml"
    threads: 2
    resources:
        mem_mb=stream_mem_mb,
        runtime=runtime_per_range(10, 10),
    params:
        n_chunks=n_chunks,
    script:
        "../scripts/score_stats.py"


rule score_chunk:
    input:
        cells="results/{dataset}/{sample}/cells.h5ad",
        stats=final_gene_stats,
        library=LIBRARY_INPUTS,
    output:
        scores=temp("results/{dataset}/{sample}/chunks/scores.{chunk}.parquet"),
        pvalues=temp("results/{dataset}/{sample}/chunks/pvalues.{chunk}.parquet"),
    log:
        "logs/score_chunk/{dataset}/{sample}.{chunk}.log",
    benchmark:
        "results/benchmarks/score_chunk/{dataset}/{sample}.{chunk}.tsv"
    wildcard_constraints:
        chunk=r"\d+",
    retries: 2
    conda:
        "../../envs/seedsoil.yaml"
    threads: 2
    resources:
        mem_mb=stream_mem_mb,
        runtime=runtime_per_range(15, 60),
    params:
        n_chunks=n_chunks,
        library=SIGNATURE_PATHS,
        gmt=GMT_PATHS,
        min_coverage=config["signatures"]["min_coverage"],
        scoring=config["scoring"],
    script:
        "../scripts/score_chunk.py"


rule score:
    input:
        cells="results/{dataset}/{sample}/cells.h5ad",
        library=LIBRARY_INPUTS,
        chunk_scores=chunk_tables("scores"),
        chunk_pvalues=chunk_tables("pvalues"),
    output:
        scores="results/{dataset}/{sample}/scores.parquet",
        pvalues="results/{dataset}/{sample}/pvalues.parquet",
        fdr="results/{dataset}/{sample}/fdr.parquet",
        coverage="results/{dataset}/{sample}/coverage.tsv",
    log:
        "logs/score/{dataset}/{sample}.log",
    benchmark:
        "results/benchmarks/score/{dataset}/{sample}.tsv"
    retries: 2
    conda:
        "../../envs/seedsoil.yaml"
    threads: 2
    resources:
        mem_mb=stream_mem_mb,
        runtime=runtime_from_input(15, 60),
    params:
        library=SIGNATURE_PATHS,
        gmt=GMT_PATHS,
        min_coverage=config["signatures"]["min_coverage"],
        scoring=config["scoring"],
    script:
        "../scripts/score.py"
