# Self-contained HTML per sample, then the cohort index, tables and statistics.


rule sample_report:
    input:
        cells="results/{dataset}/{sample}/cells.h5ad",
        scores="results/{dataset}/{sample}/scores.parquet",
        pvalues="results/{dataset}/{sample}/pvalues.parquet",
        fdr="results/{dataset}/{sample}/fdr.parquet",
        coverage="results/{dataset}/{sample}/coverage.tsv",
        calls="results/{dataset}/{sample}/calls.parquet",
        communication="results/{dataset}/{sample}/communication.tsv",
        interpretation="results/{dataset}/{sample}/interpretation.json",
    output:
        html=report(
            "results/{dataset}/{sample}/report.html",
            category="Samples",
            subcategory="{dataset}",
            labels={"dataset": "{dataset}", "sample": "{sample}", "file": "report"},
            caption="../report/sample_report.rst",
        ),
        summary="results/{dataset}/{sample}/summary.json",
        pseudobulk="results/{dataset}/{sample}/pseudobulk.parquet",
    log:
        "logs/sample_report/{dataset}/{sample}.log",
    benchmark:
        "results/benchmarks/sample_report/{dataset}/{sample}.tsv"
    conda:
        "../../envs/seedsoil.yaml"
    resources:
        # annotations, the tables, one block of counts for the pseudobulk (seedsoil.cellfile)
        mem_mb=tables_mem_mb,
        runtime=runtime_from_cells(10, 1),
    params:
        library=SIGNATURE_PATHS,
        gmt=GMT_PATHS,
        config=config,
    script:
        "../scripts/sample_report.py"


rule cohort:
    input:
        reports=sample_outputs("results/{dataset}/{sample}/report.html"),
        summaries=sample_outputs("results/{dataset}/{sample}/summary.json"),
        pseudobulks=sample_outputs("results/{dataset}/{sample}/pseudobulk.parquet"),
        communication=sample_outputs("results/{dataset}/{sample}/communication.tsv"),
        library=LIBRARY_INPUTS,
    output:
        index=report(
            "results/cohort/index.html",
            category="Cohort",
            labels={"file": "index"},
            caption="../report/cohort_index.rst",
        ),
        summary=report(
            "results/cohort/summary.tsv",
            category="Cohort",
            labels={"file": "summary"},
            caption="../report/cohort_summary.rst",
        ),
        tests=report(
            "results/cohort/condition_tests.tsv",
            category="Cohort",
            labels={"file": "condition tests"},
            caption="../report/condition_tests.rst",
        ),
        ssgsea=report(
            "results/cohort/ssgsea.tsv",
            category="Cohort",
            labels={"file": "ssGSEA"},
            caption="../report/ssgsea.rst",
        ),
        communication=report(
            "results/cohort/communication_tests.tsv",
            category="Cohort",
            labels={"file": "communication tests"},
            caption="../report/communication_tests.rst",
        ),
    log:
        "logs/cohort/cohort.log",
    benchmark:
        "results/benchmarks/cohort/cohort.tsv"
    localrule: True
    conda:
        "../../envs/seedsoil.yaml"
    params:
        library=SIGNATURE_PATHS,
        gmt=GMT_PATHS,
        config=config,
    script:
        "../scripts/cohort.py"


rule cohort_cells:
    input:
        cells=sample_outputs("results/{dataset}/{sample}/cells.h5ad"),
        scores=sample_outputs("results/{dataset}/{sample}/scores.parquet"),
        calls=sample_outputs("results/{dataset}/{sample}/calls.parquet"),
    output:
        "results/cohort/scored_cells.h5ad",
    log:
        "logs/cohort/scored_cells.log",
    benchmark:
        "results/benchmarks/cohort/scored_cells.tsv"
    localrule: True
    conda:
        "../../envs/seedsoil.yaml"
    script:
        "../scripts/cohort_cells.py"
