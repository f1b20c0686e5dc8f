"""Tall-and-skinny QR: least squares that stays accurate when XᵀX is ill-conditioned."""

from __future__ import annotations

import warnings
from functools import partial
from typing import NamedTuple

import numpy as np
import scipy.linalg

from .gram import RANK_RTOL

#: Rows of the blocks QR'd one by one within a chunk: a Householder sweep reads its block
#: once per column, so the block (0.5 MiB for 32 features) must stay in a core's cache.
QR_BLOCK_ROWS = 2048
#: Columns per panel of LAPACK's blocked triangular-pentagonal QR (dtpqrt); measured best.
QR_PANEL = 8
#: Rows whose mean a chunk subtracts from all its rows before the QR.
SHIFT_ROWS = 1024


def r_factor(z):
    """R of the QR factorization of z (any number of rows), square and upper triangular."""
    k = z.shape[1]
    r = scipy.linalg.lapack.dgeqrf(np.asfortranarray(z), overwrite_a=1)[0]
    r = np.triu(r[: min(z.shape[0], k)])
    return r if r.shape[0] == k else np.vstack([r, np.zeros((k - r.shape[0], k))])


def _fill_design(z, shift, x, y):
    """z ← [1 | x - shift | y - shift], or [x | y] when ``shift`` is None."""
    lead = 0 if shift is None else 1
    z[:, lead:-1], z[:, -1] = x, y
    if shift is not None:
        if shift.any():
            z[:, 1:] -= shift
        z[:, 0] = 1.0


def _chunk_r(shift, x, y):
    """R of one chunk's design, one block of QR_BLOCK_ROWS at a time: the R so far and the
    next block are QR'd together (TSQR within the chunk; LAPACK's dtpqrt exploits the
    triangle). Blocks are copied into one reused Fortran-order buffer: LAPACK's order, and
    fresh memory for every block would cost a page fault per 4 KiB."""
    n, k = x.shape[0], x.shape[1] + (1 if shift is None else 2)
    r, panel = np.zeros((k, k), order="F"), min(QR_PANEL, k)
    buffer = np.empty((min(n, QR_BLOCK_ROWS), k), order="F")
    for start in range(0, n, QR_BLOCK_ROWS):
        rows = slice(start, min(start + QR_BLOCK_ROWS, n))
        block = buffer[: rows.stop - start]
        _fill_design(block, shift, x[rows], y[rows])
        r = scipy.linalg.lapack.dtpqrt(0, panel, r, block, overwrite_a=1, overwrite_b=1)[0]
    return np.triu(r)


def chunk_qr(fit_intercept: bool, x, y) -> np.ndarray:
    """``[rows, shift, R]`` of one chunk, flat (no shift without an intercept).

    The QR centres through its column of ones, which cancels digits in a column whose
    mean exceeds its spread; if one does in the chunk's first SHIFT_ROWS rows, their mean
    is subtracted first (a pass over the data that buys nothing otherwise, so the shift
    is then zero)."""
    if not fit_intercept:
        return np.concatenate([[x.shape[0]], _chunk_r(None, x, y).ravel()])
    head = np.column_stack([x[:SHIFT_ROWS], y[:SHIFT_ROWS]])
    shift = np.zeros(head.shape[1])
    if len(head) and np.any(np.abs(head.mean(axis=0)) > head.std(axis=0)):
        shift = head.mean(axis=0)
    return np.concatenate([[x.shape[0]], shift, _chunk_r(shift, x, y).ravel()])


class QRPart(NamedTuple):
    """Rows, column means and the R factor of the (centred) block [X | y]."""

    n: float
    mean: np.ndarray
    r: np.ndarray


def tsqr(reduce, n_features: int, fit_intercept: bool) -> QRPart:
    """Tall-and-skinny QR of [X | y], centred when fitting an intercept: an R per chunk
    (one pass over the data through ``reduce.map_chunks``, Q never formed), merged on the
    client in chunk order.

    Centring is a leading column of ones: the R of [1 | Z] holds ±√n and ±√n·mean(Z) in
    its first row and the R of the centred Z below it. Chunks shifted differently are
    brought to the first chunk's shift s before the merge: [1 | Z - s] is
    [1 | Z - sᵢ]·[[1, sᵢ - s], [0, I]], which changes only the first row of Rᵢ.
    """
    k = n_features + (2 if fit_intercept else 1)
    lead = k - 1 if fit_intercept else 0
    rows = reduce.map_chunks(partial(chunk_qr, fit_intercept), 1 + lead + k * k)
    n, shifts, rs = rows[:, 0].sum(), rows[:, 1 : 1 + lead], rows[:, 1 + lead :].reshape(-1, k, k)
    if not fit_intercept:
        return QRPart(float(n), np.zeros(k), r_factor(np.vstack(rs)))
    rs[:, 0, 1:] += rs[:, 0, :1] * (shifts - shifts[0])
    r = r_factor(np.vstack(rs))
    return QRPart(float(n), shifts[0] + r[0, 1:] / r[0, 0], r[1:, 1:])


def solve_tsqr(qr: QRPart, fit_intercept: bool, alpha: float = 0.0):
    """Least squares from the R factor of the (centred) [X | y]: a triangular solve.

    Ridge appends sqrt(alpha)·I rows and re-factors the small R. A (numerically) singular
    R gives the minimum-norm solution, with a warning. Returns coef, intercept, MSE.
    """
    r, p = qr.r, qr.r.shape[1] - 1
    if alpha > 0:
        penalty = np.zeros((p, p + 1))
        penalty[:, :p] = np.sqrt(alpha) * np.eye(p)
        r = r_factor(np.vstack([r, penalty]))
    r_coef, qty = r[:p, :p], r[:p, p]
    singular_values = np.linalg.svd(r_coef, compute_uv=False)  # those of X: R is p×p
    if singular_values[-1] <= RANK_RTOL * p * singular_values[0]:
        warnings.warn(
            "X is rank-deficient (or has fewer rows than columns); "
            "returning the minimum-norm least-squares solution",
            RuntimeWarning,
            stacklevel=3,
        )
        coef = np.linalg.lstsq(r_coef, qty, rcond=RANK_RTOL * p)[0]
    else:
        coef = scipy.linalg.solve_triangular(r_coef, qty)
    intercept = float(qr.mean[p] - qr.mean[:p] @ coef) if fit_intercept else 0.0
    residual = r[p, p] ** 2 if r.shape[0] > p else 0.0
    return coef, intercept, float(residual / qr.n)
