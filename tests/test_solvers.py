"""Solvers against numpy, on chunked data (dask's threaded scheduler; the per-worker
reducer on a real cluster)."""

from functools import partial

import dask
import dask.array as da
import numpy as np
import pytest
from distributed import Future

from elastic_nb import LinearRegression, engine, families, linear, optim
from elastic_nb.datasets import make_regression
from elastic_nb.engine.persisted import _per_chunk

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
    result = optim.gradient_descent(
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
    first, second = (linear.gram(engine.make_reducer(X, y), 5) for _ in range(2))
    assert all(np.array_equal(a, b) for a, b in zip(first, second, strict=True))
    Xn = X.compute()
    np.testing.assert_allclose(first.xtx, Xn.T @ Xn, rtol=1e-12)
    assert first.n == 9000


def test_kernels_summed_over_sub_blocks_equal_the_kernel_of_the_whole_chunk():
    rng, rows = np.random.default_rng(2), 2 * engine.BLOCK_ROWS + 7
    x, y = rng.standard_normal((rows, 5)), rng.standard_normal(rows)
    for kernel in (linear.gram_kernel, linear.moments_kernel):
        np.testing.assert_allclose(engine.chunk_sum(kernel, x, y), kernel(x, y), rtol=1e-12)


def test_a_misaligned_chunk_gives_the_same_bits():
    """A transfer between processes can leave an array misaligned, and numpy's matrix
    product then rounds differently from BLAS; the reducers compute on an aligned copy."""
    rng = np.random.default_rng(3)
    x, y = rng.standard_normal((10_000, 16)), rng.standard_normal(10_000)
    raw = np.empty(x.nbytes + 1, dtype=np.uint8)
    misaligned = np.frombuffer(raw[1:].data, dtype=np.float64).reshape(x.shape)
    misaligned[...] = x
    assert not misaligned.flags.aligned
    kernel = partial(
        engine.chunk_sum, partial(families.SQUARED.kernel, rng.standard_normal(16), 0.3)
    )
    np.testing.assert_array_equal(
        _per_chunk(kernel, [(misaligned, y)]), _per_chunk(kernel, [(x, y)])
    )


@pytest.mark.parametrize("fit_intercept", [True, False])
def test_tsqr_merges_chunks_shifted_by_their_own_means(fit_intercept):
    """Every chunk subtracts the mean of its own first rows; here those differ by 1000s."""
    rng = np.random.default_rng(4)
    rows = 10_003
    X = rng.standard_normal((rows, 4)) + 1000.0 * (np.arange(rows) // 777)[:, None]
    y = X @ np.array([1.0, -2.0, 0.5, 3.0]) + 7.0 + rng.standard_normal(rows)
    reduce = engine.make_reducer(da.from_array(X, chunks=777), da.from_array(y, chunks=777))
    qr = linear.tsqr(reduce, 4, fit_intercept)
    coef, intercept, mse = linear.solve_tsqr(qr, fit_intercept)
    expected_coef, expected_intercept = lstsq(X, y, fit_intercept)
    assert relative_error(coef, expected_coef) < 1e-8
    assert abs(intercept - expected_intercept) <= 1e-8 * max(1.0, abs(expected_intercept))
    residual = y - X @ expected_coef - expected_intercept
    assert mse == pytest.approx(residual @ residual / rows, rel=1e-8)


def test_an_empty_chunk_adds_nothing_to_tsqr():
    x, y = np.empty((0, 3)), np.empty(0)
    for fit_intercept in (True, False):
        rows, *rest = linear.chunk_qr(fit_intercept, x, y)
        assert rows == 0 and not np.any(rest)


def test_persisted_reducer_reads_each_workers_small_chunks_through_one_future(cluster):
    client = cluster.client
    X, y, _ = make_regression(20_000, 3, chunks=1000, bias=1.0)
    X, y = client.persist([X, y])
    Xn, yn = client.compute([X, y], sync=True)
    reducer = engine.make_reducer(X, y)
    total = reducer(linear.moments_kernel, size=9)
    holders = {g.holder for g in reducer.groups}
    assert len(reducer.groups) == len(holders) and None not in holders
    assert all(g.handle is None for g in reducer.groups)  # one pass: no group made
    np.testing.assert_array_equal(reducer(linear.moments_kernel, size=9), total)
    assert all(isinstance(g.handle, Future) for g in reducer.groups)
    assert sorted(i for g in reducer.groups for i in g.chunks) == list(range(20))
    np.testing.assert_allclose(total, linear.moments_kernel(Xn, yn), rtol=1e-12)
    np.testing.assert_array_equal(reducer(linear.moments_kernel, size=9), total)
    some = [2, 7, 19]
    rows = np.concatenate([np.arange(1000 * i, 1000 * (i + 1)) for i in some])
    np.testing.assert_allclose(
        reducer(linear.moments_kernel, size=9, chunks=some),
        linear.moments_kernel(Xn[rows], yn[rows]),
        rtol=1e-12,
    )


def test_the_moments_pass_brings_back_evenly_spaced_rows_of_every_chunk():
    rng = np.random.default_rng(5)
    X, y = rng.standard_normal((1003, 4)), rng.standard_normal(1003)
    reduce = engine.make_reducer(da.from_array(X, chunks=250), da.from_array(y, chunks=250))
    plain, sampled = linear.moments(reduce, 4), linear.moments(reduce, 4, sample_rows=40)
    # the sums are those of the plain pass; 8 rows per chunk, every 32nd
    for field in ("n", "x_mean", "x_mean_square", "y_mean", "y_mean_square"):
        np.testing.assert_allclose(getattr(plain, field), getattr(sampled, field), rtol=1e-13)
    rows = np.concatenate([start + np.arange(0, 250, 32) for start in (0, 250, 500, 750)])
    rows = np.append(rows, [1000, 1001, 1002])  # the last chunk has 3 rows: all of them
    np.testing.assert_array_equal(sampled.sample[0], X[rows])
    np.testing.assert_array_equal(sampled.sample[1], y[rows])
    assert plain.sample is None


def _logistic_problem(n=3000, p=4, seed=2):
    rng = np.random.default_rng(seed)
    X = rng.standard_normal((n, p))
    y = (rng.random(n) < 1 / (1 + np.exp(-(X @ np.linspace(-1, 1, p) + 0.3)))).astype(float)
    reduce = engine.make_reducer(X, y)
    hess = partial(families.logistic_loss_grad_hess, reduce, p, True, 1e-3)
    grad = families.with_l2(
        partial(families.linear_loss_grad, reduce, families.LOGISTIC, p, True), 1e-3, p
    )
    return hess, grad, p


def test_newton_reusing_its_hessian_reaches_the_same_optimum_with_fewer_hessians():
    hess, grad, p = _logistic_problem()
    calls = {"hessian": 0}

    def counted(theta):
        calls["hessian"] += 1
        return hess(theta)

    exact = optim.newton(hess, np.zeros(p + 1), max_iter=50, tol=1e-14)
    reused = optim.newton(counted, np.zeros(p + 1), loss_grad=grad, max_iter=50, tol=1e-14)
    assert exact.converged and reused.converged
    np.testing.assert_allclose(reused.theta, exact.theta, rtol=1e-6, atol=1e-8)
    assert reused.loss <= exact.loss + 1e-13
    assert calls["hessian"] < exact.n_iter + 1  # some steps took a gradient pass only
    # the decrement rule judges the point, not the start: at the optimum, nothing to do
    again = optim.newton(hess, exact.theta, max_iter=50, tol=1e-12)
    assert again.converged and again.n_iter == 0


def test_warm_started_logistic_matches_sklearn_even_with_sorted_labels(cluster):
    from sklearn.linear_model import LogisticRegression as SklearnLogistic
    from sklearn.metrics import log_loss

    from elastic_nb import LogisticRegression
    from elastic_nb.datasets import make_classification
    from elastic_nb.estimators.logistic import WARM_START_ROWS

    X, y, _ = make_classification(5 * WARM_START_ROWS, 6, chunks=4096, random_state=4)
    Xn, yn = cluster.client.compute([X, y], sync=True)
    order = np.argsort(yn, kind="stable")  # every chunk holds one class only
    for rows in (np.arange(len(yn)), order):
        Xs, ys = Xn[rows], yn[rows]
        reference = SklearnLogistic(tol=1e-12, max_iter=1000).fit(Xs, ys)
        model = LogisticRegression(tol=1e-10).fit(
            da.from_array(Xs, chunks=4096), da.from_array(ys, chunks=4096)
        )
        assert model.n_iter_ <= 6  # from the sample's optimum, not from zero
        best = log_loss(ys, reference.predict_proba(Xs))
        assert abs(log_loss(ys, model.predict_proba(Xs)) - best) < 1e-6
        np.testing.assert_allclose(model.coef_, reference.coef_, atol=1e-3)


def _restrictions(dask_scheduler, prefix):
    return {
        str(key): (sorted(ts.worker_restrictions or ()), ts.loose_restrictions)
        for key, ts in dask_scheduler.tasks.items()
        if str(key).startswith(prefix)
    }


def test_each_iterations_tasks_are_placed_on_the_worker_holding_their_chunks(cluster):
    """The tasks of all calls share one task group, which the scheduler may count as
    root-ish after a few calls and queue to any free worker, moving the chunks: each task
    is restricted, loosely (so a lost holder does not strand it), to its group's holder."""
    client = cluster.client
    X, y, _ = make_regression(40_000, 4, chunks=2500, random_state=1)
    X, y = client.persist([X, y])
    reducer = engine.make_reducer(X, y)
    for _ in range(3):
        families.linear_loss_grad(reducer, families.SQUARED, 4, True, np.zeros(5))
    placed = client.run_on_scheduler(_restrictions, prefix="_per_chunk")
    holders = {g.holder for g in reducer.groups}
    assert len(placed) >= len(reducer.groups) and None not in holders
    for where, loose in placed.values():
        assert loose and len(where) == 1 and where[0] in holders
    groups = client.run_on_scheduler(_restrictions, prefix="ChunkGroup")
    assert groups and all(where[0] in holders for where, _ in groups.values())
