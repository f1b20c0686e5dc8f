"""scikit-learn compatible estimators over chunked data, built on :mod:`elastic_nb.solvers`.

numpy input is fitted in-process as a single block; a dask array is fitted on whatever
cluster its client points at, one small graph per iteration. The estimators know nothing
of widgets or monitors: progress leaves through ``callback``, one record per iteration.
"""

from __future__ import annotations

import contextlib
import time
import warnings
from functools import partial

import dask.array as da
import numpy as np
from sklearn.base import BaseEstimator, RegressorMixin
from sklearn.exceptions import ConvergenceWarning
from sklearn.utils.validation import check_is_fitted, validate_data

from . import solvers
from ._validation import check_choice, check_float, check_int


def _current_workers():
    """Workers of the default distributed client, from its cluster's cache (no round trip)."""
    from distributed import default_client

    try:
        cluster = default_client().cluster
    except ValueError:  # no client: the threaded scheduler
        return None
    return None if cluster is None else len(cluster.scheduler_info.get("workers", {}))


def _reject_text(name, dtype):
    if dtype.kind in "OUSVMm":
        raise TypeError(f"{name} must hold numbers, got dtype {dtype}")


def _check_dask_Xy(X, y):
    """Shape and dtype checks for dask input; cheap, before any pass over the data."""
    if X.ndim != 2:
        raise ValueError(f"X must be 2-D (n_samples, n_features), got shape {X.shape}")
    _reject_text("X", X.dtype)
    if y is None:
        return X.rechunk({1: -1}), None
    y = y if isinstance(y, da.Array) else da.from_array(np.asarray(y))
    if y.ndim == 2 and y.shape[1] == 1:
        y = y[:, 0]
    if y.ndim != 1:
        raise ValueError(f"y must be 1-D (n_samples,), got shape {y.shape}")
    _reject_text("y", y.dtype)
    if np.isnan(X.shape[0]):
        X = X.compute_chunk_sizes()
    if np.isnan(y.shape[0]):
        y = y.compute_chunk_sizes()
    if X.shape[0] != y.shape[0]:
        raise ValueError(
            f"X and y must have the same number of rows, got {X.shape[0]} and {y.shape[0]}"
        )
    if X.shape[0] == 0:
        raise ValueError("X and y are empty (0 rows)")
    X = X.rechunk({1: -1})
    return X, y.rechunk((X.chunks[0],))


class _Progress:
    """Turns solver records into the public per-iteration record, keeps history."""

    def __init__(self, callback, distributed_fit: bool):
        self.callback = callback
        self.distributed_fit = distributed_fit
        self.history = []
        self.start = time.perf_counter()

    def __call__(self, record):
        record = {
            "iteration": record["iteration"],
            "loss": record["loss"],
            "elapsed": time.perf_counter() - self.start,
            "n_workers": _current_workers() if self.distributed_fit else None,
        }
        self.history.append(record)
        if self.callback is not None:
            self.callback(dict(record))


