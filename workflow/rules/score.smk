# Every signature of the library, every cell of a sample (seedsoil.score), streamed from disk.
# A sample above scoring.chunk_cells is scored as separate jobs over cell ranges:
#   score_chunk (one per range, independent; the sample's gene statistics come from ingest,
#   results/{dataset}/gene_stats.npz, accumulated in row order while it wrote the rows)
#   -> score (gathers; FDR across all cells).
# The results equal a one-job run to the bit (tests/test_chunked_scoring.py,
# tests/test_workflow_chunked.py). A sample within chunk_cells is scored by `score` alone,
# with the same statistics from ingest (one pass over its cells instead of two).


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
        attempt=attempt_number,
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
        stats=one_job_gene_stats,
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
        attempt=attempt_number,
        mem_mb=tables_mem_mb,
        runtime=runtime_from_input(15, 60),
    params:
        library=SIGNATURE_PATHS,
        gmt=GMT_PATHS,
        min_coverage=config["signatures"]["min_coverage"],
        scoring=config["scoring"],
    script:
        "../scripts/score.py"
