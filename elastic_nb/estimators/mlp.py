"""Small dense networks trained data-parallel: backprop per chunk, gradients summed."""

from __future__ import annotations

import numbers
from functools import partial

import dask.array as da
import numpy as np
from scipy.special import expit
from sklearn.base import RegressorMixin

from .. import families, linear
from .._validation import check_choice, check_float, check_int
from .base import ChunkedEstimator, Problem
from .classifier import BinaryClassifier
from .progress import warn_not_converged


def _check_hidden_layers(sizes):
    if isinstance(sizes, numbers.Integral) and not isinstance(sizes, bool):
        sizes = (sizes,)
    if not isinstance(sizes, (tuple, list)) or not 1 <= len(sizes) <= 2:
        raise ValueError(
            f"hidden_layer_sizes must be one or two layer widths, e.g. (64,), got {sizes!r}"
        )
    return tuple(check_int("hidden_layer_sizes[i]", s, minimum=1) for s in sizes)


class _MLP(ChunkedEstimator):
    """A dense network (one or two hidden layers) trained data-parallel: each chunk's
    gradient is computed by backpropagation in numpy on its worker, then summed. A
    subclass sets ``_output`` ("identity" or "logistic") and how it predicts."""

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

    def _check_params(self):
        super()._check_params()
        _check_hidden_layers(self.hidden_layer_sizes)
        check_choice("activation", self.activation, tuple(families.ACTIVATIONS))
        check_float("alpha", self.alpha, minimum=0.0)
        check_float("momentum", self.momentum, minimum=0.0)

    def fit(self, X, y, checkpoint=None, checkpoint_every=10, resume=False):
        """Fit; checkpoints as in :meth:`~elastic_nb.LinearRegression.fit`."""
        self._check_params()
        with self._fitting():
            if self._classifier:
                X, y, classes = self._validate_labelled(X, y)
                labels = {"classes_": classes}
            else:
                (X, y), labels = self._validate_Xy(X, y), {}
            progress = self._progress(X)
            checkpointer = self._checkpointer(X, progress, checkpoint, checkpoint_every, resume)
            _, moments, result = self._fit_iterative(X, y, progress, checkpointer)
            warn_not_converged(result, self)
            self._set_fitted(
                **labels,
                network_=self._network(moments, X.shape[1]),
                coefs_=result.theta,
                optimizer_state_=result.state,
                n_iter_=result.n_iter,
                loss_=float(result.loss),
                history_=progress.history,
            )
        return self

    def _network(self, moments, n_features) -> families.Network:
        target = (0.0, 1.0)
        if self._output == "identity":
            y_std = np.sqrt(max(moments.y_mean_square - moments.y_mean**2, 0.0)) or 1.0
            target = (float(moments.y_mean), float(y_std))
        return families.Network(
            (n_features, *_check_hidden_layers(self.hidden_layer_sizes), 1),
            self.activation,
            self._output,
            linear.column_scaling(moments, fit_intercept=True),
            target,
        )

    def _problem(self, moments, reducer, n_features):
        net = self._network(moments, n_features)
        loss_grad = partial(families.network_loss_grad, reducer, net, self.alpha / moments.n)
        return Problem(loss_grad, families.glorot_init(net.layer_sizes, self.random_state))

    def _raw_output(self, X):
        net, theta = self.network_, self.coefs_
        if isinstance(X, da.Array):
            return X.map_blocks(
                lambda x: families.network_output(net, theta, x)[0],
                drop_axis=1,
                dtype=np.float64,
                meta=np.empty(0),
            )
        return families.network_output(net, theta, X)[0]


class MLPRegressor(RegressorMixin, _MLP):
    """Dense network regressor (squared error), e.g. the seed's 64-relu → 1 trained with
    Adam. Inputs and target are standardized internally; ``loss`` in the history is the
    mean squared error on the standardized target.

    Parameters
    ----------
    hidden_layer_sizes : int or tuple of one or two ints
    activation : {"relu", "sigmoid", "tanh"}
    solver : {"adam", "sgd"}
    alpha : float
        L2 penalty on the weights, as scikit-learn's MLP.
    learning_rate : float or None
        Default 1e-3 for adam, 0.01 for sgd.
    momentum : float
        sgd's heavy-ball momentum.
    max_iter, tol, n_iter_no_change, batch_chunks, random_state, callback
        As in :class:`~elastic_nb.LinearRegression` (random_state also seeds the weights).

    Attributes
    ----------
    network_, coefs_ (flat weights), optimizer_state_, n_iter_, loss_, n_features_in_,
    history_
    """

    def predict(self, X):
        """Predicted targets, in the units of the y the model was fitted on."""
        X = self._validate_X(X)
        mean, std = self.network_.target
        return self._raw_output(X) * std + mean


class MLPClassifier(BinaryClassifier, _MLP):
    """Dense network binary classifier (sigmoid output, log-loss): e.g. a sigmoid net that
    learns XOR. Parameters and attributes as :class:`MLPRegressor`, plus ``classes_``."""

    _output = "logistic"

    def _positive_probability(self, X):
        raw = self._raw_output(X)
        return raw.map_blocks(expit) if isinstance(raw, da.Array) else expit(raw)