class LinearRegression(RegressorMixin, BaseEstimator):
    """Ordinary least squares on chunked data.

    Parameters
    ----------
    solver : {"normal", "gd"}
        ``"normal"``: exact, one pass (per chunk XᵢᵀXᵢ, Xᵢᵀyᵢ, tree-summed, Cholesky on the
        client). ``"gd"``: full-batch gradient descent on the mean squared error, one
        pass per iteration.
    fit_intercept : bool
    max_iter : int
        Iterations (data passes) for ``"gd"``.
    tol : float
        ``"gd"`` stops when the largest gradient entry fell below ``tol`` times its start.
    learning_rate : float or None
        Fixed step for ``"gd"`` (in standardized units); None (default) starts from a
        Lipschitz bound and uses a backtracking line search.
    callback : callable or None
        Called after each iteration with ``{"iteration", "loss", "elapsed", "n_workers"}``;
        raising StopIteration ends the fit early with the current coefficients.

    Attributes
    ----------
    coef_, intercept_, n_iter_, n_features_in_,
    history_ : list of the per-iteration records.
    """

    _solvers = ("normal", "gd")

    def __init__(
        self,
        solver="normal",
        fit_intercept=True,
        max_iter=100,
        tol=1e-6,
        learning_rate=None,
        callback=None,
    ):
        self.solver = solver
        self.fit_intercept = fit_intercept
        self.max_iter = max_iter
        self.tol = tol
        self.learning_rate = learning_rate
        self.callback = callback

    def _check_params(self):
        check_choice("solver", self.solver, self._solvers)
        check_int("max_iter", self.max_iter, minimum=1)
        check_float("tol", self.tol, minimum=0.0)
        check_float("learning_rate", self.learning_rate, positive=True, allow_none=True)
        if self.callback is not None and not callable(self.callback):
            raise TypeError(f"callback must be callable or None, got {self.callback!r}")

    def _validate_Xy(self, X, y):
        if isinstance(X, da.Array):
            X, y = _check_dask_Xy(X, y)
            self.n_features_in_ = X.shape[1]
            return X, y
        _reject_text("X", np.asarray(X).dtype)
        if y is not None:
            _reject_text("y", np.asarray(y).dtype)
        X, y = validate_data(self, X, y, y_numeric=True, dtype=np.float64)
        return X, y.astype(np.float64, copy=False)

    def fit(self, X, y):
        self._check_params()
        X, y = self._validate_Xy(X, y)
        progress = _Progress(self.callback, isinstance(X, da.Array))
        if self.solver == "normal":
            statistics = solvers.gram(X, y)
            coef, intercept = solvers.solve_normal_equations(statistics, self.fit_intercept)
            loss = solvers.mean_squared_error_from_gram(statistics, coef, intercept)
            self.n_iter_ = 1
            with contextlib.suppress(StopIteration):
                progress({"iteration": 1, "loss": loss})
        else:
            coef, intercept = self._fit_gradient_descent(X, y, progress)
        self.coef_ = np.asarray(coef, dtype=np.float64)
        self.intercept_ = float(intercept)
        self.history_ = progress.history
        return self

    def _fit_gradient_descent(self, X, y, progress):
        scaling = solvers.column_scaling(X, y, self.fit_intercept)
        loss_grad = solvers.standardized(
            partial(solvers.squared_loss_grad, X, y, fit_intercept=self.fit_intercept),
            scaling,
            self.fit_intercept,
        )
        if self.learning_rate is None:
            step = 1.0 / solvers.squared_lipschitz_bound(X.shape[1])
        else:
            step = float(self.learning_rate)
        result = solvers.gradient_descent(
            loss_grad,
            np.zeros(X.shape[1] + int(bool(self.fit_intercept))),
            step=step,
            max_iter=self.max_iter,
            tol=self.tol,
            line_search=self.learning_rate is None,
            callback=progress,
        )
        self.n_iter_ = result.n_iter
        if self.tol > 0 and not (result.converged or result.stopped):
            warnings.warn(
                f"gradient descent did not reach tol={self.tol} in max_iter={self.max_iter} "
                "iterations; raise max_iter or use solver='normal'",
                ConvergenceWarning,
                stacklevel=3,
            )
        theta = solvers.to_original(result.theta, scaling, self.fit_intercept)
        return solvers.split_theta(theta, self.fit_intercept)

    def predict(self, X):
        check_is_fitted(self)
        if isinstance(X, da.Array):
            X, _ = _check_dask_Xy(X, None)
            if X.shape[1] != self.n_features_in_:
                raise ValueError(
                    f"X has {X.shape[1]} features, but {type(self).__name__} was fitted "
                    f"with {self.n_features_in_}"
                )
            return X @ self.coef_ + self.intercept_
        _reject_text("X", np.asarray(X).dtype)
        X = validate_data(self, X, reset=False, dtype=np.float64)
        return X @ self.coef_ + self.intercept_
