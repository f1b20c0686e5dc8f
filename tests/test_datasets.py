import pickle

import dask
import numpy as np
import pytest

from elastic_nb.datasets import (
    load_npy,
    load_parquet,
    load_zarr,
    make_classification,
    make_regression,
    make_xor,
)


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


def test_make_classification_and_xor():
    X, y, coef = make_classification(2000, 3, chunks=500, random_state=1)
    Xx, yx = make_xor(1000, chunks=300, noise=0.0)
    with dask.config.set(scheduler="sync"):
        labels = y.compute()
        corners, xor_labels = dask.compute(Xx, yx)
    assert set(np.unique(labels)) == {0.0, 1.0} and 0.2 < labels.mean() < 0.8
    np.testing.assert_array_equal(xor_labels, np.logical_xor(*corners.T.astype(bool)))


@pytest.fixture
def table():
    return np.arange(60.0).reshape(20, 3)


def test_load_npy_reads_rows_on_the_workers(tmp_path, table):
    np.save(tmp_path / "t.npy", table)
    X = load_npy(tmp_path / "t.npy", chunk_rows=6)
    assert X.chunks == ((6, 6, 6, 2), (3,))
    assert len(pickle.dumps(dict(X.__dask_graph__()))) < 5_000  # a path, not the data
    with dask.config.set(scheduler="sync"):
        np.testing.assert_array_equal(X.compute(), table)
    with pytest.raises(FileNotFoundError, match="no .npy file"):
        load_npy(tmp_path / "missing.npy")


def test_load_zarr_rechunks_to_whole_rows(tmp_path, table):
    import zarr

    stored = zarr.open(
        str(tmp_path / "t.zarr"), mode="w", shape=table.shape, chunks=(5, 1), dtype="f8"
    )
    stored[:] = table
    X = load_zarr(tmp_path / "t.zarr", chunk_rows=8)
    assert X.chunks == ((8, 8, 4), (3,))
    with dask.config.set(scheduler="sync"):
        np.testing.assert_array_equal(X.compute(), table)


def test_load_parquet_splits_features_and_target(tmp_path, table):
    import pandas as pd

    pd.DataFrame(table, columns=["a", "b", "t"]).to_parquet(tmp_path / "t.parquet")
    X, y = load_parquet(tmp_path / "t.parquet", target="t")
    with dask.config.set(scheduler="sync"):
        np.testing.assert_array_equal(X.compute(), table[:, :2])
        np.testing.assert_array_equal(y.compute(), table[:, 2])
    with pytest.raises(ValueError, match="target column 'price' is not in"):
        load_parquet(tmp_path / "t.parquet", target="price")
    with pytest.raises(ValueError, match=r"feature columns \['z'\] are not in"):
        load_parquet(tmp_path / "t.parquet", target="t", features=["a", "z"])
