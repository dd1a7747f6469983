"""The contract every scoring method implements.

Scoring runs in two passes over the cells. An optional first pass gathers
dataset-wide :class:`GeneStats` (only for methods with ``NEEDS_STATS = True``);
the second pass hands the matrix to the method one chunk of rows (cells) at a time.
A method module therefore provides::

    NEEDS_STATS: bool
    def needs_stats(**options) -> bool            # optional; overrides NEEDS_STATS per call
    def stats_pass(chunks, n_genes) -> GeneStats  # optional; a cheaper pass when prepare reads
                                                  # only some fields (stats.gene_detection: nnz)
    def prepare(gene_sets: list[GeneSet], n_genes: int, stats: GeneStats | None, **options) -> object
    def score_chunk(X: scipy.sparse.csr_matrix, prepared: object) -> np.ndarray  # (n_cells, n_sets) float64

``score_chunk`` must give the same row for a cell whatever chunk the cell falls in,
which is what makes in-memory, streamed and chunked (cluster) scoring identical.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class GeneSet:
    """One signature resolved against a matrix's columns.

    ``up``/``down`` hold sorted, unique column indices of the genes present in the matrix;
    ``up_weights``/``down_weights`` are aligned with them (all ones when unweighted).
    ``missing_up``/``missing_down`` list the signature genes absent from the matrix, per
    direction, in signature order (rank methods such as UCell count them per direction).
    """

    name: str
    up: np.ndarray
    down: np.ndarray
    up_weights: np.ndarray
    down_weights: np.ndarray
    missing_up: tuple[str, ...] = ()
    missing_down: tuple[str, ...] = ()

    @property
    def missing(self) -> tuple[str, ...]:
        """Every absent signature gene, up genes first."""
        return self.missing_up + self.missing_down

    @property
    def size(self) -> int:
        return int(self.up.size + self.down.size)


@dataclass(frozen=True)
class GeneStats:
    """Dataset-wide per-gene statistics from one pass over all cells, in row order.

    ``sum_native`` accumulates each gene's values row by row in the sum dtype of the
    matrix (float32 for a float32 ``X``), exactly as ``scipy.sparse.csr_matrix.sum(axis=0)``
    does; scanpy's ``score_genes`` derives its expression bins from it. ``sum`` and
    ``sum_sq`` are float64 sums of values and squared values; ``nnz`` counts the cells
    in which the gene is stored non-zero. Accumulating row by row in one global order
    makes every field independent of how the rows were chunked.
    """

    n_cells: int
    sum: np.ndarray
    sum_native: np.ndarray
    sum_sq: np.ndarray
    nnz: np.ndarray

    @property
    def mean(self) -> np.ndarray:
        """float64 mean of each gene over all cells (zeros included)."""
        return self.sum / self.n_cells

    @property
    def std(self) -> np.ndarray:
        """Population (ddof = 0) standard deviation of each gene over all cells."""
        variance = self.sum_sq / self.n_cells - self.mean**2
        return np.sqrt(np.maximum(variance, 0.0))
