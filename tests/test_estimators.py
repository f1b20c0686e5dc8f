"""Estimators against numpy and scikit-learn references, on chunked data."""

import warnings

import dask
import dask.array as da
import dask.dataframe as dd
import numpy as np
import pandas as pd
import pytest
from distributed import get_task_stream
from sklearn.linear_model import LogisticRegression as SklearnLogistic
from sklearn.linear_model import Ridge
from sklearn.metrics import log_loss
from sklearn.utils.estimator_checks import parametrize_with_checks

from elastic_nb import (
    LinearRegression,
    LogisticRegression,
    MLPClassifier,
    MLPRegressor,
    datasets,
    engine,
    families,
    linear,
)


@pytest.fixture
def threaded():
    with dask.config.set(scheduler="threads"):
        yield


def lstsq(X, y, fit_intercept=True):
    X, y = np.asarray(X), np.asarray(y)
    design = np.c_[X, np.ones(len(X))] if fit_intercept else X
    theta = np.linalg.lstsq(design, y, rcond=-1)[0]  # rcond=-1: no truncation
    return (theta[:-1], theta[-1]) if fit_intercept else (theta, 0.0)


# ----------------------------------------------------------------- exact solvers
@pytest.mark.parametrize("solver", ["normal", "tsqr", "auto"])
@pytest.mark.parametrize("fit_intercept", [True, False])
@pytest.mark.parametrize("chunks", [1000, 777])
def test_exact_solvers_match_lstsq(threaded, solver, fit_intercept, chunks):
    X, y, _ = datasets.make_regression(10_003, 7, chunks=chunks, noise=0.5, bias=3.0)
    coef, intercept = lstsq(X, y, fit_intercept)
    model = LinearRegression(solver=solver, fit_intercept=fit_intercept).fit(X, y)
    np.testing.assert_allclose(model.coef_, coef, rtol=1e-8, atol=1e-12)
    assert model.intercept_ == pytest.approx(intercept, rel=1e-8, abs=1e-12)


def ill_conditioned(condition, rows=20_000, features=6, seed=0):
    """A consistent system y = X w + 0.7 whose X has the given condition number."""
    rng = np.random.default_rng(seed)
    u, _ = np.linalg.qr(rng.standard_normal((rows, features)))
    v, _ = np.linalg.qr(rng.standard_normal((features, features)))
    X = u @ np.diag(np.logspace(0, -np.log10(condition), features)) @ v.T
    coef = rng.standard_normal(features)
    return X, X @ coef + 0.7, coef


def test_tsqr_is_accurate_where_the_normal_equations_fail():
    X, y, coef = ill_conditioned(1e10)
    Xd, yd = da.from_array(X, chunks=3000), da.from_array(y, chunks=3000)
    reference_error = np.max(np.abs(lstsq(X, y)[0] - coef))
    tsqr = LinearRegression(solver="tsqr").fit(Xd, yd)
    assert np.max(np.abs(tsqr.coef_ - coef)) <= 10 * reference_error
    with pytest.warns(RuntimeWarning, match="condition number"):
        normal = LinearRegression(solver="normal").fit(Xd, yd)
    assert np.max(np.abs(normal.coef_ - coef)) > 100 * np.max(np.abs(tsqr.coef_ - coef))
    with pytest.warns(RuntimeWarning, match="switching to solver='tsqr'"):
        auto = LinearRegression(solver="auto").fit(Xd, yd)
    assert auto.solver_ == "tsqr"
    np.testing.assert_array_equal(auto.coef_, tsqr.coef_)


def test_auto_stays_on_normal_equations_for_well_conditioned_data(threaded):
    X, y, _ = datasets.make_regression(5000, 5, chunks=1000)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert LinearRegression().fit(X, y).solver_ == "normal"


@pytest.mark.parametrize("solver", ["normal", "tsqr"])
def test_underdetermined_input_gives_minimum_norm_with_warning(solver):
    rng = np.random.default_rng(3)
    X, y = rng.standard_normal((5, 12)), rng.standard_normal(5)
    with pytest.warns(RuntimeWarning, match="minimum-norm"):
        model = LinearRegression(solver=solver, fit_intercept=False).fit(
            da.from_array(X, chunks=2), da.from_array(y, chunks=2)
        )
    np.testing.assert_allclose(model.coef_, np.linalg.pinv(X) @ y, atol=1e-8)


