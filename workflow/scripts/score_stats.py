from seedsoil.pipeline import sample_gene_stats
from seedsoil.scoring.chunked import save_gene_stats
from seedsoil.util import atomic_path, rule_logging

with rule_logging(snakemake.log[0], snakemake.resources.attempt):
    stats = sample_gene_stats(
        snakemake.input.cells,
        int(snakemake.wildcards.chunk),
        snakemake.params.n_chunks,
        snakemake.input.previous or None,
        n_threads=snakemake.threads,
    )
    with atomic_path(snakemake.output[0]) as path:
        save_gene_stats(stats, path)
