# seedsoil: metastasis gene-signature scoring of single-cell RNA-seq, cell by cell.
from snakemake.utils import min_version, validate

min_version("9.0")


configfile: "config/config.yaml"


# Without conda on the host: `--software-deployment-method conda apptainer` runs every job in
# this image and builds envs/seedsoil.yaml with conda inside it (Snakemake's convention); the
# image of ./Dockerfile runs the whole workflow instead (README). Ignored on the conda path.
container: "docker://condaforge/miniforge3:24.11.3-0"


validate(config, "workflow/schemas/config.schema.yaml")


include: "workflow/rules/common.smk"
include: "workflow/rules/fetch.smk"
include: "workflow/rules/ingest.smk"
include: "workflow/rules/score.smk"
include: "workflow/rules/annotate.smk"
include: "workflow/rules/interpret.smk"
include: "workflow/rules/report.smk"


rule all:
    input:
        get_final_output(),
