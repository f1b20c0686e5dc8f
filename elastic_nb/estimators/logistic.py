"""Binary logistic regression: Newton on the exact Hessian, or first-order."""

from __future__ import annotations

from functools import partial

import dask.array as da
import numpy as np
from scipy.special import expit

from .. import engine, families, optim
from .._validation import check_float
from .base import Problem
from .classifier import BinaryClassifier
from .linear import linear_problem
from .progress import warn_not_converged

#: Rows of the sample Newton's warm start is fitted on, in this process: enough that the
#: start is within the region of quadratic convergence, so the passes over all the data
#: drop from about ten to two or three; small enough to fit in a few milliseconds.
WARM_START_ROWS = 4096
#: Newton iterations on the sample (it converges in fewer unless it is separable).
WARM_START_ITERATIONS = 20


def warm_start(sample, n_features, fit_intercept, l2):
    """Newton's optimum of the same objective on ``sample`` (``(x, y)`` in memory), or
    zeros if it does not converge there (a separable sample has no optimum): the start
    for the fit on all the data, which takes over from wherever this leaves it."""
    x, y = sample
    zeros = np.zeros(n_features + int(bool(fit_intercept)))
    loss_grad_hess = partial(
        families.logistic_loss_grad_hess, engine.make_reducer(x, y), n_features, fit_intercept, l2
    )
    result = optim.newton(loss_grad_hess, zeros, max_iter=WARM_START_ITERATIONS, tol=1e-10)
    return result.theta if result.converged and np.all(np.isfinite(result.theta)) else zeros


class LogisticRegression(BinaryClassifier):
    """Binary logistic regression (sigmoid link, log-loss, L2 penalty) on chunked data.

    Minimizes ``C · Σ log-loss + ½||w||²`` as ``sklearn.linear_model.LogisticRegression``
    does (the intercept is not penalized).

    Parameters
    ----------
    solver : {"newton", "gd", "adam"}
        ``"newton"``: one pass per iteration gives gradient and Hessian; it starts from the
        optimum on a sample of about 4,096 rows taken in the first pass, and converges in
        two or three passes over all the data (best for up to a few hundred features).
        ``"gd"``, ``"adam"``: first-order, on standardized features.
    C : float
        Inverse of the L2 penalty's strength.
    fit_intercept, max_iter, tol, learning_rate, batch_chunks, n_iter_no_change,
    random_state, callback : as in :class:`~elastic_nb.LinearRegression`.

    Attributes
    ----------
    classes_, coef_, intercept_, n_iter_, n_features_in_, history_
    """

    _solvers = ("newton", "gd", "adam")

    def __init__(
        self,
        solver="newton",
        C=1.0,
        fit_intercept=True,
        max_iter=100,
        tol=1e-8,
        learning_rate=None,
        batch_chunks=None,
        n_iter_no_change=10,
        random_state=0,
        callback=None,
    ):
        self.solver = solver
        self.C = C
        self.fit_intercept = fit_intercept
        self.max_iter = max_iter
        self.tol = tol
        self.learning_rate = learning_rate
        self.batch_chunks = batch_chunks
        self.n_iter_no_change = n_iter_no_change
        self.random_state = random_state
        self.callback = callback

    def fit(self, X, y, checkpoint=None, checkpoint_every=10, resume=False):
        """Fit; checkpoints as in :meth:`~elastic_nb.LinearRegression.fit`."""
        self._check_params()
        check_float("C", self.C, positive=True)
        with self._fitting():
            X, y, classes = self._validate_labelled(X, y)
            progress = self._progress(X)
            checkpointer = self._checkpointer(X, progress, checkpoint, checkpoint_every, resume)
            problem, _, result = self._fit_iterative(X, y, progress, checkpointer)
            warn_not_converged(result, self)
            coef, intercept = families.split_theta(
                problem.to_params(result.theta), self.fit_intercept
            )
            self._set_fitted(
                classes_=classes,
                coef_=coef.reshape(1, -1),
                intercept_=np.array([float(intercept)]),
                n_iter_=result.n_iter,
                history_=progress.history,
            )
        return self

    def _sample_rows(self, X):
        rows = X.shape[0]
        worth_it = self.solver == "newton" and not np.isnan(rows) and rows > 4 * WARM_START_ROWS
        return WARM_START_ROWS if worth_it else 0

    def _problem(self, moments, reducer, n_features):
        l2 = 1.0 / (self.C * moments.n)
        if self.solver != "newton":
            return linear_problem(
                families.LOGISTIC, reducer, moments, n_features, self.fit_intercept, l2
            )
        hess = partial(
            families.logistic_loss_grad_hess, reducer, n_features, self.fit_intercept, l2
        )
        data_term = partial(
            families.linear_loss_grad, reducer, families.LOGISTIC, n_features, self.fit_intercept
        )
        gradient = families.with_l2(data_term, l2, n_features)
        if moments.sample is None:
            theta0 = np.zeros(n_features + int(bool(self.fit_intercept)))
        else:
            theta0 = warm_start(moments.sample, n_features, self.fit_intercept, l2)
        return Problem(gradient, theta0, loss_grad_hess=hess)

    def _optimizer(self, problem, reducer, progress):
        if self.solver != "newton":
            return super()._optimizer(problem, reducer, progress)

        def run(theta0, state, on_iteration):
            return optim.newton(
                problem.loss_grad_hess,
                theta0,
                loss_grad=problem.loss_grad,
                max_iter=self.max_iter,
                tol=self.tol,
                callback=progress,
                state=state,
                on_iteration=on_iteration,
            )

        return run

    def decision_function(self, X):
        """Log-odds of the positive class (``classes_[1]``)."""
        X = self._validate_X(X)
        return X @ self.coef_[0] + self.intercept_[0]

    def _positive_probability(self, X):
        scores = self.decision_function(X)
        return scores.map_blocks(expit) if isinstance(scores, da.Array) else expit(scores)
