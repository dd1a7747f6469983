"""Negative control of the CTC calls: random gene sets in place of CTC_epithelial_identity give
no CTC candidate on real data (the Hydro-Seq CTC-enriched panel sample, the demo's UMI blood, and
the spiked-in benchmark mixture of the two).

A random set has the CTC signature's number of present genes and the leukocyte programmes and the
shipped signature's declared core marker groups stay as shipped, so the marker-positive test
family (BH over the cells detecting a core marker), the core-marker rule and the leukocyte
evidence are exercised exactly as in a real run; only the programme is meaningless. On the
Hydro-Seq sample the family holds its hundreds of real keratin/EPCAM-positive cells, so this is
the case where filtering before BH could let a meaningless programme through. The programme gets the pipeline's default
1,000 null signatures (p-value floor 1/1001: with fewer, BH could not reach 0.05 at all on these
few hundred cells and the control would be vacuous); the leukocyte programmes 200. A call needs
FDR ≤ 0.05 *and* a detected core marker, so any call is a failure. The calls are the shipped
rule's, cells with two core marker groups tested against the blood-background null included.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from ctc_helpers import REPO, shipped_ctc_calls, spikein_benchmark

from seedsoil.interpret.ctc import (
    CTC_SIGNATURE,
    call_ctc,
    core_marker_groups,
)
from seedsoil.scoring import significance
from seedsoil.scoring.null import benjamini_hochberg
from seedsoil.signatures import load_library

N_RANDOM_SETS = 5


@pytest.fixture(scope="module")
def samples(tmp_path_factory):
    bench = spikein_benchmark()
    workdir = tmp_path_factory.mktemp("negative_control")
    hydro = bench.counts_of("hydroseq_ctc_enriched", workdir, counts="X")
    blood = bench.counts_of("celltypist_sample", workdir, counts="X")
    rng = np.random.default_rng(0)
    tumour = hydro[bench.epithelial_pool(hydro)[:40]]
    return {
        "hydroseq": hydro[hydro.obs["n_genes"].to_numpy() >= 200].copy(),
        "celltypist_sample": blood,
        "spike-in": bench.mixture(blood, tumour, list(blood.var_names), 1.0, rng),
    }


@pytest.fixture(scope="module")
def library():
    return load_library([REPO / "resources" / "signatures"])


@pytest.fixture(scope="module")
def leukocyte_pvalues(samples, library):
    leukocytes = {n: s for n, s in library.items() if n.startswith("IMM_")}
    return {
        name: significance(cells, leukocytes, n_null=200, random_state=0)[0]
        for name, cells in samples.items()
    }


@pytest.mark.parametrize("name", ["hydroseq", "celltypist_sample", "spike-in"])
def test_random_gene_sets_as_the_ctc_signature_give_no_calls(
    samples, library, leukocyte_pvalues, name
):
    cells = samples[name]
    size = len([g for g in library[CTC_SIGNATURE].up if g in cells.var_names])
    rng = np.random.default_rng(11)
    for k in range(N_RANDOM_SETS):
        random_set = list(rng.choice(cells.var_names, size, replace=False))
        core = core_marker_groups(library[CTC_SIGNATURE])
        calls = shipped_ctc_calls(cells, random_set, leukocyte_pvalues[name], core, random_state=k)
        assert calls["ctc_candidate"].sum() == 0, f"{name}: random set {k} {random_set} called"


def test_the_shipped_ctc_signature_does_call_on_the_spike_in(samples, library, leukocyte_pvalues):
    """The control above is not vacuous: the real signature calls planted tumour cells."""
    cells = samples["spike-in"]
    signature = library[CTC_SIGNATURE]
    calls = shipped_ctc_calls(
        cells, signature, leukocyte_pvalues["spike-in"], core_marker_groups(signature)
    )
    called = calls["ctc_candidate"].to_numpy()
    truth = cells.obs["truth"].to_numpy()
    assert called.sum() > 0 and called[~truth].sum() == 0


def test_a_ctc_alone_among_the_blood_is_called_as_in_a_crowd(samples, library, leukocyte_pvalues):
    """Prevalence: each tumour cell the 40-cell spike-in calls is still called when it is the
    only one among the 559 blood cells (0.2 %), from the same per-cell p-values. With BH over
    every cell this failed: one CTC needed p ≤ 0.05 / 560."""
    cells = samples["spike-in"]
    signature = library[CTC_SIGNATURE]
    core = core_marker_groups(signature)
    ctc_p, _ = significance(cells, {CTC_SIGNATURE: signature}, n_null=1000, random_state=0)
    pvalues = pd.concat([ctc_p, leukocyte_pvalues["spike-in"]], axis=1)

    def called(rows):
        p = pvalues.iloc[rows]
        fdr = p.apply(lambda column: benjamini_hochberg(column.to_numpy()))
        return call_ctc(cells[rows], p, fdr, core=core)["ctc_candidate"].to_numpy()

    truth = cells.obs["truth"].to_numpy()
    blood, tumour = np.flatnonzero(~truth), np.flatnonzero(truth)
    in_crowd = tumour[called(np.arange(cells.n_obs))[tumour]]
    assert in_crowd.size >= 20
    alone = [called(np.r_[blood, t])[-1] for t in in_crowd]
    assert all(alone)