@pytest.mark.parametrize("solver", ["normal", "tsqr", "gd"])
def test_ridge_matches_sklearn(threaded, solver):
    X, y, _ = datasets.make_regression(4000, 6, chunks=900, noise=2.0, bias=1.0)
    Xn, yn = dask.compute(X, y)
    reference = Ridge(alpha=50.0).fit(Xn, yn)
    model = LinearRegression(solver=solver, alpha=50.0, max_iter=500, tol=1e-10).fit(X, y)
    np.testing.assert_allclose(model.coef_, reference.coef_, rtol=1e-7, atol=1e-9)
    assert model.intercept_ == pytest.approx(reference.intercept_, abs=1e-7)


@pytest.mark.parametrize(("solver", "tolerance"), [("sgd", 1e-4), ("adam", 1e-3)])
def test_first_order_solvers_reach_the_exact_solution(threaded, solver, tolerance):
    X, y, _ = datasets.make_regression(6000, 5, chunks=1000, noise=0.3, bias=-1.0)
    exact = LinearRegression(solver="normal").fit(X, y)
    model = LinearRegression(solver=solver, max_iter=3000, tol=1e-10).fit(X, y)
    assert np.max(np.abs(model.coef_ - exact.coef_)) < tolerance
    assert abs(model.intercept_ - exact.intercept_) < tolerance


def test_mini_batch_sgd_draws_chunks_reproducibly(threaded):
    X, y, _ = datasets.make_regression(8000, 4, chunks=500, noise=0.1)
    first = LinearRegression(solver="sgd", batch_chunks=4, max_iter=200).fit(X, y)
    second = LinearRegression(solver="sgd", batch_chunks=4, max_iter=200).fit(X, y)
    np.testing.assert_array_equal(first.coef_, second.coef_)
    exact = LinearRegression().fit(X, y)
    assert np.max(np.abs(first.coef_ - exact.coef_)) < 0.05


# ---------------------------------------------------------------- classification
@pytest.fixture
def classification():
    X, y, _ = datasets.make_classification(6000, 5, chunks=1100, bias=0.4, scale=1.5)
    with dask.config.set(scheduler="threads"):
        return dask.compute(X, y)


@pytest.mark.parametrize("C", [1.0, 0.05])
def test_logistic_newton_matches_sklearn(classification, C):
    Xn, yn = classification
    reference = SklearnLogistic(C=C, tol=1e-10, max_iter=1000).fit(Xn, yn)
    model = LogisticRegression(C=C).fit(da.from_array(Xn, chunks=1100), yn)
    np.testing.assert_allclose(model.coef_, reference.coef_, atol=1e-3)
    np.testing.assert_allclose(model.intercept_, reference.intercept_, atol=1e-3)
    np.testing.assert_allclose(model.predict_proba(Xn), reference.predict_proba(Xn), atol=1e-4)
    scores = model.decision_function(da.from_array(Xn, chunks=1100)).compute()
    np.testing.assert_allclose(scores, reference.decision_function(Xn), atol=1e-2)


@pytest.mark.parametrize("solver", ["gd", "adam"])
def test_logistic_first_order_solvers_approach_the_optimum(classification, solver):
    Xn, yn = classification
    optimum = LogisticRegression(solver="newton").fit(Xn, yn)
    model = LogisticRegression(solver=solver, max_iter=3000, tol=1e-9).fit(Xn, yn)
    best = log_loss(yn, optimum.predict_proba(Xn))
    assert log_loss(yn, model.predict_proba(Xn)) - best < 1e-4


def test_classifier_labels_are_kept(classification):
    Xn, yn = classification
    labels = np.where(yn > 0, "spam", "ham")
    model = LogisticRegression().fit(Xn, labels)
    assert list(model.classes_) == ["ham", "spam"]
    assert set(model.predict(Xn)) <= {"ham", "spam"}
    lazy = model.predict(da.from_array(Xn, chunks=1000)).compute()
    np.testing.assert_array_equal(lazy, model.predict(Xn))


def test_mlp_classifier_learns_xor():
    X = np.array([[0, 0], [0, 1], [1, 0], [1, 1]], dtype=float)
    y = np.array([0, 1, 1, 0])
    model = MLPClassifier(
        hidden_layer_sizes=(4,), activation="sigmoid", learning_rate=0.1, max_iter=3000, tol=0
    ).fit(X, y)
    np.testing.assert_array_equal(model.predict(X), y)


