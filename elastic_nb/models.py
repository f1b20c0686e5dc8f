"""scikit-learn compatible estimators over chunked data, built on :mod:`elastic_nb.solvers`.

numpy input is fitted in-process as a single block; a dask array (or dask dataframe) is
fitted on whatever cluster its client points at. Data persisted on a distributed cluster
take the fast path: one task per worker per iteration. The estimators know nothing of
widgets or monitors: progress leaves through ``callback``, one record per iteration.
"""

from __future__ import annotations

import contextlib
import numbers
import time
import warnings
from functools import partial

import dask
import dask.array as da
import numpy as np
import scipy.sparse
from scipy.special import expit
from sklearn.base import BaseEstimator, ClassifierMixin, RegressorMixin
from sklearn.exceptions import ConvergenceWarning
from sklearn.utils.multiclass import check_classification_targets
from sklearn.utils.validation import check_is_fitted, validate_data

from . import __version__, solvers
from . import checkpoint as checkpoint_io
from ._validation import check_choice, check_float, check_int


# ------------------------------------------------------------------------ helpers
def _current_workers():
    """Workers of the default distributed client, from its cluster's cache (no round trip)."""
    from distributed import default_client

    try:
        cluster = default_client().cluster
    except ValueError:  # no client: the threaded scheduler
        return None
    return None if cluster is None else len(cluster.scheduler_info.get("workers", {}))


def _reject_text(name, dtype, kinds="OUSVMm"):
    if dtype.kind in kinds:
        raise TypeError(f"{name} must hold real numbers, got dtype {dtype}")
    if dtype.kind == "c":  # scikit-learn's convention: a ValueError, in its words
        raise ValueError(f"Complex data not supported: {name} has dtype {dtype}")


def _reject_text_in_memory(name, data):
    """numpy/list input: strings are a TypeError here; object and sparse input are left to
    scikit-learn's validation, which converts numbers held as objects and says clearly
    that sparse input is not supported."""
    if not scipy.sparse.issparse(data):
        _reject_text(name, np.asarray(data).dtype, kinds="USVMm")


def _as_dask_array(name, data):
    """dask dataframes/series become arrays with known chunk sizes."""
    if hasattr(data, "to_dask_array"):
        return data.to_dask_array(lengths=True)
    return data


def _non_finite_error(name, values):
    """ValueError saying how many NaN/inf ``values`` holds and where the first one is."""
    module = da if isinstance(values, da.Array) else np
    bad = ~module.isfinite(values)
    n_nan, n_inf, first = dask.compute(
        module.isnan(values).sum(), module.isinf(values).sum(), module.argmax(bad.ravel())
    )
    where = np.unravel_index(int(first), values.shape)
    place = f"row {where[0]}" + (f", column {where[1]}" if len(where) == 2 else "")
    return ValueError(
        f"Input {name} contains NaN or infinity: {int(n_nan)} NaN and {int(n_inf)} infinite "
        f"values; the first is at {place}"
    )


def _all_finite(values) -> bool:
    if isinstance(values, da.Array):
        return bool(da.isfinite(values).all().compute())
    return bool(np.isfinite(values).all())


def _require_finite(statistics, X, y):
    """After a first pass: if its statistics are not finite, the data are not; say where."""
    if all(np.all(np.isfinite(s)) for s in statistics):
        return
    for name, values in (("X", X), ("y", y)):
        if values is not None and not _all_finite(values):
            raise _non_finite_error(name, values)
    raise FloatingPointError("the data overflowed float64 (values too large to square)")


def _check_finite_in_memory(name, values):
    """Count and locate NaN/inf in float numpy input (other input: scikit-learn checks)."""
    if scipy.sparse.issparse(values) or values is None:
        return
    array = np.asarray(values)
    if array.dtype.kind == "f" and not np.all(np.isfinite(array)):
        raise _non_finite_error(name, array)


