# Any supported format -> one AnnData convention (docs/architecture.md), then one file per sample.


# The dataset's own sheet row is a param, not the sheet an input: Snakemake re-runs a job whose
# params changed, so editing or adding another row re-runs only that row's dataset.
checkpoint ingest:
    input:
        data=dataset_input,
    output:
        # the one stored copy of the matrices, read through every sample file; with standalone
        # sample files nothing reads it after the split (docs/architecture.md)
        h5ad=(
            temp("results/{dataset}/ingested.h5ad")
            if config["outputs"]["standalone_h5ad"]
            else "results/{dataset}/ingested.h5ad"
        ),
        samples="results/{dataset}/samples.tsv",
        # each kept sample's gene statistics, gathered while ingest writes the rows (a few
        # hundred KB per sample): what scoring a sample in cell ranges needs from all its cells
        gene_stats="results/{dataset}/gene_stats.npz",
    log:
        "logs/ingest/{dataset}.log",
    benchmark:
        "results/benchmarks/ingest/{dataset}.tsv"
    retries: 2
    conda:
        "../../envs/seedsoil.yaml"
    threads: 2
    resources:
        attempt=attempt_number,
        mem_mb=ingest_mem_mb,
        runtime=runtime_from_input(20, 120),
    params:
        row=dataset_row,
        qc=qc_params,
    script:
        "../scripts/ingest.py"


rule split_sample:
    input:
        "results/{dataset}/ingested.h5ad",
    output:
        "results/{dataset}/{sample}/cells.h5ad",
    log:
        "logs/split_sample/{dataset}/{sample}.log",
    benchmark:
        "results/benchmarks/split_sample/{dataset}/{sample}.tsv"
    retries: 2
    conda:
        "../../envs/seedsoil.yaml"
    resources:
        attempt=attempt_number,
        # references the sample's rows (seedsoil.split), or copies them block by block
        # (outputs.standalone_h5ad, scattered samples): bounded memory
        mem_mb=stream_mem_mb,
        runtime=runtime_from_input(10, 30),
    params:
        standalone=config["outputs"]["standalone_h5ad"],
    script:
        "../scripts/split_sample.py"
