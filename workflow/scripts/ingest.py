from seedsoil.pipeline import ingest_dataset
from seedsoil.util import atomic_path, rule_logging

with rule_logging(snakemake.log[0]):
    adata, samples = ingest_dataset(snakemake.input.data, snakemake.params.row, snakemake.params.qc)
    with atomic_path(snakemake.output.h5ad) as path:
        adata.write_h5ad(path, compression="gzip")
    with atomic_path(snakemake.output.samples) as path:
        samples.to_csv(path, sep="\t", index=False)
