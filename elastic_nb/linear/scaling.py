"""Standardized coordinates: column moments in one pass, and the change of variables."""

from __future__ import annotations

from functools import partial
from typing import NamedTuple

import numpy as np


class Scaling(NamedTuple):
    """Column shift and scale that make the features centred (if fitting an intercept)
    and of unit variance."""

    shift: np.ndarray
    scale: np.ndarray


class Moments(NamedTuple):
    """Rows, and means and mean squares of the columns of X and of y; and, if asked for,
    a sample ``(x, y)`` of evenly spaced rows from every chunk."""

    n: float
    x_mean: np.ndarray
    x_mean_square: np.ndarray
    y_mean: float
    y_mean_square: float
    sample: tuple | None = None


def moments_kernel(x, y) -> np.ndarray:
    """``[column sums, column sums of squares, rows, Σy, yᵀy]`` of one row block."""
    column_sums = np.ones(x.shape[0]) @ x  # BLAS; x.sum(axis=0) is several times slower
    return np.concatenate([column_sums, np.einsum("ij,ij->j", x, x), [x.shape[0], y.sum(), y @ y]])


def sample_kernel(rows: int, x, y) -> np.ndarray:
    """``[k, the k picked rows of [x | y], flattened, zero-padded to rows]``: ``k <= rows``
    evenly spaced rows of one row block, so that a sample covers every chunk (data sorted
    by label or by time included) and is the same on every run."""
    step = max(1, -(-x.shape[0] // rows))
    picked = np.column_stack([x[::step], y[::step]])
    padded = np.zeros((rows, x.shape[1] + 1))
    padded[: len(picked)] = picked
    return np.concatenate([[len(picked)], padded.ravel()])


def _moments_and_sample(rows, x, y):
    # on the whole chunk, not sub-block by sub-block as a reducer's sum runs a kernel: the
    # sums agree with the plain pass's to rounding, not to the bit
    return np.concatenate([moments_kernel(x, y), sample_kernel(rows, x, y)])


def moments(reduce, n_features: int, sample_rows: int = 0) -> Moments:
    """One pass through ``reduce``: means and mean squares of the columns of X and of y,
    and with ``sample_rows`` a sample of about that many rows, taken in the same pass (a
    warm start fitted on it costs no pass of its own)."""
    p = n_features
    if not sample_rows:
        return _from_sums(reduce(moments_kernel, size=2 * p + 3), p, None)
    per_chunk = -(-sample_rows // reduce.n_chunks)
    size = 2 * p + 3 + 1 + per_chunk * (p + 1)
    rows = reduce.map_chunks(partial(_moments_and_sample, per_chunk), size=size)
    picked = [row[2 * p + 4 :].reshape(per_chunk, p + 1)[: int(row[2 * p + 3])] for row in rows]
    sample = np.concatenate(picked)
    return _from_sums(rows[:, : 2 * p + 3].sum(axis=0), p, (sample[:, :p], sample[:, p]))


def _from_sums(sums, p, sample) -> Moments:
    n = sums[2 * p]
    return Moments(n, sums[:p] / n, sums[p : 2 * p] / n, sums[-2] / n, sums[-1] / n, sample)


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
