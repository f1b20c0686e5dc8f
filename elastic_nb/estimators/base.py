"""The base of every estimator: validation, the one iterative fit path, fitted state.

An estimator describes its objective as a :class:`Problem` (a ``loss_grad`` in the
optimizer's coordinates, a start, and the way back to its own parameters); the base runs
it through the chosen optimizer with progress, checkpoints and resume, so linear,
logistic and network fits share one loop (as dask-glm's estimators share its algorithms).
"""

from __future__ import annotations

import contextlib
from typing import NamedTuple

import dask.array as da
import numpy as np
from sklearn.base import BaseEstimator
from sklearn.utils.validation import check_is_fitted, validate_data

from .. import engine, linear, optim
from .._validation import check_choice, check_float, check_int
from .progress import Checkpointer, Progress
from .validation import (
    as_dask_array,
    check_dask_Xy,
    check_finite_in_memory,
    reject_text_in_memory,
    require_finite,
)

#: Solvers that take a step size and run a number of iterations.
FIRST_ORDER = ("gd", "sgd", "adam")


def _identity(theta):
    return theta


class Problem(NamedTuple):
    """An iterative fit's objective, as the optimizers see it.

    ``loss_grad(theta, chunks=None)`` (and ``loss_grad_hess(theta)`` for Newton) in the
    optimizer's coordinates; ``theta0`` the start; ``lipschitz`` a bound on the
    gradient's Lipschitz constant there (default step sizes; None if unknown);
    ``to_params(theta)`` maps a result back to the estimator's own parameters.
    """

    loss_grad: object
    theta0: np.ndarray
    lipschitz: float | None = None
    to_params: object = _identity
    loss_grad_hess: object = None


def optimize(run, theta0, checkpointer):
    """``run(theta0, state, on_iteration)`` from the start or from the checkpoint, saving
    as it goes; a run that had converged is not run again.

    If the scheduler is lost, the last completed iteration is saved to the checkpoint
    (whatever ``checkpoint_every`` is: it is in memory, on this side) and named in the
    :class:`~elastic_nb.engine.SchedulerLost` raised, so a resume loses no work."""
    theta0, state = checkpointer.start(theta0)
    if state is not None and state.get("converged"):
        return optim.OptimizeResult(theta0, state["loss"], state["iteration"], True, False, state)
    try:
        result = run(theta0, state, checkpointer.on_iteration)
    except engine.SchedulerLost as lost:
        lost.iteration, lost.checkpoint = checkpointer.save_last()
        raise
    final = {**result.state, "converged": result.converged, "loss": float(result.loss)}
    checkpointer.save(result.theta, final)
    return result


