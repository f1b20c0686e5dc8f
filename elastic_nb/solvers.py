"""Pure solver functions over row-chunked data (a dask array, or one numpy block).

Data enter only through :func:`blockwise_sum`: a *kernel* maps one row block
``(x, y, *params)`` to a small 1-D vector of sums, and the vectors are added up in a
fixed tree over chunk indices. That is "map per shard, aggregate" done exactly, and the
fixed order makes results independent of which worker computed which chunk.

No widgets, no printing, no global state: estimators in :mod:`elastic_nb.models` call
these and report progress through a callback.
"""

from __future__ import annotations

import warnings
from functools import partial
from typing import NamedTuple

import dask.array as da
import numpy as np
import scipy.linalg

#: Chunk results summed per node of the reduction tree.
SPLIT_EVERY = 8
#: Eigenvalues of the Gram matrix below RANK_RTOL · p · λmax count as zero. Rounding
#: alone leaves eigenvalues near machine epsilon · λmax; 100x that is still noise.
RANK_RTOL = 100 * np.finfo(np.float64).eps


def _stacked(kernel, x, y):
    return kernel(x, y.reshape(-1))[None, :]


def blockwise_sum(kernel, X, y, size: int) -> np.ndarray:
    """Sum ``kernel(x_i, y_i)`` (a length-``size`` vector) over the row blocks of X, y."""
    if isinstance(X, np.ndarray):
        return kernel(X, y)
    partials = da.map_blocks(
        _stacked,
        kernel,
        X,
        y[:, None],
        chunks=((1,) * X.numblocks[0], (size,)),
        dtype=np.float64,
        meta=np.empty((0, 0)),
    )
    return np.asarray(partials.sum(axis=0, split_every=SPLIT_EVERY).compute())


# ---------------------------------------------------------------- exact solution
class Gram(NamedTuple):
    """Sufficient statistics of least squares, from one pass over the data."""

    xtx: np.ndarray  # X^T X
    xty: np.ndarray  # X^T y
    xsum: np.ndarray  # column sums of X
    n: float
    ysum: float
    yty: float


def _gram_kernel(x, y):
    n = x.shape[0]
    return np.concatenate([(x.T @ x).ravel(), x.T @ y, x.sum(axis=0), [n, y.sum(), y @ y]])


def gram(X, y) -> Gram:
    """One pass: per chunk X_i^T X_i, X_i^T y_i and sums, tree-summed."""
    p = X.shape[1]
    flat = blockwise_sum(_gram_kernel, X, y, size=p * p + 2 * p + 3)
    xtx = flat[: p * p].reshape(p, p)
    xty, xsum = flat[p * p : p * p + p], flat[p * p + p : p * p + 2 * p]
    n, ysum, yty = flat[-3:]
    return Gram(xtx, xty, xsum, n, ysum, yty)


def solve_normal_equations(g: Gram, fit_intercept: bool, alpha: float = 0.0):
    """Least squares (ridge if ``alpha`` > 0) from the Gram statistics.

    With an intercept the system is centred first (X^T X - n x̄ x̄^T), which keeps it as
    well conditioned as the centred data. Cholesky when the matrix is numerically positive
    definite; otherwise the minimum-norm solution, with a warning.
    """
    if fit_intercept:
        xmean, ymean = g.xsum / g.n, g.ysum / g.n
        a = g.xtx - g.n * np.outer(xmean, xmean)
        b = g.xty - g.n * xmean * ymean
    else:
        a, b = g.xtx, g.xty
    a = a + alpha * np.eye(a.shape[0])
    eigenvalues = np.linalg.eigvalsh(a)
    rank_tolerance = RANK_RTOL * a.shape[0] * max(eigenvalues[-1], 0.0)
    if eigenvalues[0] > rank_tolerance:
        coef = scipy.linalg.cho_solve(scipy.linalg.cho_factor(a), b)
    else:
        warnings.warn(
            "X^T X is singular (rank-deficient, or fewer rows than columns); "
            "returning the minimum-norm least-squares solution",
            RuntimeWarning,
            stacklevel=3,
        )
        rcond = rank_tolerance / eigenvalues[-1] if eigenvalues[-1] > 0 else None
        coef = np.linalg.lstsq(a, b, rcond=rcond)[0]
    intercept = float(ymean - xmean @ coef) if fit_intercept else 0.0
    return coef, intercept


def mean_squared_error_from_gram(g: Gram, coef, intercept) -> float:
    """MSE of (coef, intercept) without another pass: expand ||Xw + b - y||^2."""
    sse = (
        coef @ g.xtx @ coef
        + 2 * intercept * (g.xsum @ coef)
        + g.n * intercept**2
        - 2 * (coef @ g.xty)
        - 2 * intercept * g.ysum
        + g.yty
    )
    return float(max(sse, 0.0) / g.n)


# ------------------------------------------------------------- squared loss family
def split_theta(theta, fit_intercept):
    return (theta[:-1], theta[-1]) if fit_intercept else (theta, 0.0)


def _squared_kernel(coef, intercept, x, y):
    residual = x @ coef + intercept - y
    return np.concatenate([[residual @ residual, residual.sum(), x.shape[0]], x.T @ residual])


