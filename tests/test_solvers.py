"""Solvers against numpy, on chunked data (dask's threaded scheduler: no cluster needed)."""

import dask
import dask.array as da
import numpy as np
import pytest

from elastic_nb import LinearRegression, solvers
from elastic_nb.datasets import make_regression

pytestmark = pytest.mark.filterwarnings("error::sklearn.exceptions.ConvergenceWarning")


@pytest.fixture(autouse=True)
def threaded_scheduler():
    with dask.config.set(scheduler="threads"):
        yield


def lstsq(X, y, fit_intercept):
    X, y = np.asarray(X), np.asarray(y)
    design = np.c_[X, np.ones(len(X))] if fit_intercept else X
    theta = np.linalg.lstsq(design, y, rcond=None)[0]
    return (theta[:-1], theta[-1]) if fit_intercept else (theta, 0.0)


def relative_error(actual, expected):
    return np.max(np.abs(actual - expected)) / np.max(np.abs(expected))


@pytest.mark.parametrize("fit_intercept", [True, False])
@pytest.mark.parametrize("chunks", [1000, 777, (5000, 3, 5000)])
def test_normal_equations_match_lstsq(fit_intercept, chunks):
    X, y, _ = make_regression(10_003, 7, chunks=chunks, noise=0.5, bias=3.0)
    assert X.numblocks[0] >= 3
    coef, intercept = lstsq(X, y, fit_intercept)
    model = LinearRegression(solver="normal", fit_intercept=fit_intercept).fit(X, y)
    assert relative_error(model.coef_, coef) < 1e-8
    assert abs(model.intercept_ - intercept) <= 1e-8 * max(1.0, abs(intercept))
    assert model.n_iter_ == 1 and len(model.history_) == 1


@pytest.mark.parametrize("fit_intercept", [True, False])
def test_gradient_descent_converges_to_exact_solution(fit_intercept):
    X, y, _ = make_regression(20_000, 10, chunks=3000, noise=1.0, bias=-2.0)
    exact = LinearRegression(solver="normal", fit_intercept=fit_intercept).fit(X, y)
    gd = LinearRegression(solver="gd", fit_intercept=fit_intercept, max_iter=200).fit(X, y)
    assert np.max(np.abs(gd.coef_ - exact.coef_)) < 1e-4
    assert abs(gd.intercept_ - exact.intercept_) < 1e-4
    losses = [record["loss"] for record in gd.history_]
    assert all(b <= a for a, b in zip(losses, losses[1:], strict=False))  # line search: monotone
    assert losses[-1] == pytest.approx(exact.history_[0]["loss"], rel=1e-8)


@pytest.mark.parametrize("scale", [1e-3, 1e3])
def test_line_search_adapts_the_step_to_the_scale_of_the_data(scale):
    X, y, _ = make_regression(5000, 4, chunks=1000, noise=0.1)
    X = X * scale
    exact = LinearRegression(solver="normal").fit(X, y)
    gd = LinearRegression(solver="gd", max_iter=300, tol=1e-9).fit(X, y)
    assert relative_error(gd.coef_, exact.coef_) < 1e-6
    assert gd.n_iter_ < 100


def test_gradient_descent_on_a_quadratic_matches_closed_form():
    rng = np.random.default_rng(0)
    a = rng.standard_normal((6, 6))
    hessian = a @ a.T + 6 * np.eye(6)
    b = rng.standard_normal(6)

    def loss_grad(theta):
        return 0.5 * theta @ hessian @ theta - b @ theta, hessian @ theta - b

    lipschitz = np.linalg.eigvalsh(hessian).max()
    result = solvers.gradient_descent(
        loss_grad, np.zeros(6), step=1 / lipschitz, max_iter=10_000, tol=1e-12, line_search=False
    )
    assert result.converged
    np.testing.assert_allclose(result.theta, np.linalg.solve(hessian, b), rtol=1e-9)


def test_callback_stop_iteration_ends_the_fit_with_current_coefficients():
    X, y, _ = make_regression(2000, 3, chunks=500)
    seen = []

    def stop_after_three(record):
        seen.append(record)
        if record["iteration"] == 3:
            raise StopIteration

    model = LinearRegression(solver="gd", max_iter=100, callback=stop_after_three).fit(X, y)
    assert model.n_iter_ == 3 and len(seen) == 3 and len(model.history_) == 3
    assert set(seen[0]) == {"iteration", "loss", "elapsed", "n_workers", "rows"}
    assert seen[0]["rows"] == 2000
    assert np.all(np.isfinite(model.coef_))


@pytest.mark.filterwarnings("ignore:overflow encountered:RuntimeWarning")
def test_too_large_fixed_learning_rate_raises_a_clear_error():
    X, y, _ = make_regression(2000, 3, chunks=500)
    with pytest.raises(FloatingPointError, match="learning rate"):
        LinearRegression(solver="gd", learning_rate=50.0, max_iter=2000).fit(X, y)


def test_rank_deficient_input_gives_minimum_norm_solution_with_warning():
    rng = np.random.default_rng(1)
    base = rng.standard_normal((300, 3))
    X = np.c_[base, base[:, 0]]  # duplicated column: X^T X is singular
    y = base @ np.array([1.0, 2.0, 3.0])
    with pytest.warns(RuntimeWarning, match="minimum-norm"):
        model = LinearRegression(fit_intercept=False).fit(da.from_array(X, chunks=100), y)
    np.testing.assert_allclose(model.coef_, np.linalg.pinv(X) @ y, atol=1e-8)


def test_chunked_reduction_is_deterministic_and_matches_numpy():
    X, y, _ = make_regression(9000, 5, chunks=700)
    first, second = solvers.gram(X, y), solvers.gram(X, y)
    assert all(np.array_equal(a, b) for a, b in zip(first, second, strict=True))
    Xn = X.compute()
    np.testing.assert_allclose(first.xtx, Xn.T @ Xn, rtol=1e-12)
    assert first.n == 9000
