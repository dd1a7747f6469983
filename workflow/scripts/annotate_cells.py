from seedsoil.annotate import write_scored_cells
from seedsoil.util import atomic_path, rule_logging

with rule_logging(snakemake.log[0]):
    inputs = snakemake.input
    with atomic_path(snakemake.output[0]) as path:
        write_scored_cells(
            inputs.cells,
            inputs.scores,
            inputs.pvalues,
            inputs.fdr,
            inputs.calls,
            path,
            standalone=snakemake.params.standalone,
        )