def test_mlp_classifier_learns_xor_on_chunked_data(threaded):
    X, y = datasets.make_xor(2000, chunks=400, noise=0.1)
    model = MLPClassifier(
        hidden_layer_sizes=(8,), activation="tanh", learning_rate=0.05, max_iter=500, tol=0
    ).fit(X, y)
    assert model.score(*dask.compute(X, y)) == 1.0


def test_mlp_regressor_beats_a_linear_model_on_a_nonlinear_target(threaded):
    rng = np.random.default_rng(0)
    X = rng.uniform(-3, 3, (4000, 2))
    y = np.sin(X[:, 0]) * X[:, 1] + 0.05 * rng.standard_normal(4000)
    linear = LinearRegression().fit(X, y)
    mlp = MLPRegressor(hidden_layer_sizes=(64,), learning_rate=0.01, max_iter=600).fit(
        da.from_array(X, chunks=1000), da.from_array(y, chunks=1000)
    )
    assert mlp.score(X, y) > 0.95 > 0.1 > linear.score(X, y)


def test_two_hidden_layers_and_sgd(threaded):
    X, y, _ = datasets.make_regression(3000, 4, chunks=1000, noise=0.1)
    model = MLPRegressor(hidden_layer_sizes=(16, 8), solver="sgd", max_iter=300).fit(X, y)
    assert model.score(*dask.compute(X, y)) > 0.99


def test_mlp_gradient_matches_finite_differences():
    rng = np.random.default_rng(1)
    X, y = rng.standard_normal((30, 3)), rng.standard_normal(30)
    reduce = engine.GraphReducer(X, y)
    m = linear.moments(reduce, 3)
    net = families.Network((3, 5, 4, 1), "tanh", "identity", linear.column_scaling(m, True))
    theta = families.glorot_init(net.layer_sizes, 0)
    loss, grad = families.network_loss_grad(reduce, net, 0.1, theta)
    for i in rng.choice(len(theta), 8, replace=False):
        step = np.zeros_like(theta)
        step[i] = 1e-6
        up = families.network_loss_grad(reduce, net, 0.1, theta + step)[0]
        down = families.network_loss_grad(reduce, net, 0.1, theta - step)[0]
        assert grad[i] == pytest.approx((up - down) / 2e-6, rel=1e-5, abs=1e-8)


# ------------------------------------------------------------- input validation
def test_non_finite_values_are_counted_and_located(threaded):
    X, y, _ = datasets.make_regression(3000, 4, chunks=1000)
    Xn, yn = dask.compute(X, y)
    Xn[1717, 2], Xn[2000, 0], yn[5] = np.nan, np.inf, -np.inf
    message = r"X contains NaN or infinity: 1 NaN and 1 infinite values; .* row 1717, column 2"
    for model in [
        LinearRegression(),
        LinearRegression(solver="tsqr"),
        LinearRegression(solver="gd"),
        LogisticRegression(),
        MLPRegressor(),
    ]:
        y_in = (yn > 0) if isinstance(model, LogisticRegression) else yn
        for data in [Xn, da.from_array(Xn, chunks=1000)]:
            with pytest.raises(ValueError, match=message):
                model.fit(data, y_in)
    Xn[1717, 2], Xn[2000, 0] = 0.0, 0.0
    with pytest.raises(ValueError, match=r"y contains NaN or infinity: 0 NaN and 1 infinite"):
        LinearRegression().fit(da.from_array(Xn, chunks=1000), da.from_array(yn, chunks=1000))


@pytest.mark.parametrize("estimator", [LogisticRegression(), MLPClassifier()])
def test_binary_classifiers_reject_more_than_two_classes(estimator):
    X = np.random.default_rng(0).standard_normal((30, 2))
    with pytest.raises(ValueError, match="exactly 2 classes, got 3"):
        estimator.fit(X, np.arange(30) % 3)
    with pytest.raises(ValueError, match="only one class"):
        estimator.fit(X, np.zeros(30))


@pytest.mark.parametrize(
    ("estimator", "error", "match"),
    [
        (LogisticRegression(solver="lbfgs"), ValueError, "solver must be one of"),
        (LogisticRegression(C=0), ValueError, "C must be > 0"),
        (MLPRegressor(learning_rate=-1e-3), ValueError, "learning_rate must be > 0"),
        (MLPRegressor(hidden_layer_sizes=(8, 8, 8)), ValueError, "one or two layer widths"),
        (MLPRegressor(hidden_layer_sizes=(0,)), ValueError, r"hidden_layer_sizes\[i\] must be"),
        (MLPRegressor(activation="gelu"), ValueError, "activation must be one of"),
        (MLPClassifier(solver="newton"), ValueError, "solver must be one of"),
        (LinearRegression(alpha=-1), ValueError, "alpha must be >= 0"),
        (LinearRegression(batch_chunks=0), ValueError, "batch_chunks must be >= 1"),
    ],
)
def test_bad_parameters(estimator, error, match):
    X = np.random.default_rng(0).standard_normal((20, 2))
    with pytest.raises(error, match=match):
        estimator.fit(X, np.arange(20) % 2)


