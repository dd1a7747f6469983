# Every signature of the library, every cell of a sample, in one pass (seedsoil.score).


rule score:
    input:
        cells="results/{dataset}/{sample}/cells.h5ad",
        library=LIBRARY_INPUTS,
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
        mem_mb=mem_mb_from_input(600, 5),
        runtime=runtime_from_input(15, 60),
    params:
        library=SIGNATURE_PATHS,
        gmt=GMT_PATHS,
        min_coverage=config["signatures"]["min_coverage"],
        scoring=config["scoring"],
    script:
        "../scripts/score.py"
