"""Shared by the CTC tests: the spike-in benchmark as a module and the shipped CTC call on
freshly computed p-values."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
from workflow_helpers import benchmark_module

from seedsoil.interpret.ctc import (
    CTC_SIGNATURE,
    blood_background_pvalues,
    call_ctc,
    core_groups_detected,
    leukocyte_programme,
)
from seedsoil.scoring import significance
from seedsoil.scoring.null import benjamini_hochberg

REPO = Path(__file__).resolve().parents[1]


def spikein_benchmark():
    """``benchmarks/ctc_spikein.py`` imported as a module (its data builders)."""
    return benchmark_module("ctc_spikein")


def shipped_ctc_calls(cells, ctc, leukocyte_p, core, random_state=0, background=True):
    """``call_ctc`` as the workflow runs it: ``ctc`` (a signature) scored against 1,000 nulls
    next to the leukocyte programmes' p-values ``leukocyte_p``, BH per column, and cells with
    two core marker groups tested against the blood-background null (``background=False``:
    every cell against the whole sample, the rule before that null)."""
    ctc_p, _ = significance(cells, {CTC_SIGNATURE: ctc}, n_null=1000, random_state=random_state)
    pvalues = pd.concat([ctc_p, leukocyte_p], axis=1)
    fdr = pvalues.apply(lambda column: benjamini_hochberg(column.to_numpy()))
    blood = (
        blood_background_pvalues(
            cells,
            ctc,
            core_groups_detected(cells, core),
            leukocyte_programme(fdr),
            n_null=1000,
            random_state=random_state,
        )
        if background
        else None
    )
    return call_ctc(cells, pvalues, fdr, core=core, background=blood)
