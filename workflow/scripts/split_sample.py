from seedsoil.split import write_sample_cells
from seedsoil.util import atomic_path, rule_logging

# Matrices referenced in ingested.h5ad, or streamed block by block: never held whole.
with (
    rule_logging(snakemake.log[0], snakemake.resources.attempt),
    atomic_path(snakemake.output[0]) as path,
):
    write_sample_cells(
        snakemake.input[0],
        snakemake.wildcards.sample,
        path,
        standalone=snakemake.params.standalone,
    )
