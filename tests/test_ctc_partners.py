"""A CTC whose barcode carries two platelet glycoproteins is flagged as a CTC–platelet cluster
even when the platelet programme cannot be tested (a panel without most platelet genes)."""

import anndata as ad
import numpy as np
import pandas as pd
import scipy.sparse as sp

from seedsoil.interpret.clusters import flag_heterotypic

PLATELET_CORE = {"IMM_platelet": (("PPBP",), ("PF4",), ("ITGA2B",), ("GP1BA", "GP9"))}
CELLS = ["ctc_two_markers", "ctc_one_marker", "ctc_none", "blood_two_markers"]


def _expression():
    # columns ITGA2B, GP1BA: a CTC with both, a CTC with one, a CTC with none, a non-CTC with both
    x = np.array([[1.0, 2.0], [1.0, 0.0], [0.0, 0.0], [1.0, 1.0]])
    return ad.AnnData(
        sp.csr_matrix(x), obs=pd.DataFrame(index=CELLS), var=pd.DataFrame(index=["ITGA2B", "GP1BA"])
    )


def _flags(partner_core=PLATELET_CORE):
    fdr = pd.DataFrame({"CTC_epithelial_identity": 0.5, "IMM_platelet": 0.6}, index=CELLS)
    ctc_class = pd.Series(["CTC", "CTC", "CTC", ""], index=CELLS)
    return flag_heterotypic(
        pd.DataFrame(index=CELLS), fdr, ctc_class=ctc_class, expression=_expression(),
        partner_core=partner_core,
    )["heterotypic_cluster"]  # fmt: skip


def test_two_platelet_core_groups_on_a_ctc_make_it_a_ctc_platelet_cluster():
    assert _flags().tolist() == ["CTC-platelet", "", "", ""]


def test_without_the_partner_core_only_the_programme_decides():
    assert _flags(partner_core=None).tolist() == ["", "", "", ""]
