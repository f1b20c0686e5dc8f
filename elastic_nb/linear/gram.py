"""The normal equations: Gram statistics in one pass, then a p×p solve on the client."""

from __future__ import annotations

import warnings
from typing import NamedTuple

import numpy as np
import scipy.linalg

#: Eigenvalues of the Gram matrix below RANK_RTOL · p · λmax count as zero. Rounding
#: alone leaves eigenvalues near machine epsilon · λmax; 100x that is still noise.
RANK_RTOL = 100 * np.finfo(np.float64).eps
#: solver="auto" leaves the normal equations for TSQR above this condition number of
#: XᵀX (that is, above 1e5 for X): past it the normal equations lose > 10 digits.
GRAM_CONDITION_LIMIT = 1e10


class Gram(NamedTuple):
    """Sufficient statistics of least squares, from one pass over the data."""

    xtx: np.ndarray  # X^T X
    xty: np.ndarray  # X^T y
    xsum: np.ndarray  # column sums of X
    n: float
    ysum: float
    yty: float


def gram_kernel(x, y) -> np.ndarray:
    """``[XᵀX (flat), Xᵀy, column sums, rows, Σy, yᵀy]`` of one row block."""
    n = x.shape[0]
    column_sums = np.ones(n) @ x  # BLAS; x.sum(axis=0) is several times slower
    return np.concatenate([(x.T @ x).ravel(), x.T @ y, column_sums, [n, y.sum(), y @ y]])


def gram(reduce, n_features: int) -> Gram:
    """One pass: per chunk XᵢᵀXᵢ, Xᵢᵀyᵢ and sums, added in chunk order by ``reduce``."""
    p = n_features
    flat = reduce(gram_kernel, size=p * p + 2 * p + 3)
    xtx = flat[: p * p].reshape(p, p)
    xty, xsum = flat[p * p : p * p + p], flat[p * p + p : p * p + 2 * p]
    n, ysum, yty = flat[-3:]
    return Gram(xtx, xty, xsum, n, ysum, yty)


class NormalSystem(NamedTuple):
    """The p×p system ``a · coef = b`` and the eigenvalues of ``a`` (ascending): computed
    once, they give both the condition number and the rank test of the solve."""

    a: np.ndarray
    b: np.ndarray
    eigenvalues: np.ndarray

    @property
    def condition(self) -> float:
        """Condition number of ``a`` (inf if singular)."""
        low, high = self.eigenvalues[0], self.eigenvalues[-1]
        return np.inf if low <= 0 else float(high / low)


def normal_system(g: Gram, fit_intercept: bool, alpha: float = 0.0) -> NormalSystem:
    """The normal equations of ridge (``alpha`` > 0) or least squares; centred when
    fitting an intercept, which keeps them as well conditioned as the centred data."""
    if fit_intercept:
        xmean, ymean = g.xsum / g.n, g.ysum / g.n
        a = g.xtx - g.n * np.outer(xmean, xmean)
        b = g.xty - g.n * xmean * ymean
    else:
        a, b = g.xtx, g.xty
    a = a + alpha * np.eye(a.shape[0])
    return NormalSystem(a, b, np.linalg.eigvalsh(a))


def solve_normal_system(system: NormalSystem, g: Gram, fit_intercept: bool):
    """``(coef, intercept)``: Cholesky when the system is numerically positive definite;
    otherwise the minimum-norm solution, with a RuntimeWarning."""
    a, b, eigenvalues = system
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
    intercept = float(g.ysum / g.n - (g.xsum / g.n) @ coef) if fit_intercept else 0.0
    return coef, intercept


def mean_squared_error_from_gram(g: Gram, coef, intercept) -> float:
    """MSE of (coef, intercept) without another pass: expand ||Xw + b - y||²."""
    sse = (
        coef @ g.xtx @ coef
        + 2 * intercept * (g.xsum @ coef)
        + g.n * intercept**2
        - 2 * (coef @ g.xty)
        - 2 * intercept * g.ysum
        + g.yty
    )
    return float(max(sse, 0.0) / g.n)