def _check_dask_Xy(X, y, numeric_y=True):
    """Shape and dtype checks for dask input; cheap, before any pass over the data."""
    if X.ndim != 2:
        raise ValueError(f"X must be 2-D (n_samples, n_features), got shape {X.shape}")
    _reject_text("X", X.dtype)
    if np.isnan(X.shape[0]):
        X = X.compute_chunk_sizes()
    if X.shape[0] == 0 or X.shape[1] == 0:
        raise ValueError(f"X is empty: shape {X.shape}")
    X = X.rechunk({1: -1}).astype(np.float64, copy=False)
    if y is None:
        return X, None
    y = y if isinstance(y, da.Array) else da.from_array(np.asarray(y))
    if y.ndim == 2 and y.shape[1] == 1:
        y = y[:, 0]
    if y.ndim != 1:
        raise ValueError(f"y must be 1-D (n_samples,), got shape {y.shape}")
    if numeric_y:
        _reject_text("y", y.dtype)
    if np.isnan(y.shape[0]):
        y = y.compute_chunk_sizes()
    if X.shape[0] != y.shape[0]:
        raise ValueError(
            f"X and y must have the same number of rows, got {X.shape[0]} and {y.shape[0]}"
        )
    return X, y.rechunk((X.chunks[0],))


def _persisted_like(X, y):
    """If X lives on a cluster and y was derived lazily from something, put y there too,
    so the per-worker fast path applies."""
    if not isinstance(X, da.Array):
        return y
    x_futures = solvers.persisted_futures(X)
    if x_futures is not None and solvers.persisted_futures(y) is None:
        return x_futures[0].client.persist(y)
    return y


class _Progress:
    """Turns solver records into the public per-iteration record, keeps history."""

    def __init__(self, callback, distributed_fit: bool, rows: int):
        self.callback = callback
        self.distributed_fit = distributed_fit
        self.rows = rows  # read per iteration (a mini-batch solver lowers it)
        self.history = []
        self.start = time.perf_counter()

    def __call__(self, record):
        record = {
            "iteration": record["iteration"],
            "loss": record["loss"],
            "elapsed": time.perf_counter() - self.start,
            "n_workers": _current_workers() if self.distributed_fit else None,
            "rows": self.rows,
        }
        self.history.append(record)
        if self.callback is not None:
            self.callback(dict(record))


def _warn_not_converged(result, model):
    if model.tol > 0 and not (result.converged or result.stopped):
        warnings.warn(
            f"{type(model).__name__}(solver={model.solver!r}) did not converge to "
            f"tol={model.tol} in max_iter={model.max_iter} iterations",
            ConvergenceWarning,
            stacklevel=3,
        )


def _check_hidden_layers(sizes):
    if isinstance(sizes, numbers.Integral) and not isinstance(sizes, bool):
        sizes = (sizes,)
    if not isinstance(sizes, (tuple, list)) or not 1 <= len(sizes) <= 2:
        raise ValueError(
            f"hidden_layer_sizes must be one or two layer widths, e.g. (64,), got {sizes!r}"
        )
    return tuple(check_int("hidden_layer_sizes[i]", s, minimum=1) for s in sizes)


class _Checkpointer:
    """Checkpoints of one fit: where it starts (fresh, or where a checkpoint left off),
    saving every ``every`` iterations, and saving the final state."""

    def __init__(self, estimator, checkpoint, every, resume, X, progress):
        self.path = None if checkpoint is None else checkpoint_io.checkpoint_file(checkpoint)
        self.every = check_int("checkpoint_every", every, minimum=1)
        if not isinstance(resume, bool):
            raise TypeError(f"resume must be True or False, got {resume!r}")
        if resume and checkpoint is None:
            raise ValueError("resume=True needs checkpoint=<folder> to resume from")
        self.resume, self.progress = resume, progress
        params = estimator.get_params()
        self.meta = {
            "estimator": type(estimator).__name__,
            "elastic_nb": __version__,
            "n_samples": int(X.shape[0]),
            "n_features": int(X.shape[1]),
            "params": {k: v for k, v in params.items() if k not in ("callback", "max_iter")},
        }

    def start(self, theta0):
        """(theta, state) to start from; state None for a fresh run."""
        if not (self.resume and self.path.exists()):
            return theta0, None
        saved = checkpoint_io.load(self.path)
        checkpoint_io.check_compatible(saved, {**self.meta, "n_params": len(theta0)}, self.path)
        self.progress.history[:] = saved.history
        return saved.theta, saved.state

    def save(self, theta, state):
        if self.path is not None:
            meta = {**self.meta, "n_params": len(theta)}
            checkpoint_io.save(self.path, theta, state, self.progress.history, meta)

    def on_iteration(self, theta, state):
        if self.path is not None and state["iteration"] % self.every == 0:
            self.save(theta, state)


