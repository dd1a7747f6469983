from seedsoil.fetch import download
from seedsoil.util import rule_logging

with rule_logging(snakemake.log[0], snakemake.resources.attempt):
    download(snakemake.params.url, snakemake.output[0], sha256=snakemake.params.sha256 or None)