def test_dask_dataframe_input(threaded):
    frame = pd.DataFrame({"a": np.arange(100.0), "b": np.arange(100.0) ** 0.5})
    frame["t"] = 2 * frame["a"] - frame["b"] + 1
    ddf = dd.from_pandas(frame, npartitions=4)
    model = LinearRegression().fit(ddf[["a", "b"]], ddf["t"])
    np.testing.assert_allclose(model.coef_, [2.0, -1.0], atol=1e-8)


# -------------------------------------------------------------------- real cluster
def test_per_worker_fast_path_is_exact_and_deterministic(cluster):
    X, y, _ = datasets.make_regression(30_000, 5, chunks=1000, bias=1.0)
    X, y = cluster.client.persist([X, y])
    reducer = engine.make_reducer(X, y)
    assert isinstance(reducer, engine.PersistedReducer) and reducer.n_chunks == 30
    kernel = linear.moments_kernel
    first, second = reducer(kernel, size=13), reducer(kernel, size=13)
    np.testing.assert_array_equal(first, second)
    np.testing.assert_allclose(first, engine.GraphReducer(X, y)(kernel, size=13), rtol=1e-12)
    gd = LinearRegression(solver="gd", max_iter=30, tol=0).fit(X, y)
    again = LinearRegression(solver="gd", max_iter=30, tol=0).fit(X, y)
    np.testing.assert_array_equal(gd.coef_, again.coef_)


def test_classifier_on_the_cluster_uses_persisted_labels(cluster):
    X, y, _ = datasets.make_classification(20_000, 4, chunks=2500)
    X, y = cluster.client.persist([X, y])
    with get_task_stream(cluster.client) as stream:
        model = LogisticRegression().fit(X, y)
    names = {str(task["key"]).split("-")[0] for task in stream.data}
    # the labels were encoded lazily from y: the fit put them next to X and ran per worker
    # (one task per group of chunks), not through a graph over the chunks (_stacked)
    assert "_per_chunk" in names and "_stacked" not in names, names
    local = LogisticRegression().fit(*cluster.client.compute([X, y], sync=True))
    np.testing.assert_allclose(model.coef_, local.coef_, rtol=1e-9)


@pytest.mark.parametrize("labels", [(3, 7), (False, True), (0.0, 1.0)])
def test_labels_of_persisted_data_are_found_and_encoded_as_in_memory(cluster, labels):
    X, y01, _ = datasets.make_classification(20_000, 4, chunks=2500, random_state=2)
    y = da.where(y01 > 0, labels[1], labels[0]).astype(np.asarray(labels).dtype)
    X, y = cluster.client.persist([X, y])
    model = LogisticRegression().fit(X, y)
    assert model.classes_.tolist() == list(labels)
    Xn, yn = cluster.client.compute([X, y], sync=True)
    local = LogisticRegression().fit(Xn, yn)  # in memory: np.unique, then y == classes[1]
    np.testing.assert_allclose(model.coef_, local.coef_, rtol=1e-9)
    np.testing.assert_array_equal(model.predict(Xn), local.predict(Xn))


def test_persisted_labels_of_one_or_three_classes_are_refused(cluster):
    X, y01, _ = datasets.make_classification(6_000, 3, chunks=1500, random_state=2)
    X, three, one = cluster.client.persist([X, y01 + (X[:, 0] > 1), y01 * 0])
    with pytest.raises(ValueError, match="exactly 2 classes, got 3"):
        LogisticRegression().fit(X, three)
    with pytest.raises(ValueError, match="only one class"):
        LogisticRegression().fit(X, one)


# --------------------------------------------------------- scikit-learn's checks
@parametrize_with_checks(
    [
        LinearRegression(),
        LinearRegression(solver="gd"),
        LogisticRegression(),
        MLPRegressor(max_iter=50),
        MLPClassifier(max_iter=50),
    ]
)
@pytest.mark.filterwarnings("ignore::sklearn.exceptions.ConvergenceWarning")
def test_sklearn_estimator_checks(estimator, check):
    check(estimator)
