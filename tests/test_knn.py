"""The cell-type step's kNN graph: exact up to ``EXACT_MAX_CELLS`` cells, nearest-neighbour
descent above."""

import numpy as np
from sklearn.neighbors import NearestNeighbors

from seedsoil.interpret.knn import neighbour_index


def _clustered(n_cells: int, seed: int = 0) -> np.ndarray:
    """Cells around 8 cell-type centres in a 20-dimensional score space, as identity scores are."""
    rng = np.random.default_rng(seed)
    centres = rng.normal(0.0, 3.0, size=(8, 20))
    return centres[rng.integers(8, size=n_cells)] + rng.normal(0.0, 1.0, size=(n_cells, 20))


def _exact(embedding: np.ndarray, k: int) -> np.ndarray:
    found = NearestNeighbors(n_neighbors=k + 1).fit(embedding).kneighbors(embedding)[1]
    return found[:, 1:]


def test_up_to_the_exact_limit_the_graph_is_the_exact_one():
    embedding = _clustered(500)
    assert np.array_equal(
        neighbour_index(embedding, 15, exact_max_cells=500), _exact(embedding, 15)
    )


def test_above_the_limit_the_approximate_graph_finds_nearly_all_exact_neighbours():
    embedding = _clustered(3000)
    approx = neighbour_index(embedding, 15, exact_max_cells=1000)
    exact = _exact(embedding, 15)
    recall = np.mean([len(set(a) & set(b)) / 15 for a, b in zip(approx, exact, strict=True)])
    assert approx.shape == (3000, 15)
    assert recall >= 0.95  # measured 0.99+ on this embedding


def test_the_approximate_graph_never_lists_a_cell_as_its_own_neighbour():
    embedding = _clustered(2000)
    embedding[1] = embedding[0]  # a duplicate row may be found before the cell itself
    approx = neighbour_index(embedding, 15, exact_max_cells=100)
    assert not (approx == np.arange(2000)[:, None]).any()
    assert all(len(set(row)) == 15 for row in approx)


def test_the_approximate_graph_is_the_same_on_every_run():
    embedding = _clustered(2000)
    first = neighbour_index(embedding, 15, exact_max_cells=100)
    assert np.array_equal(first, neighbour_index(embedding, 15, exact_max_cells=100))
