"""CTC calls on full-length (Smart-seq2-like) data: the benchmark's full-length arm in small.

Built in code from shipped real data (benchmarks/ctc_spikein.py, ``full_length_cells``): the
Smart-seq2 oligodendroglioma's microglia/macrophages are the leukocytes (thinned so the tumour
cells detect 2.5× their genes), its malignant cells carry a Hydro-Seq epithelial cell's
EPCAM/keratin/E-cadherin programme transplanted by rank-matching (real TPM-like values), a
third of them with a leukocyte partner. 40 tumour cells among 40 leukocytes: abundant CTCs, as
in an enriched full-length data set. With expression bins over all cells the epithelial genes'
peers are then the tumour cells' own genes and the previous rule called a fifth of them; the
blood-background null of two-marker cells calls most. Random gene sets of the signature's size
in its place must call nothing.
"""

from __future__ import annotations

import anndata as ad
import numpy as np
import pandas as pd
import pytest
from ctc_helpers import REPO, shipped_ctc_calls, spikein_benchmark

from seedsoil.datasets import BUILTINS, fetch_builtin
from seedsoil.harmonise import log_normalise
from seedsoil.interpret.ctc import (
    CTC_SIGNATURE,
    blood_background_pvalues,
    call_ctc,
    core_groups_detected,
    core_marker_groups,
)
from seedsoil.scoring import significance
from seedsoil.signatures import coverage, load_library

N_EACH = 40
N_RANDOM_SETS = 5


@pytest.fixture(scope="module")
def library():
    return load_library([REPO / "resources" / "signatures"])


@pytest.fixture(scope="module")
def cells(tmp_path_factory, library):
    bench = spikein_benchmark()
    workdir = tmp_path_factory.mktemp("full_length")
    oligo = ad.read_h5ad(
        fetch_builtin(
            "oligodendroglioma", workdir / BUILTINS["oligodendroglioma"].filename, bench.WHEELS
        )
    )
    hydro = bench.counts_of("hydroseq_ctc_enriched", workdir, counts="X")
    rng = np.random.default_rng(0)
    every = bench.full_length_cells(oligo, hydro, library, rng)
    truth = every.obs["truth"].to_numpy()
    rows = np.r_[
        rng.choice(np.flatnonzero(~truth), N_EACH, replace=False),
        rng.choice(np.flatnonzero(truth), N_EACH, replace=False),
    ]
    sample = every[rows].copy()
    sample.layers["tpm"] = sample.X.copy()
    sample.X = log_normalise(sample.X)
    return sample


@pytest.fixture(scope="module")
def leukocyte_pvalues(cells, library):
    scored = coverage(library, cells.var_names).set_index("signature")["scored"]
    leukocytes = {n: s for n, s in library.items() if n.startswith("IMM_") and scored[n]}
    return significance(cells, leukocytes, n_null=200, random_state=0)[0]


def test_the_fixture_looks_like_full_length_ctc_data(cells):
    truth = cells.obs["truth"].to_numpy()
    tpm = cells.layers["tpm"]
    assert (tpm.data != np.round(tpm.data)).mean() > 0.9  # non-integer, TPM-like
    detected = np.asarray((tpm > 0).sum(axis=1)).ravel()
    ratio = np.median(detected[truth]) / np.median(detected[~truth])
    assert 2 <= ratio <= 3  # the tumour cells detect 2–3× the leukocytes' genes
    ptprc = np.asarray(cells[:, "PTPRC"].X.todense()).ravel() > 0
    assert 0.2 <= ptprc[truth].mean() <= 0.6  # partner / own PTPRC in many tumour cells


def test_abundant_full_length_ctcs_are_called_and_leukocytes_are_not(
    cells, library, leukocyte_pvalues
):
    signature = library[CTC_SIGNATURE]
    core = core_marker_groups(signature)
    truth = cells.obs["truth"].to_numpy()
    called = shipped_ctc_calls(cells, signature, leukocyte_pvalues, core)[
        "ctc_candidate"
    ].to_numpy()
    before = shipped_ctc_calls(cells, signature, leukocyte_pvalues, core, background=False)
    assert called[~truth].sum() == 0
    assert called[truth].mean() >= 0.6
    assert before["ctc_candidate"].to_numpy()[truth].mean() < called[truth].mean()


def test_random_gene_sets_as_the_ctc_signature_give_no_full_length_calls(
    cells, library, leukocyte_pvalues
):
    core = core_marker_groups(library[CTC_SIGNATURE])
    size = len([g for g in library[CTC_SIGNATURE].up if g in cells.var_names])
    rng = np.random.default_rng(11)
    for k in range(N_RANDOM_SETS):
        random_set = list(rng.choice(cells.var_names, size, replace=False))
        calls = shipped_ctc_calls(cells, random_set, leukocyte_pvalues, core, random_state=k)
        assert calls["ctc_candidate"].sum() == 0, f"random set {k} {random_set} called"


def test_the_leukocyte_matched_p_value_replaces_only_that_of_two_marker_cells():
    import scipy.sparse as sp

    # cell 0: EPCAM and KRT8 (two core groups); cell 1: KRT8 only; cells 2-3: no marker
    X = sp.csr_matrix(np.array([[1.0, 2.0], [0.0, 2.0], [0.0, 0.0], [0.0, 0.0]]))
    cells = ad.AnnData(X, var=pd.DataFrame(index=["EPCAM", "KRT8"]))
    cells.obs_names = [f"c{i}" for i in range(4)]
    pvalues = pd.DataFrame({CTC_SIGNATURE: 0.5}, index=cells.obs_names)
    background = np.full(4, 1e-4)
    with_background = call_ctc(cells, pvalues, pvalues, background=background)
    assert with_background["ctc_candidate"].tolist() == [True, False, False, False]
    assert not call_ctc(cells, pvalues, pvalues)["ctc_candidate"].any()


def test_no_leukocyte_matched_null_without_ten_leukocytes(cells, library):
    signature = library[CTC_SIGNATURE]
    k = core_groups_detected(cells, core_marker_groups(signature))
    few = np.zeros(cells.n_obs, bool)
    few[np.flatnonzero(~cells.obs["truth"].to_numpy())[:9]] = True
    assert blood_background_pvalues(cells, signature, k, few) is None
