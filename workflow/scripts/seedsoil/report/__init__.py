"""Reports: a self-contained HTML page per sample and a cohort index with condition tests.

Entry points used by the workflow's rule scripts:

- :func:`write_sample_report` — one sample's ``report.html``;
- :func:`summarise_sample` — one row of ``cohort/summary.tsv``;
- :func:`pseudobulk` — a sample's genes × cell types summed expression (``pseudobulk.parquet``),
  from its AnnData or streamed block by block from its ``cells.h5ad``;
- :func:`write_cohort` — ``index.html``, ``summary.tsv``, ``condition_tests.tsv``, ``ssgsea.tsv``.
"""

from seedsoil.report.cohort import (
    condition_tests,
    pseudobulk,
    pseudobulk_ssgsea,
    summarise_sample,
    up_gene_sets,
)
from seedsoil.report.html import write_cohort, write_sample_report

__all__ = [
    "condition_tests",
    "pseudobulk",
    "pseudobulk_ssgsea",
    "summarise_sample",
    "up_gene_sets",
    "write_cohort",
    "write_sample_report",
]