# ------------------------------------------------------------------ the base class
class _ChunkedEstimator(BaseEstimator):
    """Validation and bookkeeping shared by every estimator here."""

    _solvers: tuple = ()

    def _check_params(self):
        check_choice("solver", self.solver, self._solvers)
        check_int("max_iter", self.max_iter, minimum=1)
        check_float("tol", self.tol, minimum=0.0)
        check_float("learning_rate", self.learning_rate, positive=True, allow_none=True)
        if self.callback is not None and not callable(self.callback):
            raise TypeError(f"callback must be callable or None, got {self.callback!r}")

    def _validate_Xy(self, X, y):
        X, y = _as_dask_array("X", X), _as_dask_array("y", y)
        if isinstance(X, da.Array):
            X, y = _check_dask_Xy(X, y, numeric_y=not self._classifier)
            self.n_features_in_ = X.shape[1]
            return X, y
        _reject_text_in_memory("X", X)
        if y is not None and not self._classifier:
            _reject_text_in_memory("y", y)
        for name, values in (("X", X), ("y", y)):
            _check_finite_in_memory(name, values)
        return validate_data(self, X, y, dtype=np.float64, y_numeric=not self._classifier)

    _classifier = False

    def _validate_X(self, X):
        check_is_fitted(self)
        X = _as_dask_array("X", X)
        if isinstance(X, da.Array):
            X, _ = _check_dask_Xy(X, None)
            if X.shape[1] != self.n_features_in_:
                raise ValueError(
                    f"X has {X.shape[1]} features, but {type(self).__name__} was fitted "
                    f"with {self.n_features_in_}"
                )
            return X
        _reject_text_in_memory("X", X)
        return validate_data(self, X, reset=False, dtype=np.float64)

    def _first_pass(self, X, y):
        """What every iterative fit starts with: y placed where X is, the reducer for the
        iterations, and through it the moments of X and y (and the proof that they are
        finite)."""
        y = _persisted_like(X, y)
        reducer = solvers.make_reducer(X, y)
        moments = solvers.moments(X, y, reducer)
        _require_finite(moments, X, y)
        return moments, y, reducer

    def _progress(self, X):
        return _Progress(self.callback, isinstance(X, da.Array), int(X.shape[0]))

    def _optimize(self, run, theta0, checkpointer):
        """``run(theta0, state, on_iteration)`` from the start or from the checkpoint,
        saving as it goes; a run that had converged is not run again."""
        theta0, state = checkpointer.start(theta0)
        if state is not None and state.get("converged"):
            loss = checkpointer.progress.history[-1]["loss"]
            return solvers.OptimizeResult(theta0, loss, state["iteration"], True, False, state)
        result = run(theta0, state, checkpointer.on_iteration)
        checkpointer.save(result.theta, {**result.state, "converged": result.converged})
        return result

    def _run_first_order(
        self,
        loss_grad,
        theta0,
        state=None,
        on_iteration=None,
        *,
        reducer,
        progress,
        lipschitz=None,
    ):
        """Run the configured first-order optimizer ("gd", "sgd" or "adam"); default
        steps come from ``lipschitz`` (a bound on the gradient's Lipschitz constant)."""
        common = {
            "max_iter": self.max_iter,
            "tol": self.tol,
            "callback": progress,
            "state": state,
            "on_iteration": on_iteration,
        }
        if self.solver == "gd":
            return solvers.gradient_descent(
                loss_grad,
                theta0,
                step=self.learning_rate or 1.0 / lipschitz,
                line_search=self.learning_rate is None,
                **common,
            )
        batches = None
        batch_chunks = getattr(self, "batch_chunks", None)
        if batch_chunks is not None and batch_chunks < reducer.n_chunks:
            batches = solvers.chunk_batches(reducer.n_chunks, batch_chunks, self.random_state)
            progress.rows = round(progress.rows * batch_chunks / reducer.n_chunks)
        if self.solver == "sgd":
            return solvers.sgd(
                loss_grad,
                theta0,
                learning_rate=self.learning_rate or (1.0 / lipschitz if lipschitz else 0.01),
                momentum=getattr(self, "momentum", 0.0),
                n_iter_no_change=self.n_iter_no_change,
                batches=batches,
                **common,
            )
        return solvers.adam(
            loss_grad,
            theta0,
            learning_rate=self.learning_rate or self._default_adam_rate,
            n_iter_no_change=self.n_iter_no_change,
            batches=batches,
            **common,
        )

    _default_adam_rate = 0.01

    def _check_iterative_params(self):
        check_int("n_iter_no_change", self.n_iter_no_change, minimum=1)
        check_int("batch_chunks", self.batch_chunks, minimum=1, allow_none=True)
        check_int("random_state", self.random_state, minimum=0)


