"""``seedsoil.cellfile.read_annotations`` holds obs' repeated strings once: same values."""

import anndata as ad
import numpy as np
import pandas as pd
import scipy.sparse as sp

from seedsoil.cellfile import read_annotations, share_strings


def test_annotations_keep_their_values_with_one_object_per_distinct_string(tmp_path):
    n = 40
    obs = pd.DataFrame(
        {
            "sample": ["s1"] * 20 + ["s2"] * 20,
            "qc_reason": [""] * n,
            "n_counts": np.arange(n, dtype=np.float32),
            "cell_type": pd.Categorical(["T", "B"] * 20),
        },
        index=[f"c{i}" for i in range(n)],
    )
    path = tmp_path / "cells.h5ad"
    ad.AnnData(sp.csr_matrix((n, 3), dtype=np.float32), obs=obs).write_h5ad(path)
    read = read_annotations(path).obs
    pd.testing.assert_frame_equal(read, ad.read_h5ad(path).obs, check_exact=True)
    assert len({id(v) for v in read["sample"]}) == 2
    assert len({id(v) for v in read["qc_reason"]}) == 1


def test_object_columns_that_are_not_all_strings_are_left_as_they_are():
    frame = pd.DataFrame({"mixed": np.array([1, 1.0, True, "1"], dtype=object)})
    share_strings(frame)
    assert [type(v) for v in frame["mixed"]] == [int, float, bool, str]
    missing = pd.DataFrame({"m": np.array(["a", None, "a"], dtype=object)})
    share_strings(missing)
    assert missing["m"].tolist() == ["a", None, "a"]
