# Scores -> answers: CTC candidates, cell types, heterotypic clusters, communication.


rule interpret:
    input:
        cells="results/{dataset}/{sample}/cells.h5ad",
        scores="results/{dataset}/{sample}/scores.parquet",
        pvalues="results/{dataset}/{sample}/pvalues.parquet",
        fdr="results/{dataset}/{sample}/fdr.parquet",
        pairs=COMMUNICATION_PAIRS,
    output:
        calls="results/{dataset}/{sample}/calls.parquet",
        communication="results/{dataset}/{sample}/communication.tsv",
        summary="results/{dataset}/{sample}/interpretation.json",
    log:
        "logs/interpret/{dataset}/{sample}.log",
    benchmark:
        "results/benchmarks/interpret/{dataset}/{sample}.tsv"
    retries: 2
    conda:
        "../../envs/seedsoil.yaml"
    resources:
        mem_mb=mem_mb_from_input(600, 5),
        runtime=runtime_from_input(15, 60),
    params:
        interpretation=config["interpretation"],
    script:
        "../scripts/interpret.py"