# ------------------------------------------------------------------ linear regression
class LinearRegression(RegressorMixin, _ChunkedEstimator):
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
    random_state : int
        Seeds the mini-batch draws.
    callback : callable or None
        Called after each iteration with ``{"iteration", "loss", "elapsed", "n_workers",
        "rows"}``;
        raising StopIteration ends the fit early with the current coefficients.

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
        self._check_iterative_params()
        alpha = check_float("alpha", self.alpha, minimum=0.0)
        X, y = self._validate_Xy(X, y)
        progress = self._progress(X)
        checkpointer = _Checkpointer(self, checkpoint, checkpoint_every, resume, X, progress)
        y = _persisted_like(X, y)  # X's passes (exact ones too) then run per worker
        solver = self.solver
        if solver in ("auto", "normal"):
            solver = self._fit_normal(X, y, alpha, progress)
        if solver == "tsqr":
            qr = solvers.tsqr(X, y, self.fit_intercept)
            _require_finite(qr, X, y)
            coef, intercept, mse = solvers.solve_tsqr(qr, self.fit_intercept, alpha)
            self._set_exact(coef, intercept, mse, progress)
        elif solver not in ("normal",):
            self._fit_iterative(X, y, alpha, progress, checkpointer)
        self.solver_ = solver
        self.history_ = progress.history
        return self

    def _set_exact(self, coef, intercept, loss, progress):
        self.coef_, self.intercept_, self.n_iter_ = np.asarray(coef), float(intercept), 1
        with contextlib.suppress(StopIteration):
            progress({"iteration": 1, "loss": loss})

    def _fit_normal(self, X, y, alpha, progress):
        """Normal equations; returns the solver that remains to run ("tsqr" if the
        system is too ill-conditioned for "auto", else "normal", already done)."""
        statistics = solvers.gram(X, y)
        _require_finite(statistics, X, y)
        system, _ = solvers.centred_system(statistics, self.fit_intercept, alpha)
        condition = solvers.gram_condition(system)
        if condition > solvers.GRAM_CONDITION_LIMIT:
            if self.solver == "auto":
                warnings.warn(
                    f"XᵀX has condition number {condition:.1e}: the normal equations would "
                    "lose accuracy, switching to solver='tsqr'",
                    RuntimeWarning,
                    stacklevel=3,
                )
                return "tsqr"
            warnings.warn(
                f"XᵀX has condition number {condition:.1e}: the normal equations may lose "
                f"{min(np.log10(condition), 16):.0f} of 16 significant digits; "
                "solver='tsqr' is stable",
                RuntimeWarning,
                stacklevel=3,
            )
        coef, intercept = solvers.solve_normal_equations(statistics, self.fit_intercept, alpha)
        loss = solvers.mean_squared_error_from_gram(statistics, coef, intercept)
        self._set_exact(coef, intercept, loss, progress)
        return "normal"

    def _fit_iterative(self, X, y, alpha, progress, checkpointer):
        moments, y, reducer = self._first_pass(X, y)
        scaling = solvers.column_scaling(moments, self.fit_intercept)
        p, l2 = X.shape[1], 2.0 * alpha / moments.n
        base = partial(solvers.linear_loss_grad, reducer, solvers.SQUARED, p, self.fit_intercept)
        loss_grad = solvers.standardized(solvers.with_l2(base, l2, p), scaling, self.fit_intercept)
        lipschitz = solvers.lipschitz_bound(solvers.SQUARED, p, l2, scaling)
        theta0 = np.zeros(p + int(bool(self.fit_intercept)))
        result = self._optimize(
            partial(
                self._run_first_order,
                loss_grad,
                reducer=reducer,
                progress=progress,
                lipschitz=lipschitz,
            ),
            theta0,
            checkpointer,
        )
        _warn_not_converged(result, self)
        theta = solvers.to_original(result.theta, scaling, self.fit_intercept)
        coef, intercept = solvers.split_theta(theta, self.fit_intercept)
        self.coef_, self.intercept_, self.n_iter_ = coef, float(intercept), result.n_iter

    def predict(self, X):
        X = self._validate_X(X)
        return X @ self.coef_ + self.intercept_


