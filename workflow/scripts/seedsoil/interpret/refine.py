"""Classifier refinement of cell-type calls (step 7 of :func:`~.celltypes.assign_cell_types`).

Cells whose signature evidence is too weak for a subtype call — left unassigned, or called at the
lineage level (``"T/NK cell"``) — borrow strength from the cells of the same sample that were
typed confidently: a multinomial logistic regression (the model CellTypist trains, Domínguez
Conde et al. 2022, here on the sample's own calls instead of an external atlas, as in
self-training annotators such as Garnett, Pliner et al. 2019) is trained on the typed cells'
marker-gene expression and predicts the others. A cell gets the predicted type only when the
probability reaches ``min_probability`` and the type is allowed for it (its own core markers, or
its lineage), so the classifier fills gaps in the evidence; it never overrules a call and never
types a cell the markers exclude.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

#: Fewest training cells a type needs to be learned: below it the type's calls are too few to
#: describe the type and it is left out of the model (its cells keep their calls).
MIN_TRAINING_CELLS = 5
#: Most training cells per type (a seeded random subset): the model needs the type's expression
#: profile, not every cell of a million-cell sample.
MAX_TRAINING_CELLS = 2_000
#: Class probability a prediction needs to become a call: more likely than all other types
#: together.
MIN_PROBABILITY = 0.5
#: Inverse L2 regularisation strength of the logistic regression (scikit-learn's ``C``); strong
#: regularisation because a few hundred marker genes are fitted on as few as 5 cells per type.
C = 0.1
#: Standardised expression is clipped to ±this (scanpy's ``pp.scale(max_value=10)``), so one
#: extreme cell does not dominate a gene's weight.
MAX_VALUE = 10.0
#: Candidate cells predicted per block (their dense features are block × genes: ~30 MB and its
#: standardised copy at a few hundred marker genes). Rows are predicted independently: blocks
#: of two or more rows give the calls of one block (a one-row block, possible as the last,
#: takes BLAS's matrix-vector path, whose last bits may differ).
BLOCK_CELLS = 16_384


def training_cells(
    labels: np.ndarray,
    n_types: int,
    min_cells: int = MIN_TRAINING_CELLS,
    max_cells: int = MAX_TRAINING_CELLS,
    seed: int = 0,
) -> np.ndarray:
    """Indices of the training cells: for every type code ``0 ≤ t < n_types`` in ``labels`` (−1:
    not a training cell) with at least ``min_cells`` cells, all of them or a seeded random
    ``max_cells`` of them; sorted."""
    rng = np.random.default_rng(seed)
    chosen = []
    for code in range(n_types):
        cells = np.flatnonzero(labels == code)
        if cells.size < min_cells:
            continue
        if cells.size > max_cells:
            cells = rng.choice(cells, size=max_cells, replace=False)
        chosen.append(cells)
    return np.sort(np.concatenate(chosen)) if chosen else np.zeros(0, dtype=np.int64)


def refine_calls(
    features: Callable[[np.ndarray], np.ndarray],
    labels: np.ndarray,
    candidates: np.ndarray,
    allowed: np.ndarray,
    *,
    min_probability: float = MIN_PROBABILITY,
    seed: int = 0,
) -> tuple[np.ndarray, np.ndarray]:
    """Types for ``candidates`` from a classifier trained on the cells with a type.

    ``features(cells)`` returns the (cells × genes) expression of those cell indices;
    ``labels`` holds each cell's type code (−1: no type, not used for training); ``candidates``
    (indices) are the cells to type; ``allowed`` (cells × types booleans) the types each cell may
    take. The model: genes standardised by the training cells' mean and standard deviation
    (0 → 1), clipped to ±:data:`MAX_VALUE`; multinomial logistic regression (L2, ``C`` =
    :data:`C`, lbfgs) on :func:`training_cells` (``seed``). A candidate gets the allowed type of
    highest probability ``p`` when ``p ≥ min_probability``.

    Returns ``(codes, probability)`` over ``candidates``: the type code (−1: none) and its
    probability (0 when none). Fewer than two learnable types: nothing is predicted.
    """
    from sklearn.linear_model import LogisticRegression

    candidates = np.asarray(candidates, dtype=np.int64)
    codes = np.full(candidates.size, -1, dtype=np.int64)
    probability = np.zeros(candidates.size)
    train = training_cells(labels, allowed.shape[1], seed=seed)
    classes = np.unique(labels[train])
    if classes.size < 2 or candidates.size == 0:
        return codes, probability
    x = features(train)
    mean = x.mean(axis=0)
    sd = x.std(axis=0)
    sd[sd == 0] = 1.0
    model = LogisticRegression(C=C, max_iter=1000)
    # in the C order the fit copies its input to, written once; ``x`` freed before the fit
    z = _standardised(x, mean, sd, order="C")
    del x
    model.fit(z, labels[train])
    del z
    for start in range(0, candidates.size, BLOCK_CELLS):
        block = slice(start, start + BLOCK_CELLS)
        cells = candidates[block]
        p = model.predict_proba(_standardised(features(cells), mean, sd))
        p_allowed = np.where(allowed[np.ix_(cells, model.classes_)], p, -1.0)
        pick = np.argmax(p_allowed, axis=1)
        best = p_allowed[np.arange(cells.size), pick]
        accept = best >= min_probability
        codes[block] = np.where(accept, model.classes_[pick], -1)
        probability[block] = np.where(accept, best, 0.0)
    return codes, probability


def _standardised(x: np.ndarray, mean: np.ndarray, sd: np.ndarray, order: str = "K") -> np.ndarray:
    """``clip((x − mean) / sd, ±MAX_VALUE)`` in one new array of memory layout ``order``
    (numpy's; ``"K"``: ``x``'s, as the whole expression gives), ``x`` left as it is: the same
    operations per value as the whole expression, with one block-sized temporary instead of
    three (~100 MB each for a block of candidates at a million cells)."""
    out = np.subtract(x, mean, order=order)
    np.divide(out, sd, out=out)
    return np.clip(out, -MAX_VALUE, MAX_VALUE, out=out)