class ChunkedEstimator(BaseEstimator):
    """What every estimator here shares.

    A subclass provides ``_solvers`` (the names it accepts, the first is its default),
    ``_problem(moments, reducer, n_features)`` for its iterative solvers (and, to start
    them from a sample, ``_sample_rows``), and ``fit``,
    which validates, fits inside ``_fitting()`` and ends with ``_set_fitted``. Fitted
    attributes (ending in ``_``) change only when a fit succeeds.
    """

    _solvers: tuple = ()
    _classifier = False
    _default_adam_rate = 0.01

    @classmethod
    def solvers(cls) -> tuple:
        """The solvers this estimator accepts (the panel's menu reads it)."""
        return cls._solvers

    def _sample_rows(self, X) -> int:
        """Rows of the sample the moments pass should bring back (for a warm start); a
        subclass that fits one on it says how many. None by default."""
        return 0

    def _check_params(self):
        check_choice("solver", self.solver, self._solvers)
        check_int("max_iter", self.max_iter, minimum=1)
        check_float("tol", self.tol, minimum=0.0)
        check_float("learning_rate", self.learning_rate, positive=True, allow_none=True)
        if self.callback is not None and not callable(self.callback):
            raise TypeError(f"callback must be callable or None, got {self.callback!r}")
        check_int("n_iter_no_change", self.n_iter_no_change, minimum=1)
        check_int("batch_chunks", self.batch_chunks, minimum=1, allow_none=True)
        check_int("random_state", self.random_state, minimum=0)

    @contextlib.contextmanager
    def _fitting(self):
        """A fit as a transaction: if it raises, the fitted attributes are those of the
        last successful fit (or none), never a mixture."""
        before = {k: v for k, v in vars(self).items() if k.endswith("_") and k[0] != "_"}
        try:
            yield
        except BaseException:
            for name in [k for k in vars(self) if k.endswith("_") and k[0] != "_"]:
                delattr(self, name)
            vars(self).update(before)
            raise

    def _set_fitted(self, **attributes):
        vars(self).update(attributes)

    def _validate_Xy(self, X, y):
        X, y = as_dask_array(X), as_dask_array(y)
        if isinstance(X, da.Array):
            X, y = check_dask_Xy(X, y, numeric_y=not self._classifier)
            self.n_features_in_ = X.shape[1]
            return X, y
        reject_text_in_memory("X", X)
        if y is not None and not self._classifier:
            reject_text_in_memory("y", y)
        for name, values in (("X", X), ("y", y)):
            check_finite_in_memory(name, values)
        return validate_data(self, X, y, dtype=np.float64, y_numeric=not self._classifier)

    def _validate_X(self, X):
        check_is_fitted(self)
        X = as_dask_array(X)
        if isinstance(X, da.Array):
            X, _ = check_dask_Xy(X, None)
            if X.shape[1] != self.n_features_in_:
                raise ValueError(
                    f"X has {X.shape[1]} features, but {type(self).__name__} was fitted "
                    f"with {self.n_features_in_}"
                )
            return X
        reject_text_in_memory("X", X)
        return validate_data(self, X, reset=False, dtype=np.float64)

    def _progress(self, X) -> Progress:
        return Progress(self.callback, isinstance(X, da.Array), int(X.shape[0]))

    def _first_order(self, problem: Problem, reducer, progress: Progress):
        """``run(theta0, state, on_iteration)`` of the configured first-order optimizer
        ("gd", "sgd" or "adam"); default steps come from ``problem.lipschitz``."""
        common = {"max_iter": self.max_iter, "tol": self.tol, "callback": progress}
        lipschitz = problem.lipschitz
        if self.solver == "gd":
            step = self.learning_rate or 1.0 / lipschitz
            fixed = {"step": step, "line_search": self.learning_rate is None, **common}
            return _bind(optim.gradient_descent, problem.loss_grad, fixed)
        batches = None
        if self.batch_chunks is not None and self.batch_chunks < reducer.n_chunks:
            batches = optim.chunk_batches(reducer.n_chunks, self.batch_chunks, self.random_state)
            progress.rows = round(progress.rows * self.batch_chunks / reducer.n_chunks)
        common.update(n_iter_no_change=self.n_iter_no_change, batches=batches)
        if self.solver == "sgd":
            rate = self.learning_rate or (1.0 / lipschitz if lipschitz else 0.01)
            momentum = getattr(self, "momentum", 0.0)
            return _bind(
                optim.sgd,
                problem.loss_grad,
                {"learning_rate": rate, "momentum": momentum, **common},
            )
        rate = self.learning_rate or self._default_adam_rate
        return _bind(optim.adam, problem.loss_grad, {"learning_rate": rate, **common})

    def _optimizer(self, problem: Problem, reducer, progress: Progress):
        """The run for ``self.solver``; a subclass with a second-order solver extends it."""
        return self._first_order(problem, reducer, progress)

    def _fit_iterative(self, X, y, progress, checkpointer):
        """The one iterative fit: y placed where X is, the reducer, a first pass for the
        moments (and the proof that the data are finite), the subclass's problem, the
        optimizer. Returns ``(problem, moments, result)``; the caller, ``fit``, warns if it
        did not converge (so that the warning points at the user's line)."""
        y = engine.colocated(X, y)
        reducer = engine.make_reducer(X, y)
        moments = linear.moments(reducer, X.shape[1], self._sample_rows(X))
        require_finite(moments, X, y)
        problem = self._problem(moments, reducer, X.shape[1])
        result = optimize(self._optimizer(problem, reducer, progress), problem.theta0, checkpointer)
        return problem, moments, result

    def _checkpointer(self, X, progress, checkpoint, every, resume) -> Checkpointer:
        return Checkpointer(self, checkpoint, every, resume, X, progress)


def _bind(optimizer, loss_grad, options):
    """``run(theta0, state, on_iteration)`` calling ``optimizer`` with fixed options."""

    def run(theta0, state, on_iteration):
        return optimizer(loss_grad, theta0, state=state, on_iteration=on_iteration, **options)

    return run
