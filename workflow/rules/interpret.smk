# Scores -> answers: CTC candidates, cell types, heterotypic clusters, communication.


rule interpret:
    input:
        cells="results/{dataset}/{sample}/cells.h5ad",
        scores="results/{dataset}/{sample}/scores.parquet",
        pvalues="results/{dataset}/{sample}/pvalues.parquet",
        fdr="results/{dataset}/{sample}/fdr.parquet",
        pairs=COMMUNICATION_PAIRS,
        reference_labels=reference_labels_input,
        library=LIBRARY_INPUTS,
    output:
        # Parquet: not in `snakemake --report`, whose viewer cannot show it (report.html does)
        calls="results/{dataset}/{sample}/calls.parquet",
        communication=report(
            "results/{dataset}/{sample}/communication.tsv",
            category="Samples",
            subcategory="{dataset}",
            labels={
                "dataset": "{dataset}",
                "sample": "{sample}",
                "file": "communication",
            },
            caption="../report/communication.rst",
        ),
        summary="results/{dataset}/{sample}/interpretation.json",
    log:
        "logs/interpret/{dataset}/{sample}.log",
    benchmark:
        "results/benchmarks/interpret/{dataset}/{sample}.tsv"
    retries: 2
    conda:
        "../../envs/seedsoil.yaml"
    threads: 2  # the communication test's permutations run in parallel
    resources:
        attempt=attempt_number,
        # annotations, marker genes, the tables and the cell-type arrays (common.smk)
        mem_mb=interpret_mem_mb,
        runtime=runtime_from_cells(10, 1),
    params:
        interpretation=config["interpretation"],
        communication=config["communication"],
        species=lambda wildcards: dataset_row(wildcards).get("species") or "human",
        library=SIGNATURE_PATHS,  # the CTC signature's core markers (seedsoil.interpret.ctc)
        gmt=GMT_PATHS,
        scoring=config["scoring"],  # n_null, random_state of the CTC call's background null
    script:
        "../scripts/interpret.py"


rule annotate_cells:
    input:
        cells="results/{dataset}/{sample}/cells.h5ad",
        scores="results/{dataset}/{sample}/scores.parquet",
        pvalues="results/{dataset}/{sample}/pvalues.parquet",
        fdr="results/{dataset}/{sample}/fdr.parquet",
        calls="results/{dataset}/{sample}/calls.parquet",
    output:
        "results/{dataset}/{sample}/scored.h5ad",
    log:
        "logs/annotate_cells/{dataset}/{sample}.log",
    benchmark:
        "results/benchmarks/annotate_cells/{dataset}/{sample}.tsv"
    conda:
        "../../envs/seedsoil.yaml"
    resources:
        # matrices referenced (or copied as stored with outputs.standalone_h5ad); the job
        # holds the joined per-cell tables (seedsoil.annotate)
        mem_mb=tables_mem_mb,
        runtime=runtime_from_cells(10, 1),
    params:
        standalone=config["outputs"]["standalone_h5ad"],
    script:
        "../scripts/annotate_cells.py"
