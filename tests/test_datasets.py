import pickle

import dask
import numpy as np
import pytest

from elastic_nb.datasets import make_regression


def test_shapes_chunks_and_noise_free_targets():
    X, y, coef = make_regression(1050, 6, chunks=100, noise=0.0, bias=2.5)
    assert X.shape == (1050, 6) and y.shape == (1050,) and coef.shape == (6,)
    assert X.chunks[0] == (100,) * 10 + (50,) and y.chunks[0] == X.chunks[0]
    with dask.config.set(scheduler="sync"):
        Xn, yn = dask.compute(X, y)
    np.testing.assert_allclose(yn, Xn @ coef + 2.5)


def test_same_seed_same_data_and_each_chunk_stands_alone():
    X1, y1, c1 = make_regression(500, 3, chunks=64, random_state=5)
    X2, y2, c2 = make_regression(500, 3, chunks=64, random_state=5)
    with dask.config.set(scheduler="sync"):
        full = X1.compute()
        np.testing.assert_array_equal(full, X2.compute())
        np.testing.assert_array_equal(full[128:192], X1.blocks[2].compute())
        assert not np.array_equal(full, make_regression(500, 3, 64, random_state=6)[0].compute())
    np.testing.assert_array_equal(c1, c2)


def test_graph_carries_no_data():
    X, y, _ = make_regression(2_000_000, 50, chunks=100_000)
    graph_bytes = len(pickle.dumps(dict(y.__dask_graph__())))
    assert graph_bytes < 50_000  # the data itself would be 800 MB


@pytest.mark.parametrize(
    ("kwargs", "error", "match"),
    [
        ({"n_samples": 0}, ValueError, "n_samples must be >= 1"),
        ({"n_samples": -5}, ValueError, "n_samples must be >= 1"),
        ({"n_features": 1.5}, TypeError, "n_features must be an integer"),
        ({"chunks": 0}, ValueError, "chunks must be >= 1"),
        ({"chunks": (10, 10)}, ValueError, "add up to n_samples"),
        ({"chunks": "auto"}, TypeError, "chunks must be"),
        ({"noise": -1.0}, ValueError, "noise must be >= 0"),
        ({"random_state": "x"}, TypeError, "random_state must be an integer"),
    ],
)
def test_bad_arguments(kwargs, error, match):
    arguments = {"n_samples": 100, "n_features": 3, "chunks": 10, **kwargs}
    with pytest.raises(error, match=match):
        make_regression(**arguments)
