"""Estimator conventions and input validation (numpy and dask input)."""

import dask
import dask.array as da
import numpy as np
import pytest
from sklearn.base import clone

from elastic_nb import LinearRegression
from elastic_nb.datasets import make_regression


@pytest.fixture(autouse=True)
def threaded_scheduler():
    with dask.config.set(scheduler="threads"):
        yield


@pytest.fixture
def data():
    X, y, coef = make_regression(3000, 4, chunks=1000, noise=0.01, bias=1.0)
    return X, y, coef


def test_fit_returns_self_and_sets_fitted_attributes(data):
    X, y, coef = data
    model = LinearRegression()
    assert model.fit(X, y) is model
    np.testing.assert_allclose(model.coef_, coef, atol=1e-2)
    assert model.intercept_ == pytest.approx(1.0, abs=1e-2)
    assert model.n_features_in_ == 4 and model.n_iter_ == 1


def test_predict_and_score_on_numpy_and_dask(data):
    X, y, _ = data
    model = LinearRegression().fit(X, y)
    lazy = model.predict(X)
    assert isinstance(lazy, da.Array)
    eager = model.predict(X.compute())
    assert isinstance(eager, np.ndarray)
    np.testing.assert_allclose(lazy.compute(), eager)
    assert model.score(X.compute(), y.compute()) > 0.999


def test_numpy_and_dask_input_give_the_same_model(data):
    X, y, _ = data
    on_dask = LinearRegression().fit(X, y)
    on_numpy = LinearRegression().fit(X.compute(), y.compute())
    np.testing.assert_allclose(on_dask.coef_, on_numpy.coef_, rtol=1e-10)


def test_params_round_trip_and_clone():
    model = LinearRegression(solver="gd", max_iter=7, tol=1e-3, learning_rate=0.1)
    assert model.get_params()["max_iter"] == 7
    assert clone(model).get_params() == model.get_params()
    assert model.set_params(solver="normal").solver == "normal"


@pytest.mark.parametrize(
    ("params", "error", "match"),
    [
        ({"solver": "lbfgs"}, ValueError, "solver must be one of"),
        ({"max_iter": 0}, ValueError, "max_iter must be >= 1"),
        ({"max_iter": 2.5}, TypeError, "max_iter must be an integer"),
        ({"tol": -1.0}, ValueError, "tol must be >= 0"),
        ({"learning_rate": 0.0}, ValueError, "learning_rate must be > 0"),
        ({"learning_rate": -0.1}, ValueError, "learning_rate must be > 0"),
        ({"learning_rate": "fast"}, TypeError, "learning_rate must be a number"),
        ({"callback": 3}, TypeError, "callback must be callable"),
    ],
)
def test_bad_parameters_are_rejected_before_any_work(data, params, error, match):
    X, y, _ = data
    calls = []
    X = X.map_blocks(lambda block: calls.append(1) or block, meta=np.empty((0, 0)))
    with pytest.raises(error, match=match):
        LinearRegression(**params).fit(X, y)
    assert calls == []


@pytest.mark.parametrize("as_dask", [True, False])
def test_mismatched_rows_name_both_lengths(as_dask):
    X, y = np.ones((10, 2)), np.ones(9)
    if as_dask:
        X, y = da.from_array(X, chunks=5), da.from_array(y, chunks=5)
    with pytest.raises(ValueError, match=r"(10.*9|inconsistent numbers of samples)"):
        LinearRegression().fit(X, y)


@pytest.mark.parametrize("as_dask", [True, False])
def test_one_dimensional_X_is_rejected(as_dask):
    X, y = np.ones(10), np.ones(10)
    if as_dask:
        X, y = da.from_array(X, chunks=5), da.from_array(y, chunks=5)
    with pytest.raises(ValueError, match="2-?D"):
        LinearRegression().fit(X, y)


@pytest.mark.parametrize("as_dask", [True, False])
@pytest.mark.parametrize("which", ["X", "y"])
def test_text_dtypes_are_a_type_error(as_dask, which):
    X, y = np.ones((6, 2)), np.ones(6)
    if which == "X":
        X = X.astype(str)
    else:
        y = y.astype(str)
    if as_dask:
        X, y = da.from_array(X, chunks=3), da.from_array(y, chunks=3)
    with pytest.raises(TypeError, match=f"{which} must hold real numbers"):
        LinearRegression().fit(X, y)


def test_empty_dask_input_is_rejected():
    X, y = da.zeros((0, 3), chunks=1), da.zeros(0, chunks=1)
    with pytest.raises(ValueError, match="empty"):
        LinearRegression().fit(X, y)


def test_predict_checks_feature_count(data):
    X, y, _ = data
    model = LinearRegression().fit(X, y)
    with pytest.raises(ValueError, match="features"):
        model.predict(X[:, :3])
    with pytest.raises(ValueError, match="features"):
        model.predict(np.ones((2, 3)))