# --------------------------------------------------------------- classification base
class _BinaryClassifier(ClassifierMixin, _ChunkedEstimator):
    _classifier = True

    def __sklearn_tags__(self):
        tags = super().__sklearn_tags__()
        tags.classifier_tags.multi_class = False
        return tags

    def _encode_labels(self, y):
        """classes_ from y; y as 0/1 floats. Exactly two classes, or a clear error."""
        classes = da.unique(y).compute() if isinstance(y, da.Array) else np.unique(y)
        check_classification_targets(classes)
        if len(classes) < 2:
            raise ValueError(
                f"{type(self).__name__} needs two classes in y; it has only one class "
                f"({classes.tolist()})"
            )
        if len(classes) > 2:
            shown = classes[:5].tolist()
            raise ValueError(
                f"Only binary classification is supported: {type(self).__name__} needs y "
                f"with exactly 2 classes, got {len(classes)} "
                f"({shown}{' ...' if len(classes) > 5 else ''})"
            )
        self.classes_ = classes
        return (y == classes[1]).astype(np.float64)

    def _validate_Xy(self, X, y):
        X, y = super()._validate_Xy(X, y)
        return X, self._encode_labels(y)

    def predict_proba(self, X):
        positive = self._positive_probability(self._validate_X(X))
        module = da if isinstance(positive, da.Array) else np
        return module.stack([1.0 - positive, positive], axis=1)

    def predict(self, X):
        positive = self._positive_probability(self._validate_X(X))
        if isinstance(positive, da.Array):
            return positive.map_blocks(
                lambda p: self.classes_[(p > 0.5).astype(int)], dtype=self.classes_.dtype
            )
        return self.classes_[(positive > 0.5).astype(int)]


