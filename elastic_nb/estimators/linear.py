"""Least squares and ridge on chunked data: exact (normal equations, TSQR) or iterative."""

from __future__ import annotations

import contextlib
import warnings
from functools import partial

import numpy as np
from sklearn.base import RegressorMixin

from .. import engine, families, linear
from .._validation import check_float
from .base import ChunkedEstimator, Problem
from .progress import warn_not_converged
from .validation import require_finite


class LinearRegression(RegressorMixin, ChunkedEstimator):
    """Least squares (ridge with ``alpha`` > 0) on chunked data.

    Parameters
    ----------
    solver : {"auto", "normal", "tsqr", "gd", "sgd", "adam"}
        ``"normal"``: exact, one pass (per chunk XᵢᵀXᵢ, Xᵢᵀyᵢ, summed in chunk order,
        Cholesky on the client). ``"tsqr"``: exact and stable for ill-conditioned X, one
        pass (R of each chunk's QR, merged on the client in chunk order). ``"auto"``:
        normal, switching to tsqr with a warning when XᵀX is too ill-conditioned.
        ``"gd"``, ``"sgd"``, ``"adam"``: first-order methods on standardized features, one
        pass (or mini-batch) per iteration.
    fit_intercept : bool
    alpha : float
        L2 penalty as in ``sklearn.linear_model.Ridge``: ||y − Xw||² + alpha·||w||².
    max_iter, tol : int, float
        For the iterative solvers. ``"gd"`` stops when the largest gradient entry fell
        below ``tol`` times its start; ``"sgd"``/``"adam"`` when the loss has not improved
        by ``tol`` (relative) for ``n_iter_no_change`` iterations.
    learning_rate : float or None
        None: gd/sgd start from a Lipschitz bound (gd then line-searches), adam uses 0.01.
    batch_chunks : int or None
        sgd/adam: chunks per mini-batch (None: all data every step).
    n_iter_no_change : int
        sgd/adam: iterations without improvement before stopping.
    random_state : int
        Seeds the mini-batch draws.
    callback : callable or None
        Called after each iteration with ``{"iteration", "loss", "elapsed", "n_workers",
        "rows"}``; raising StopIteration ends the fit early with the current coefficients.

    Attributes
    ----------
    coef_, intercept_, n_iter_, n_features_in_, solver_ (the solver actually used),
    history_ : list of the per-iteration records.
    """

    _solvers = ("auto", "normal", "tsqr", "gd", "sgd", "adam")

    def __init__(
        self,
        solver="auto",
        fit_intercept=True,
        alpha=0.0,
        max_iter=100,
        tol=1e-6,
        learning_rate=None,
        batch_chunks=None,
        n_iter_no_change=10,
        random_state=0,
        callback=None,
    ):
        self.solver = solver
        self.fit_intercept = fit_intercept
        self.alpha = alpha
        self.max_iter = max_iter
        self.tol = tol
        self.learning_rate = learning_rate
        self.batch_chunks = batch_chunks
        self.n_iter_no_change = n_iter_no_change
        self.random_state = random_state
        self.callback = callback

    def fit(self, X, y, checkpoint=None, checkpoint_every=10, resume=False):
        """Fit; the iterative solvers save their state to the folder ``checkpoint`` every
        ``checkpoint_every`` iterations, and ``resume=True`` continues from it (exact
        solvers make one pass and have nothing to resume)."""
        self._check_params()
        alpha = check_float("alpha", self.alpha, minimum=0.0)
        with self._fitting():
            X, y = self._validate_Xy(X, y)
            progress = self._progress(X)
            checkpointer = self._checkpointer(X, progress, checkpoint, checkpoint_every, resume)
            y = engine.colocated(X, y)  # X's passes (exact ones too) then run per worker
            solver, exact = self.solver, None
            if solver in ("auto", "normal"):
                solver, exact = self._fit_normal(X, y, alpha)
            if solver == "tsqr":
                exact = self._fit_tsqr(X, y, alpha)
            if exact is not None:
                coef, intercept, loss = exact
                fitted = {"coef_": np.asarray(coef), "intercept_": float(intercept), "n_iter_": 1}
                with contextlib.suppress(StopIteration):  # one pass: nothing left to stop
                    progress({"iteration": 1, "loss": loss})
            else:
                problem, _, result = self._fit_iterative(X, y, progress, checkpointer)
                warn_not_converged(result, self)
                fitted = self._iterative_params(problem, result)
            self._set_fitted(**fitted, solver_=solver, history_=progress.history)
        return self

    def _fit_normal(self, X, y, alpha):
        """Normal equations: ``(solver, (coef, intercept, mse))``, or ``("tsqr", None)``
        when "auto" finds the system too ill-conditioned for them."""
        statistics = linear.gram(engine.make_reducer(X, y), X.shape[1])
        require_finite(statistics, X, y)
        system = linear.normal_system(statistics, self.fit_intercept, alpha)
        if system.condition > linear.GRAM_CONDITION_LIMIT:
            if self.solver == "auto":
                warnings.warn(
                    f"XᵀX has condition number {system.condition:.1e}: the normal equations "
                    "would lose accuracy, switching to solver='tsqr'",
                    RuntimeWarning,
                    stacklevel=3,
                )
                return "tsqr", None
            warnings.warn(
                f"XᵀX has condition number {system.condition:.1e}: the normal equations may "
                f"lose {min(np.log10(system.condition), 16):.0f} of 16 significant digits; "
                "solver='tsqr' is stable",
                RuntimeWarning,
                stacklevel=3,
            )
        coef, intercept = linear.solve_normal_system(system, statistics, self.fit_intercept)
        loss = linear.mean_squared_error_from_gram(statistics, coef, intercept)
        return "normal", (coef, intercept, loss)

    def _fit_tsqr(self, X, y, alpha):
        qr = linear.tsqr(engine.make_reducer(X, y), X.shape[1], self.fit_intercept)
        require_finite(qr, X, y)
        return linear.solve_tsqr(qr, self.fit_intercept, alpha)

    def _iterative_params(self, problem, result):
        coef, intercept = families.split_theta(problem.to_params(result.theta), self.fit_intercept)
        return {"coef_": coef, "intercept_": float(intercept), "n_iter_": result.n_iter}

    def _problem(self, moments, reducer, n_features):
        return linear_problem(
            families.SQUARED,
            reducer,
            moments,
            n_features,
            self.fit_intercept,
            l2=2.0 * self.alpha / moments.n,
        )

    def predict(self, X):
        """Predicted targets ``X @ coef_ + intercept_`` (dask in, dask out)."""
        X = self._validate_X(X)
        return X @ self.coef_ + self.intercept_


def linear_problem(family, reducer, moments, n_features, fit_intercept, l2) -> Problem:
    """A loss on a linear predictor, penalized, in standardized coordinates (where
    first-order methods converge at the same rate whatever the units of the columns)."""
    scaling = linear.column_scaling(moments, fit_intercept)
    base = partial(families.linear_loss_grad, reducer, family, n_features, fit_intercept)
    loss_grad = families.standardized(
        families.with_l2(base, l2, n_features), scaling, fit_intercept
    )
    return Problem(
        loss_grad=loss_grad,
        theta0=np.zeros(n_features + int(bool(fit_intercept))),
        lipschitz=families.lipschitz_bound(family, n_features, l2, scaling),
        to_params=partial(linear.to_original, scaling=scaling, fit_intercept=fit_intercept),
    )
