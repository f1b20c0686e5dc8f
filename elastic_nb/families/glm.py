"""Losses on a linear predictor ``x @ coef + intercept``: squared error and log-loss."""

from __future__ import annotations

import threading
from functools import partial
from typing import NamedTuple

import numpy as np
from scipy.special import expit

from ..linear.scaling import Scaling, to_original


def split_theta(theta, fit_intercept):
    """``(coef, intercept)`` of a flat parameter vector (coef, then intercept if fitted)."""
    return (theta[:-1], theta[-1]) if fit_intercept else (theta, 0.0)


def _squared_kernel(coef, intercept, x, y):
    residual = x @ coef + intercept - y
    return np.concatenate(
        [[residual @ residual, x.shape[0]], 2.0 * (x.T @ residual), [2.0 * residual.sum()]]
    )


def _logistic_kernel(coef, intercept, x, y):
    z = x @ coef + intercept
    error = expit(z) - y
    loss = np.sum(np.logaddexp(0.0, z) - y * z)
    return np.concatenate([[loss, x.shape[0]], x.T @ error, [error.sum()]])


class LinearFamily(NamedTuple):
    """A loss on a linear predictor ``x @ coef + intercept``.

    ``kernel(coef, intercept, x, y)`` returns ``[loss sum, rows, ∂/∂coef sums...,
    ∂/∂intercept sum]``; ``curvature`` bounds the second derivative of the per-row loss
    in the linear predictor (2 for squared error, 1/4 for the log-loss).
    """

    kernel: object
    curvature: float


SQUARED = LinearFamily(_squared_kernel, 2.0)
LOGISTIC = LinearFamily(_logistic_kernel, 0.25)


def linear_loss_grad(reduce, family: LinearFamily, n_features, fit_intercept, theta, chunks=None):
    """Mean loss at ``theta`` (coef, then intercept if fitted) and its gradient."""
    coef, intercept = split_theta(theta, fit_intercept)
    sums = reduce(partial(family.kernel, coef, intercept), size=n_features + 3, chunks=chunks)
    loss_sum, n = sums[0], sums[1]
    grad = sums[2:] / n
    return loss_sum / n, grad if fit_intercept else grad[:-1]


def with_l2(loss_grad, l2: float, n_features: int):
    """Add (l2 / 2)·||coef||² to a loss (never on the intercept)."""
    if l2 == 0:
        return loss_grad

    def penalized(theta, **kwargs):
        loss, grad = loss_grad(theta, **kwargs)
        coef = theta[:n_features]
        grad = grad.copy()
        grad[:n_features] += l2 * coef
        return loss + 0.5 * l2 * (coef @ coef), grad

    return penalized


def standardized(loss_grad, scaling: Scaling, fit_intercept: bool):
    """``loss_grad`` seen in coordinates where the features are standardized.

    A linear change of variables (exact, no pass over the data): first-order methods
    there converge at the same rate whatever the units of the columns, and the intercept
    no longer fights the coefficients.
    """
    p = len(scaling.scale)

    def loss_grad_s(theta_s, **kwargs):
        loss, grad = loss_grad(to_original(theta_s, scaling, fit_intercept), **kwargs)
        grad_coef = grad[:p]
        if not fit_intercept:
            return loss, grad_coef / scaling.scale
        return loss, np.append((grad_coef - grad[-1] * scaling.shift) / scaling.scale, grad[-1])

    return loss_grad_s


def lipschitz_bound(family: LinearFamily, n_features: int, l2: float, scaling: Scaling) -> float:
    """Bound on the gradient's Lipschitz constant in standardized coordinates.

    There the Hessian of the data term is curvature·[[C, 0], [0, 1]] with C a
    correlation-like matrix (λmax <= trace = p); the penalty adds l2 / scale².
    """
    return family.curvature * max(n_features, 1) + l2 * float(np.max(1.0 / scaling.scale**2))


_SCRATCH = threading.local()


def _scratch(shape) -> np.ndarray:
    """A reused array of ``shape`` for this thread: in a worker, distributed's
    ``MALLOC_TRIM_THRESHOLD_`` makes each sub-block's 2 MiB temporary a fresh mapping whose
    pages fault in again, and with a worker's data held that doubled the Newton kernel's
    time (31 against 14 ms on 62,500 x 32)."""
    buffer = getattr(_SCRATCH, "buffer", None)
    if buffer is None or buffer.shape[1:] != shape[1:] or buffer.shape[0] < shape[0]:
        buffer = _SCRATCH.buffer = np.empty(shape)
    return buffer[: shape[0]]


def _logistic_newton_kernel(coef, intercept, fit_intercept, x, y):
    z = x @ coef + intercept
    prob = expit(z)
    error = prob - y
    weight = prob * (1.0 - prob)
    # xᵀ diag(w) x as (√w x)ᵀ(√w x): one symmetric product (BLAS syrk) on x itself; the
    # intercept's row and column are a product and a sum. Stacking a column of ones onto x
    # first (a copy of every chunk) made this kernel 4x slower (8.5 ms against 2.0 ms on
    # 12,500 x 32, one thread).
    scaled = np.multiply(x, np.sqrt(weight)[:, None], out=_scratch(x.shape))
    hessian, grad = scaled.T @ scaled, x.T @ error
    if fit_intercept:
        cross = x.T @ weight
        hessian = np.block([[hessian, cross[:, None]], [cross[None, :], weight.sum()]])
        grad = np.append(grad, error.sum())
    loss = np.sum(np.logaddexp(0.0, z) - y * z)
    return np.concatenate([[loss, x.shape[0]], grad, hessian.ravel()])


def logistic_loss_grad_hess(reduce, n_features, fit_intercept, l2, theta):
    """Mean log-loss + (l2/2)||coef||², its gradient and Hessian, in one pass."""
    coef, intercept = split_theta(theta, fit_intercept)
    k = len(theta)
    kernel = partial(_logistic_newton_kernel, coef, intercept, fit_intercept)
    sums = reduce(kernel, size=2 + k + k * k)
    n = sums[1]
    grad, hessian = sums[2 : 2 + k] / n, sums[2 + k :].reshape(k, k) / n
    penalty = np.zeros(k)
    penalty[:n_features] = l2
    loss = sums[0] / n + 0.5 * l2 * (coef @ coef)
    return loss, grad + penalty * theta, hessian + np.diag(penalty)