class LogisticRegression(_BinaryClassifier):
    """Binary logistic regression (sigmoid link, log-loss, L2 penalty) on chunked data.

    Minimizes ``C · Σ log-loss + ½||w||²`` as ``sklearn.linear_model.LogisticRegression``
    does (the intercept is not penalized).

    Parameters
    ----------
    solver : {"newton", "gd", "adam"}
        ``"newton"``: one pass per iteration gives gradient and Hessian; converges in a
        handful of iterations (best for up to a few hundred features). ``"gd"``, ``"adam"``:
        first-order, on standardized features.
    C, fit_intercept, max_iter, tol, learning_rate, batch_chunks, n_iter_no_change,
    random_state, callback : as in :class:`LinearRegression` (C is the inverse penalty).

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
        """Fit; checkpoints as in :meth:`LinearRegression.fit`."""
        self._check_params()
        self._check_iterative_params()
        C = check_float("C", self.C, positive=True)
        X, y = self._validate_Xy(X, y)
        progress = self._progress(X)
        checkpointer = _Checkpointer(self, checkpoint, checkpoint_every, resume, X, progress)
        moments, y, reducer = self._first_pass(X, y)
        p, l2 = X.shape[1], 1.0 / (C * moments.n)
        theta0 = np.zeros(p + int(bool(self.fit_intercept)))
        if self.solver == "newton":
            loss_grad_hess = partial(
                solvers.logistic_loss_grad_hess, reducer, p, self.fit_intercept, l2
            )
            newton = partial(
                solvers.newton,
                loss_grad_hess,
                max_iter=self.max_iter,
                tol=self.tol,
                callback=progress,
            )
            result = self._optimize(
                lambda theta, state, on_iteration: newton(
                    theta, state=state, on_iteration=on_iteration
                ),
                theta0,
                checkpointer,
            )
            theta = result.theta
        else:
            scaling = solvers.column_scaling(moments, self.fit_intercept)
            base = partial(
                solvers.linear_loss_grad, reducer, solvers.LOGISTIC, p, self.fit_intercept
            )
            loss_grad = solvers.standardized(
                solvers.with_l2(base, l2, p), scaling, self.fit_intercept
            )
            lipschitz = solvers.lipschitz_bound(solvers.LOGISTIC, p, l2, scaling)
            result = self._optimize(
                partial(
                    self._run_first_order,
                    loss_grad,
                    reducer=reducer,
                    progress=progress,
                    lipschitz=lipschitz,
                ),
                theta0,
                checkpointer,
            )
            theta = solvers.to_original(result.theta, scaling, self.fit_intercept)
        _warn_not_converged(result, self)
        coef, intercept = solvers.split_theta(theta, self.fit_intercept)
        self.coef_ = coef.reshape(1, -1)
        self.intercept_ = np.array([float(intercept)])
        self.n_iter_ = result.n_iter
        self.history_ = progress.history
        return self

    def decision_function(self, X):
        """Log-odds of the positive class (``classes_[1]``)."""
        X = self._validate_X(X)
        return X @ self.coef_[0] + self.intercept_[0]

    def _positive_probability(self, X):
        scores = self.decision_function(X)
        return scores.map_blocks(expit) if isinstance(scores, da.Array) else expit(scores)


# --------------------------------------------------------------------------- MLPs
class _MLP(_ChunkedEstimator):
    """A dense network (one or two hidden layers) trained data-parallel: each chunk's
    gradient is computed by backpropagation in numpy on its worker, then summed."""

    _solvers = ("adam", "sgd")
    _default_adam_rate = 1e-3
    _output = "identity"

    def __init__(
        self,
        hidden_layer_sizes=(64,),
        activation="relu",
        solver="adam",
        alpha=1e-4,
        learning_rate=None,
        max_iter=200,
        tol=1e-4,
        n_iter_no_change=10,
        batch_chunks=None,
        momentum=0.9,
        random_state=0,
        callback=None,
    ):
        self.hidden_layer_sizes = hidden_layer_sizes
        self.activation = activation
        self.solver = solver
        self.alpha = alpha
        self.learning_rate = learning_rate
        self.max_iter = max_iter
        self.tol = tol
        self.n_iter_no_change = n_iter_no_change
        self.batch_chunks = batch_chunks
        self.momentum = momentum
        self.random_state = random_state
        self.callback = callback

    def fit(self, X, y, checkpoint=None, checkpoint_every=10, resume=False):
        """Fit; checkpoints as in :meth:`LinearRegression.fit`."""
        self._check_params()
        self._check_iterative_params()
        hidden = _check_hidden_layers(self.hidden_layer_sizes)
        check_choice("activation", self.activation, tuple(solvers.ACTIVATIONS))
        alpha = check_float("alpha", self.alpha, minimum=0.0)
        check_float("momentum", self.momentum, minimum=0.0)
        X, y = self._validate_Xy(X, y)
        progress = self._progress(X)
        checkpointer = _Checkpointer(self, checkpoint, checkpoint_every, resume, X, progress)
        moments, y, reducer = self._first_pass(X, y)
        target = (0.0, 1.0)
        if self._output == "identity":
            y_std = np.sqrt(max(moments.y_mean_square - moments.y_mean**2, 0.0)) or 1.0
            target = (float(moments.y_mean), float(y_std))
        self.network_ = solvers.Network(
            (X.shape[1], *hidden, 1),
            self.activation,
            self._output,
            solvers.column_scaling(moments, fit_intercept=True),
            target,
        )
        loss_grad = partial(solvers.network_loss_grad, reducer, self.network_, alpha / moments.n)
        theta0 = solvers.glorot_init(self.network_.layer_sizes, self.random_state)
        result = self._optimize(
            partial(self._run_first_order, loss_grad, reducer=reducer, progress=progress),
            theta0,
            checkpointer,
        )
        _warn_not_converged(result, self)
        self.coefs_ = result.theta
        self.optimizer_state_ = result.state
        self.n_iter_ = result.n_iter
        self.loss_ = float(result.loss)
        self.history_ = progress.history
        return self

    def _raw_output(self, X):
        net, theta = self.network_, self.coefs_
        if isinstance(X, da.Array):
            return X.map_blocks(
                lambda x: solvers.network_output(net, theta, x)[0],
                drop_axis=1,
                dtype=np.float64,
                meta=np.empty(0),
            )
        return solvers.network_output(net, theta, X)[0]


class MLPRegressor(RegressorMixin, _MLP):
    """Dense network regressor (squared error), e.g. the seed's 64-relu → 1 trained with
    Adam. Inputs and target are standardized internally; ``loss`` in the history is the
    mean squared error on the standardized target.

    Parameters: hidden_layer_sizes (one or two widths), activation ("relu", "sigmoid",
    "tanh"), solver ("adam", "sgd"), alpha (L2, as scikit-learn's MLP), learning_rate
    (default 1e-3 for adam, 0.01 for sgd), max_iter, tol, n_iter_no_change, batch_chunks,
    momentum (sgd), random_state (initial weights, mini-batches), callback.
    """

    def predict(self, X):
        X = self._validate_X(X)
        mean, std = self.network_.target
        return self._raw_output(X) * std + mean


class MLPClassifier(_BinaryClassifier, _MLP):
    """Dense network binary classifier (sigmoid output, log-loss): e.g. a sigmoid net that
    learns XOR. Parameters as :class:`MLPRegressor`."""

    _output = "logistic"

    def _positive_probability(self, X):
        raw = self._raw_output(X)
        return raw.map_blocks(expit) if isinstance(raw, da.Array) else expit(raw)
