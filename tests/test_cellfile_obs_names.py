"""``seedsoil.cellfile.read_obs_names``: a file's cell names alone, as the whole read gives them."""

import anndata as ad
import numpy as np
import pandas as pd
import pytest
import scipy.sparse as sp

from seedsoil.cellfile import read_annotations, read_obs_names
from seedsoil.errors import InputError


def _write(path, index):
    obs = pd.DataFrame({"n_counts": np.arange(len(index), dtype=np.float32)}, index=index)
    ad.AnnData(sp.csr_matrix((len(index), 2), dtype=np.float32), obs=obs).write_h5ad(path)


def test_obs_names_equal_those_of_the_annotations(tmp_path):
    path = tmp_path / "cells.h5ad"
    _write(path, pd.Index([f"AAAC-{i}" for i in range(30)]))
    pd.testing.assert_index_equal(read_obs_names(path), read_annotations(path).obs_names)


def test_a_named_cell_index_keeps_its_name(tmp_path):
    path = tmp_path / "cells.h5ad"
    _write(path, pd.Index(["a", "b", "c"], name="barcode"))
    names = read_obs_names(path)
    pd.testing.assert_index_equal(names, read_annotations(path).obs_names)
    assert names.name == "barcode"


def test_a_file_that_is_not_h5ad_is_named(tmp_path):
    path = tmp_path / "cells.h5ad"
    path.write_bytes(b"not hdf5")
    with pytest.raises(InputError, match="cannot read .*cells.h5ad"):
        read_obs_names(path)
