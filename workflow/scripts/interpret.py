import json

import anndata as ad
import pandas as pd

from seedsoil.interpret import interpret_sample
from seedsoil.util import atomic_path, rule_logging

with rule_logging(snakemake.log[0]):
    options = snakemake.params.interpretation
    calls, communication, summary = interpret_sample(
        ad.read_h5ad(snakemake.input.cells),
        pd.read_parquet(snakemake.input.scores),
        pd.read_parquet(snakemake.input.pvalues),
        pd.read_parquet(snakemake.input.fdr),
        pairs=snakemake.input.pairs,
        alpha=options["alpha"],
        n_perm=options["n_perm"],
        random_state=options["random_state"],
        min_cells=options["min_cells"],
    )
    with atomic_path(snakemake.output.calls) as path:
        calls.to_parquet(path)
    with atomic_path(snakemake.output.communication) as path:
        communication.to_csv(path, sep="\t", index=False)
    with atomic_path(snakemake.output.summary) as path:
        path.write_text(json.dumps(summary, indent=2, default=str))
