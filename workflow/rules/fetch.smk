# Remote and built-in inputs, fetched once into the git-ignored resources/downloads/.


rule fetch_url:
    output:
        "resources/downloads/url/{dataset}/{filename}",
    log:
        "logs/fetch_url/{dataset}/{filename}.log",
    retries: 2
    # Compute nodes often have no internet; downloading is I/O only.
    localrule: True
    conda:
        "../../envs/seedsoil.yaml"
    resources:
        attempt=attempt_number,
    params:
        url=lambda wildcards: DATASETS.loc[wildcards.dataset, "source"],
        sha256=lambda wildcards: DATASETS.loc[wildcards.dataset, "sha256"],
    script:
        "../scripts/fetch_url.py"


rule fetch_builtin:
    output:
        "resources/downloads/builtin/{name}/{filename}",
    log:
        "logs/fetch_builtin/{name}/{filename}.log",
    localrule: True
    conda:
        "../../envs/seedsoil.yaml"
    script:
        "../scripts/fetch_builtin.py"