def squared_loss_grad(X, y, theta, fit_intercept: bool):
    """Mean squared error at ``theta`` (coef, then intercept if fitted) and its gradient."""
    coef, intercept = split_theta(theta, fit_intercept)
    sums = blockwise_sum(partial(_squared_kernel, coef, intercept), X, y, size=X.shape[1] + 3)
    sse, rsum, n = sums[:3]
    grad = 2.0 / n * sums[3:]
    if fit_intercept:
        grad = np.append(grad, 2.0 * rsum / n)
    return sse / n, grad


def squared_lipschitz_bound(n_features: int) -> float:
    """Lipschitz constant bound of the MSE gradient on *standardized* features.

    There the Hessian is 2·[[C, 0], [0, 1]] with C a correlation matrix, and
    λmax(C) <= trace(C) = p; the line search grows the step from this safe start.
    """
    return 2.0 * max(n_features, 1)


# ------------------------------------------------------- standardized coordinates
class Scaling(NamedTuple):
    """Column shift and scale that make the features centred (if fitting an intercept)
    and of unit variance."""

    shift: np.ndarray
    scale: np.ndarray


def _moments_kernel(x, y):
    return np.concatenate([x.sum(axis=0), np.einsum("ij,ij->j", x, x), [x.shape[0]]])


def column_scaling(X, y, fit_intercept: bool) -> Scaling:
    """One pass: column means and standard deviations (root mean squares if no intercept)."""
    p = X.shape[1]
    sums = blockwise_sum(_moments_kernel, X, y, size=2 * p + 1)
    n = sums[-1]
    mean, mean_square = sums[:p] / n, sums[p : 2 * p] / n
    if fit_intercept:
        shift, variance = mean, np.maximum(mean_square - mean**2, 0.0)
    else:
        shift, variance = np.zeros(p), mean_square
    scale = np.sqrt(variance)
    scale[scale <= 1e-12 * max(1.0, float(np.max(scale, initial=0.0)))] = 1.0  # constant columns
    return Scaling(shift, scale)


def to_original(theta_s, scaling: Scaling, fit_intercept: bool) -> np.ndarray:
    """Map parameters fitted on standardized features back to the original features."""
    coef = theta_s[: len(scaling.scale)] / scaling.scale
    if not fit_intercept:
        return coef
    return np.append(coef, theta_s[-1] - scaling.shift @ coef)


def standardized(loss_grad, scaling: Scaling, fit_intercept: bool):
    """``loss_grad`` seen in coordinates where the features are standardized.

    A linear change of variables (exact, no pass over the data): gradient descent there
    converges at the same rate whatever the units of the columns, and the intercept no
    longer fights the coefficients.
    """
    p = len(scaling.scale)

    def loss_grad_s(theta_s):
        loss, grad = loss_grad(to_original(theta_s, scaling, fit_intercept))
        grad_coef = grad[:p]
        if not fit_intercept:
            return loss, grad_coef / scaling.scale
        return loss, np.append((grad_coef + grad[-1] * -scaling.shift) / scaling.scale, grad[-1])

    return loss_grad_s


# --------------------------------------------------------------------- optimizers
class OptimizeResult(NamedTuple):
    theta: np.ndarray
    loss: float
    n_iter: int
    converged: bool
    stopped: bool  # the callback raised StopIteration


def gradient_descent(
    loss_grad,
    theta0,
    *,
    step: float,
    max_iter: int,
    tol: float,
    line_search: bool = True,
    callback=None,
) -> OptimizeResult:
    """Full-batch gradient descent ``θ ← θ − α ∇J(θ)``, one data pass per iteration.

    With ``line_search`` the step starts at ``step`` (1/L from a Lipschitz bound) and
    follows Armijo backtracking: a step is kept only if J fell by at least α/2 ||∇J||²
    (always true for α <= 1/L), halved otherwise, and grown after accepted steps so a
    pessimistic bound costs a few iterations, not hundreds. Each candidate's loss and
    gradient come from the same pass, so rejected steps cost one pass and nothing more.

    Stops when max |∇J| <= tol · max |∇J(θ0)|, after ``max_iter`` passes, or when
    ``callback({"iteration", "loss", "step"})`` raises StopIteration.
    """
    theta = np.asarray(theta0, dtype=np.float64).copy()
    loss, grad = loss_grad(theta)
    threshold = tol * np.max(np.abs(grad))
    if np.max(np.abs(grad)) <= threshold or not np.any(grad):
        return OptimizeResult(theta, loss, 0, True, False)
    growth = 2.0
    for iteration in range(1, max_iter + 1):
        candidate = theta - step * grad
        new_loss, new_grad = loss_grad(candidate)
        if not line_search or new_loss <= loss - 0.5 * step * (grad @ grad):
            theta, loss, grad = candidate, new_loss, new_grad
            if line_search:
                step *= growth
        else:
            step *= 0.5
            growth = 1.25  # past the first backtrack, creep up instead of bouncing
        converged = bool(np.max(np.abs(grad)) <= threshold)
        if callback is not None:
            try:
                callback({"iteration": iteration, "loss": float(loss), "step": float(step)})
            except StopIteration:
                return OptimizeResult(theta, loss, iteration, converged, True)
        if converged:
            return OptimizeResult(theta, loss, iteration, True, False)
        if not np.isfinite(loss):
            raise FloatingPointError(
                f"loss became {loss} at iteration {iteration}: the learning rate "
                f"({step:g}) is too large for this data"
            )
    return OptimizeResult(theta, loss, max_iter, False, False)
