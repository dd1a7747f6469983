import json
import os
from pathlib import Path

import pandas as pd

from seedsoil.report import write_cohort
from seedsoil.signatures import library_version, load_library
from seedsoil.util import rule_logging

with rule_logging(snakemake.log[0]):
    out_dir = Path(snakemake.output.index).parent
    inputs = snakemake.input
    # results/{dataset}/{sample}/report.html -> (dataset, sample)
    keys = [tuple(Path(report).parts[-3:-1]) for report in inputs.reports]
    library = load_library(snakemake.params.library, gmt=snakemake.params.gmt)
    write_cohort(
        out_dir,
        summary=pd.DataFrame([json.loads(Path(path).read_text()) for path in inputs.summaries]),
        sample_reports=dict(
            zip(keys, (os.path.relpath(r, out_dir) for r in inputs.reports), strict=True)
        ),
        pseudobulk=dict(zip(keys, map(pd.read_parquet, inputs.pseudobulks), strict=True)),
        communication=dict(
            zip(keys, (pd.read_csv(p, sep="\t") for p in inputs.communication), strict=True)
        ),
        library=library,
        config=snakemake.params.config,
        versions={"signature library": library_version(library)},
        seed=snakemake.params.config["scoring"]["random_state"],
        within=snakemake.params.config["cohort"]["compare_within"],
    )
