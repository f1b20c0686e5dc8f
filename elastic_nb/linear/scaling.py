"""Standardized coordinates: column moments in one pass, and the change of variables."""

from __future__ import annotations

from typing import NamedTuple

import numpy as np


class Scaling(NamedTuple):
    """Column shift and scale that make the features centred (if fitting an intercept)
    and of unit variance."""

    shift: np.ndarray
    scale: np.ndarray


class Moments(NamedTuple):
    """Rows, and means and mean squares of the columns of X and of y."""

    n: float
    x_mean: np.ndarray
    x_mean_square: np.ndarray
    y_mean: float
    y_mean_square: float


def moments_kernel(x, y) -> np.ndarray:
    """``[column sums, column sums of squares, rows, Σy, yᵀy]`` of one row block."""
    column_sums = np.ones(x.shape[0]) @ x  # BLAS; x.sum(axis=0) is several times slower
    return np.concatenate([column_sums, np.einsum("ij,ij->j", x, x), [x.shape[0], y.sum(), y @ y]])


def moments(reduce, n_features: int) -> Moments:
    """One pass through ``reduce``: means and mean squares of the columns of X and of y."""
    p = n_features
    sums = reduce(moments_kernel, size=2 * p + 3)
    n = sums[2 * p]
    return Moments(n, sums[:p] / n, sums[p : 2 * p] / n, sums[-2] / n, sums[-1] / n)


def column_scaling(m: Moments, fit_intercept: bool) -> Scaling:
    """Shift and scale from the moments: standard deviations (root mean squares if there
    is no intercept to absorb the shift); constant columns keep scale 1."""
    if fit_intercept:
        shift, variance = m.x_mean, np.maximum(m.x_mean_square - m.x_mean**2, 0.0)
    else:
        shift, variance = np.zeros_like(m.x_mean), m.x_mean_square
    scale = np.sqrt(variance)
    scale[scale <= 1e-12 * max(1.0, float(np.max(scale, initial=0.0)))] = 1.0
    return Scaling(shift, scale)


def to_original(theta_s, scaling: Scaling, fit_intercept: bool) -> np.ndarray:
    """Map parameters fitted on standardized features back to the original features."""
    coef = theta_s[: len(scaling.scale)] / scaling.scale
    if not fit_intercept:
        return coef
    return np.append(coef, theta_s[-1] - scaling.shift @ coef)
