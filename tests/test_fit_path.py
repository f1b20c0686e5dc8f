"""The one iterative fit path: resume after a fit that had nothing to do, fitted
attributes only after a fit succeeds, and the panel's menus read from the estimators."""

import dask.array as da
import numpy as np
import pytest

from elastic_nb import LinearRegression, LogisticRegression, MLPClassifier, MLPRegressor
from elastic_nb.datasets import make_regression
from elastic_nb.estimators import ESTIMATORS


def fitted_attributes(model):
    return {k for k in vars(model) if k.endswith("_") and not k.startswith("_")}


@pytest.mark.parametrize("solver", ["gd", "adam"])
def test_resume_after_a_zero_first_gradient(tmp_path, solver):
    """y = 0 and centred X: the gradient at the start is zero, the fit ends before its
    first iteration, and resuming from its checkpoint must not fail (it raised IndexError
    on the empty history)."""
    rng = np.random.default_rng(0)
    X = rng.standard_normal((400, 3))
    X -= X.mean(axis=0)
    X, y = da.from_array(X, chunks=100), da.zeros(400, chunks=100)
    first = LinearRegression(solver=solver, max_iter=20).fit(X, y, checkpoint=tmp_path)
    again = LinearRegression(solver=solver, max_iter=20).fit(X, y, checkpoint=tmp_path, resume=True)
    np.testing.assert_array_equal(again.coef_, first.coef_)
    assert again.n_iter_ == first.n_iter_
    assert np.all(again.coef_ == 0) and again.intercept_ == 0


def test_gradient_descent_at_a_stationary_point_reports_iteration_zero():
    from elastic_nb import optim

    result = optim.gradient_descent(
        lambda theta: (1.0, np.zeros(2)), np.zeros(2), step=1.0, max_iter=5, tol=1e-6
    )
    assert result.converged and result.n_iter == 0 and result.state["iteration"] == 0


@pytest.mark.filterwarnings("ignore:overflow encountered:RuntimeWarning")
def test_a_failed_fit_sets_no_fitted_attributes():
    X, y, _ = make_regression(2000, 3, chunks=500)
    model = LinearRegression(solver="gd", learning_rate=50.0, max_iter=2000)
    with pytest.raises(FloatingPointError):
        model.fit(X, y)
    assert fitted_attributes(model) == set()


@pytest.mark.filterwarnings("ignore:overflow encountered:RuntimeWarning")
def test_a_failed_refit_keeps_the_last_successful_fit():
    X, y, _ = make_regression(2000, 3, chunks=500)
    model = LinearRegression(solver="gd", max_iter=200).fit(X, y)
    before = {k: np.copy(v) if isinstance(v, np.ndarray) else v for k, v in vars(model).items()}
    model.set_params(learning_rate=50.0, max_iter=2000)
    with pytest.raises(FloatingPointError):
        model.fit(X[:, :2], y)  # other data: n_features_in_ would change
    assert fitted_attributes(model) == {k for k in before if k.endswith("_")}
    assert model.n_features_in_ == 3
    np.testing.assert_array_equal(model.coef_, before["coef_"])


@pytest.mark.parametrize("estimator", [LogisticRegression, MLPClassifier])
def test_a_classifier_given_three_classes_sets_nothing(estimator):
    X = np.random.default_rng(1).standard_normal((90, 2))
    y = np.repeat([0, 1, 2], 30)
    model = estimator(max_iter=5)
    with pytest.raises(ValueError, match="exactly 2 classes"):
        model.fit(X, y)
    assert fitted_attributes(model) == set()


def test_the_panel_menus_are_the_estimators_own_lists():
    from elastic_nb.ui.controls import MODELS

    assert {name: model for name, (model, _) in MODELS.items()} == ESTIMATORS
    for estimator, solvers in MODELS.values():
        assert solvers == estimator._solvers
        assert estimator().solver == solvers[0]  # the default solver comes first
    assert set(ESTIMATORS.values()) == {
        LinearRegression,
        LogisticRegression,
        MLPRegressor,
        MLPClassifier,
    }
