from seedsoil.ingest import ingest
from seedsoil.util import atomic_path, rule_logging

with rule_logging(snakemake.log[0], snakemake.resources.attempt):
    with (
        atomic_path(snakemake.output.h5ad) as path,
        atomic_path(snakemake.output.gene_stats) as stats_path,
    ):
        samples = ingest(
            snakemake.input.data,
            snakemake.params.row,
            snakemake.params.qc,
            path,
            stats_path=stats_path,
        )
    with atomic_path(snakemake.output.samples) as path:
        samples.to_csv(path, sep="\t", index=False)
