import json

import pandas as pd

from seedsoil.cellfile import read_genes, read_obs_names
from seedsoil.interpret import (
    communication_pairs,
    genes_needed,
    identity_graph,
    interpret_cells,
    interpret_communication,
    load_pairs,
)
from seedsoil.interpret.ctc import core_marker_groups, library_signature
from seedsoil.util import (
    atomic_path,
    numba_threads,
    return_freed_memory,
    rule_logging,
    write_cell_table,
)

with rule_logging(snakemake.log[0], snakemake.resources.attempt), numba_threads(snakemake.threads):
    options = snakemake.params.interpretation
    communication = snakemake.params.communication
    pairs = communication_pairs(
        load_pairs(snakemake.input.pairs), communication["resource"], snakemake.params.species
    )
    # the epithelial markers of the CTC call: the scored library's own CTC signature core
    ctc_signature = library_signature(
        snakemake.params.library, snakemake.params.gmt, snakemake.params.species
    )
    ctc_core = core_marker_groups(ctc_signature)
    scoring = snakemake.params.scoring  # the blood-background null of the CTC call: same nulls
    ctc_null = {"signature": ctc_signature, **{k: scoring[k] for k in ("n_null", "random_state")}}
    # The cell-type step's kNN graph first, from the cell-type scores and the cell names alone:
    # its search, the job's largest working memory (~1 GB at a million cells), adds neither to
    # the tables nor to the marker genes' matrix.
    neighbours = identity_graph(snakemake.input.scores, read_obs_names(snakemake.input.cells))
    # Only the few genes interpretation reads from X: an atlas's matrix does not fit in memory.
    # The pairs' genes (a tenth of the values) are streamed from the file by communication.
    adata = read_genes(snakemake.input.cells, genes_needed(pairs, ctc_core, communication=False))
    # the tables as files: each step reads the columns it needs and drops them after
    calls, summary = interpret_cells(
        adata,
        snakemake.input.scores,
        snakemake.input.pvalues,
        snakemake.input.fdr,
        alpha=options["alpha"],
        reference_labels=(
            pd.read_parquet(snakemake.input.reference_labels)
            if snakemake.input.get("reference_labels")
            else None
        ),
        ctc_core=ctc_core,
        expression=snakemake.input.cells,
        ctc_null=ctc_null,
        neighbours=neighbours,
    )
    # communication does not read it: its memory goes to the streaming, and what the per-cell
    # calls leave mapped in the heap back to the system
    del neighbours
    return_freed_memory()
    table, summary = interpret_communication(
        adata,
        calls,
        summary,
        pairs=pairs,
        n_perm=options["n_perm"],
        random_state=options["random_state"],
        min_cells=options["min_cells"],
        expr_prop=communication["expr_prop"],
        max_cells=communication["max_cells"],
        expression=snakemake.input.cells,
    )
    with atomic_path(snakemake.output.calls) as path:
        write_cell_table(calls, path, {k: options[k] for k in ("alpha", "n_perm", "random_state")})
    with atomic_path(snakemake.output.communication) as path:
        table.to_csv(path, sep="\t", index=False)
    with atomic_path(snakemake.output.summary) as path:
        path.write_text(json.dumps(summary, indent=2, default=str))
