# Optional: cell types from a labelled reference (CellTypist trained locally), next to the
# signature-based assignment. Runs only when config annotation.reference is set.


rule annotate_reference:
    input:
        cells="results/{dataset}/{sample}/cells.h5ad",
        reference=lambda wildcards: config["annotation"]["reference"],
    output:
        "results/{dataset}/{sample}/reference_labels.parquet",
    log:
        "logs/annotate_reference/{dataset}/{sample}.log",
    benchmark:
        "results/benchmarks/annotate_reference/{dataset}/{sample}.tsv"
    conda:
        "../../envs/seedsoil.yaml"
    resources:
        # the reference is read whole (a labelled reference is small); the sample only on its genes
        mem_mb=lambda wildcards, input, attempt: math.ceil(
            (STREAM_MEM_MB + 4 * input_size_mb(input)) * attempt
        ),
        runtime=runtime_from_cells(10, 5),
    params:
        label_column=config.get("annotation", {}).get("label_column", "cell_type"),
    script:
        "../scripts/annotate_reference.py"
