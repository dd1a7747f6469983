from seedsoil.cellfile import read_genes
from seedsoil.interpret.reference import annotate_with_reference, read_reference, train_reference
from seedsoil.util import atomic_path, rule_logging

with rule_logging(snakemake.log[0]):
    reference = read_reference(snakemake.input.reference)
    # Only the reference's genes of the sample: the sample's whole matrix need not fit in memory.
    adata = read_genes(snakemake.input.cells, reference.var_names)
    model = train_reference(
        reference,
        snakemake.params.label_column,
        genes=adata.var_names,
        source=snakemake.input.reference,
    )
    labels = annotate_with_reference(adata, model)
    with atomic_path(snakemake.output[0]) as path:
        labels.to_parquet(path)
