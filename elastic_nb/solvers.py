"""Pure solver functions over row-chunked data (a dask array, or one numpy block).

Data enter only through a *reducer*: a kernel maps one row block ``(x, y)`` to a small
1-D vector of sums, and the vectors are added up in a fixed order over chunk indices.
That is "map per shard, aggregate" done exactly, and the fixed order makes results
independent of which worker computed which chunk. (TSQR maps each chunk to its R factor
instead, and merges those on the client, again in chunk order.)

- :func:`blockwise_sum` builds a dask graph (a tree reduction) — for one-pass statistics
  on data that may not fit in memory.
- :func:`make_reducer` returns the reducer used by the fits: on data persisted on a
  distributed cluster it submits one task per worker (over the chunks that worker holds,
  gathered once into a single future) instead of a task per chunk, which is what makes
  small iterations cheap.

The rest is shaped as in dask-glm: loss *families* (squared, logistic, MLP) give a
per-chunk kernel ``[loss_sum, n, gradient...]``; *optimizers* (gradient descent, SGD,
Adam, Newton) see only ``loss_grad(theta)``. No widgets, no printing, no global state:
estimators in :mod:`elastic_nb.models` call these and report through a callback.
"""

from __future__ import annotations

import time
import warnings
from collections import defaultdict
from functools import partial
from typing import NamedTuple

import dask
import dask.array as da
import numpy as np
import scipy.linalg
from scipy.special import expit

#: Chunk results summed per node of the reduction tree.
SPLIT_EVERY = 8
#: Eigenvalues of the Gram matrix below RANK_RTOL · p · λmax count as zero. Rounding
#: alone leaves eigenvalues near machine epsilon · λmax; 100x that is still noise.
RANK_RTOL = 100 * np.finfo(np.float64).eps
#: solver="auto" leaves the normal equations for TSQR above this condition number of
#: XᵀX (that is, above 1e5 for X): past it the normal equations lose > 10 digits.
GRAM_CONDITION_LIMIT = 1e10


# ------------------------------------------------------------------------ reducers
#: Rows of the sub-blocks a kernel is applied to within a chunk. A block of up to ~32
#: features (2 MiB) stays in cache, so a kernel's second pass over it (Xᵀr after r = Xw - y,
#: say) reads cache, not memory; and a column of it (64 KiB) is below glibc's mmap threshold,
#: so per-block temporaries reuse heap memory instead of faulting in fresh pages each time.
BLOCK_ROWS = 8192


def _row_slices(n_rows: int, step: int):
    """Consecutive slices of ``step`` rows covering ``n_rows`` rows (at least one slice)."""
    return [slice(start, min(start + step, n_rows)) for start in range(0, max(n_rows, 1), step)]


def chunk_sum(kernel, x, y) -> np.ndarray:
    """``kernel(x, y)`` of one row block, as the sum of the kernel over its sub-blocks (in
    order): kernels return sums, so splitting the rows changes only the cache traffic."""
    blocks = iter(_row_slices(x.shape[0], BLOCK_ROWS))
    first = next(blocks)
    total = kernel(x[first], y[first])
    for rows in blocks:
        total = total + kernel(x[rows], y[rows])
    return total


def _aligned(a):
    """``a``, or an aligned copy of it if a transfer between processes left it misaligned:
    numpy then computes a matrix product with its own loops instead of BLAS, which round
    differently, and the same chunk would give other bits on another worker."""
    return a if a.flags.aligned else a.copy()


def _stacked(fn, x, y):
    return fn(_aligned(x), _aligned(y.reshape(-1)))[None, :]


def _per_chunk_array(fn, X, y, size: int):
    """The dask array whose row i is ``fn(x_i, y_i)``, a length-``size`` vector."""
    return da.map_blocks(
        _stacked,
        fn,
        X,
        y[:, None],
        chunks=((1,) * X.numblocks[0], (size,)),
        dtype=np.float64,
        meta=np.empty((0, 0)),
    )


def blockwise_sum(kernel, X, y, size: int) -> np.ndarray:
    """Sum ``kernel(x_i, y_i)`` (a length-``size`` vector) over the row blocks of X, y."""
    if isinstance(X, np.ndarray):
        return chunk_sum(kernel, X, y)
    partials = _per_chunk_array(partial(chunk_sum, kernel), X, y, size)
    return np.asarray(partials.sum(axis=0, split_every=SPLIT_EVERY).compute())


class ChunkGroup:
    """Row blocks ``(x, y)`` of one worker as a single object: a task over them then
    depends on one future, not two per chunk, which is most of what a small iteration
    costs. To dask it weighs only itself: the arrays belong to the chunk futures, and
    counting them twice would make the worker spill."""

    __slots__ = ("pairs",)

    def __init__(self, pairs):
        self.pairs = tuple(pairs)

    def __len__(self):
        return len(self.pairs)

    def __getitem__(self, index):
        return self.pairs[index]


def _per_chunk(fn, pairs, positions=None):
    """``fn(x, y)`` for each ``(x, y)`` of ``pairs`` (those at ``positions``), stacked."""
    chosen = pairs if positions is None else [pairs[k] for k in positions]
    return np.stack([fn(_aligned(x), _aligned(y)) for x, y in chosen])


#: Data one per-iteration task reads at most: few tasks for small data (low overhead per
#: iteration), enough tasks for large data that the scheduler and the scaling policy see
#: the parallelism there is.
TASK_BYTES = 64 * 2**20
#: Seconds between looks at where the chunks are (a scheduler round trip): in between, an
#: iteration sends the scheduler one message and waits for one answer.
PLACEMENT_CHECK_SECONDS = 1.0


class _Group(NamedTuple):
    """Chunks that one task per iteration reads, and what that task depends on."""

    holder: str | None  # the worker holding them when the group was made
    chunks: tuple  # chunk indices, ascending
    handle: object  # a ChunkGroup future, or [(x future, y future)] for a lone chunk


class PersistedReducer:
    """Sums a kernel (or maps a function) over the chunks of (X, y) persisted on a
    distributed cluster.

    State
    -----
    x_futures, y_futures : list of Future
        The row blocks, in order; holding them keeps their lineage, so a chunk lost with
        its worker is recomputed by the scheduler.
    chunk_bytes : list of int
        Size of each row block.
    workers : set of str
        The workers seen at the last look; when new ones join, the chunks are rebalanced
        across all of them (distributed's ``rebalance``), so new workers share the work.
    groups : list of _Group
        Per worker, runs of its chunks of at most TASK_BYTES; a run of several chunks is
        gathered once into a ChunkGroup future on its worker. Made again when, at a look
        (every PLACEMENT_CHECK_SECONDS, or at once if a group was lost), the chunks or a
        group are no longer where they were.

    Each call submits one task per group, in one message. The per-chunk vectors come back
    to the client and are added in chunk order: a fixed order, so the bits of the result
    do not depend on where anything ran.
    """

    def __init__(self, client, x_futures, y_futures, chunk_bytes):
        self.client = client
        self.x_futures = x_futures
        self.y_futures = y_futures
        self.chunk_bytes = chunk_bytes
        self.workers = set()
        self.groups = []
        self._looked_at = -np.inf
        # results of earlier calls, released together once per look, just after a call's
        # tasks went out: the client batches messages every 10 ms, and a release sent just
        # before a call would hold its tasks back for up to that long
        self._done = []

    @property
    def n_chunks(self) -> int:
        return len(self.x_futures)

    def _rebalance_if_grown(self):
        workers = set(self.client.scheduler_info(n_workers=-1)["workers"])
        if len(workers) > 1 and workers - self.workers and self.workers:
            self.client.rebalance(self.x_futures + self.y_futures)
        self.workers = workers

    def _layout(self, where) -> list:
        """(holder, chunks) runs: each chunk goes to the least loaded so far (in bytes) of
        the workers holding both its x and y (else its x; None if lost), and each worker's
        chunks are cut into runs of at most TASK_BYTES."""
        by_holder, load = defaultdict(list), defaultdict(int)
        for i, (x, y) in enumerate(zip(self.x_futures, self.y_futures, strict=True)):
            x_at, y_at = set(where.get(x.key, ())), set(where.get(y.key, ()))
            holder = min(sorted(x_at & y_at or x_at) or [None], key=load.__getitem__)
            load[holder] += self.chunk_bytes[i]
            by_holder[holder].append(i)
        runs = []
        for holder, members in by_holder.items():
            run, size = [], 0
            for i in members:
                if run and size + self.chunk_bytes[i] > TASK_BYTES:
                    runs.append((holder, tuple(run)))
                    run, size = [], 0
                run.append(i)
                size += self.chunk_bytes[i]
            runs.append((holder, tuple(run)))
        return runs

    def _group(self, holder, chunks) -> _Group:
        pairs = [(self.x_futures[i], self.y_futures[i]) for i in chunks]
        if len(pairs) > 1:  # a lone chunk is its own futures: the scheduler sees its size
            pairs = self.client.submit(ChunkGroup, pairs, pure=False)
        return _Group(holder, chunks, pairs)

    def _in_place(self, where, layout) -> bool:
        """Whether the groups still match ``layout`` and each group future is on its
        holder only (a stolen task leaves a copy of its group behind)."""
        if [(g.holder, g.chunks) for g in self.groups] != layout:
            return False
        futures = [g for g in self.groups if len(g.chunks) > 1]
        return all(set(where.get(g.handle.key, ())) <= {g.holder} for g in futures)

    def _look(self):
        """Where the chunks are now; groups made again if they moved."""
        from distributed import wait

        self._looked_at = time.monotonic()
        self._rebalance_if_grown()
        wait(self.x_futures + self.y_futures)  # a chunk still being made has no place yet
        handles = [g.handle for g in self.groups if len(g.chunks) > 1]
        where = self.client.who_has(self.x_futures + self.y_futures + handles)
        layout = self._layout(where)
        if not self._in_place(where, layout):
            self.groups = [self._group(holder, chunks) for holder, chunks in layout]

    def _lost_a_group(self) -> bool:
        return any(
            g.handle.status in ("error", "lost", "cancelled")
            for g in self.groups
            if len(g.chunks) > 1
        )

    def map_chunks(self, fn, size: int, chunks=None) -> np.ndarray:
        """Rows ``fn(x_i, y_i)`` (length ``size``) of the chunks i in ``chunks`` (all by
        default), in that order."""
        chunks = range(self.n_chunks) if chunks is None else chunks
        look = time.monotonic() - self._looked_at > PLACEMENT_CHECK_SECONDS
        if look or self._lost_a_group():
            self._look()
        wanted = set(chunks)
        jobs = []
        for group in self.groups:
            positions = [k for k, i in enumerate(group.chunks) if i in wanted]
            if positions:
                whole = len(positions) == len(group.chunks)
                jobs.append((group, None if whole else positions))
        # no worker restrictions: the scheduler places each task where its data are
        tasks = self.client.map(
            partial(_per_chunk, fn),
            [group.handle for group, _ in jobs],
            [positions for _, positions in jobs],
            pure=False,
        )
        if look:
            self._done.clear()
        rows = {}
        for (group, positions), result in zip(jobs, self.client.gather(tasks), strict=True):
            indices = group.chunks if positions is None else [group.chunks[k] for k in positions]
            rows.update(zip(indices, result, strict=True))
        self._done.extend(tasks)
        return np.stack([rows[i] for i in chunks])

    def __call__(self, kernel, size: int, chunks=None) -> np.ndarray:
        """Sum of ``kernel`` over the chunks (all, or those in ``chunks``), in chunk order."""
        return self.map_chunks(partial(chunk_sum, kernel), size, chunks).sum(axis=0)


class GraphReducer:
    """Sums a kernel (or maps a function) over the chunks of (X, y) with a dask graph (any
    scheduler)."""

    def __init__(self, X, y):
        self.X, self.y = X, y

    @property
    def n_chunks(self) -> int:
        return 1 if isinstance(self.X, np.ndarray) else self.X.numblocks[0]

    def _blocks(self, chunks):
        if chunks is None or isinstance(self.X, np.ndarray):
            return self.X, self.y
        chunks = list(chunks)
        return self.X.blocks[chunks], self.y.blocks[chunks]

    def map_chunks(self, fn, size: int, chunks=None) -> np.ndarray:
        """As :meth:`PersistedReducer.map_chunks` (numpy data are one chunk)."""
        X, y = self._blocks(chunks)
        if isinstance(X, np.ndarray):
            return fn(X, y)[None, :]
        return np.asarray(_per_chunk_array(fn, X, y, size).compute())

    def __call__(self, kernel, size: int, chunks=None) -> np.ndarray:
        """Sum of ``kernel`` over the chunks, tree-summed on the workers."""
        return blockwise_sum(kernel, *self._blocks(chunks), size)


def persisted_futures(array):
    """The futures holding ``array``'s own chunks, in order, or None if it is not
    persisted (a lazy array built on persisted data has futures, but not its own)."""
    from distributed import futures_of

    by_key = {f.key: f for f in futures_of(array)}
    keys = list(dask.core.flatten(array.__dask_keys__()))
    if not by_key or any(k not in by_key for k in keys):
        return None
    return [by_key[k] for k in keys]


def make_reducer(X, y):
    """The fastest exact reducer for (X, y): per worker if persisted on a cluster."""
    if isinstance(X, da.Array):
        x_futures, y_futures = persisted_futures(X), persisted_futures(y)
        if x_futures is not None and y_futures is not None:
            row_bytes = X.dtype.itemsize * X.shape[1] + y.dtype.itemsize
            chunk_bytes = [rows * row_bytes for rows in X.chunks[0]]
            return PersistedReducer(x_futures[0].client, x_futures, y_futures, chunk_bytes)
    return GraphReducer(X, y)


# ------------------------------------------------------------- exact least squares
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
    column_sums = np.ones(n) @ x  # BLAS; x.sum(axis=0) is several times slower
    return np.concatenate([(x.T @ x).ravel(), x.T @ y, column_sums, [n, y.sum(), y @ y]])


def gram(X, y) -> Gram:
    """One pass: per chunk X_i^T X_i, X_i^T y_i and sums, added in chunk order."""
    p = X.shape[1]
    flat = make_reducer(X, y)(_gram_kernel, size=p * p + 2 * p + 3)
    xtx = flat[: p * p].reshape(p, p)
    xty, xsum = flat[p * p : p * p + p], flat[p * p + p : p * p + 2 * p]
    n, ysum, yty = flat[-3:]
    return Gram(xtx, xty, xsum, n, ysum, yty)


def centred_system(g: Gram, fit_intercept: bool, alpha: float = 0.0):
    """The p×p system (A, b) of the normal equations; centred when fitting an intercept,
    which keeps it as well conditioned as the centred data."""
    if fit_intercept:
        xmean, ymean = g.xsum / g.n, g.ysum / g.n
        a = g.xtx - g.n * np.outer(xmean, xmean)
        b = g.xty - g.n * xmean * ymean
    else:
        a, b = g.xtx, g.xty
    return a + alpha * np.eye(a.shape[0]), b


def gram_condition(a) -> float:
    """Condition number of the symmetric positive semi-definite matrix ``a``."""
    eigenvalues = np.linalg.eigvalsh(a)
    return np.inf if eigenvalues[0] <= 0 else float(eigenvalues[-1] / eigenvalues[0])


def solve_normal_equations(g: Gram, fit_intercept: bool, alpha: float = 0.0):
    """Least squares (ridge if ``alpha`` > 0) from the Gram statistics.

    Cholesky when the system is numerically positive definite; otherwise the
    minimum-norm solution, with a warning.
    """
    a, b = centred_system(g, fit_intercept, alpha)
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
    intercept = float(g.ysum / g.n - (g.xsum / g.n) @ coef) if fit_intercept else 0.0
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


def _r_factor(z):
    """R of the QR factorization of z (any number of rows), square and upper triangular."""
    k = z.shape[1]
    r = scipy.linalg.lapack.dgeqrf(np.asfortranarray(z), overwrite_a=1)[0]
    r = np.triu(r[: min(z.shape[0], k)])
    return r if r.shape[0] == k else np.vstack([r, np.zeros((k - r.shape[0], k))])


def _merge_r(*rs):
    """R of the rows stacked under one another, from their R factors (TSQR's step)."""
    return _r_factor(np.vstack(rs))


def _fill_design(z, shift, x, y):
    """z ← [1 | x - shift | y - shift], or [x | y] when ``shift`` is None."""
    lead = 0 if shift is None else 1
    z[:, lead:-1], z[:, -1] = x, y
    if shift is not None:
        if shift.any():
            z[:, 1:] -= shift
        z[:, 0] = 1.0


#: Rows of the blocks QR'd one by one within a chunk: a Householder sweep reads its block
#: once per column, so the block (0.5 MiB for 32 features) must stay in a core's cache.
QR_BLOCK_ROWS = 2048
#: Columns per panel of LAPACK's blocked triangular-pentagonal QR (dtpqrt); measured best.
QR_PANEL = 8


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


#: Rows whose mean a chunk subtracts from all its rows before the QR.
SHIFT_ROWS = 1024


def _chunk_qr(fit_intercept: bool, x, y):
    """[shift, R] of one chunk, flat (just R without an intercept). The QR centres through
    its column of ones, which cancels digits in a column whose mean exceeds its spread; if
    one does in the chunk's first SHIFT_ROWS rows, their mean is subtracted first (a pass
    over the data that buys nothing otherwise, so the shift is then zero)."""
    if not fit_intercept:
        return _chunk_r(None, x, y).ravel()
    head = np.column_stack([x[:SHIFT_ROWS], y[:SHIFT_ROWS]])
    shift = np.zeros(head.shape[1])
    if len(head) and np.any(np.abs(head.mean(axis=0)) > head.std(axis=0)):
        shift = head.mean(axis=0)
    return np.concatenate([shift, _chunk_r(shift, x, y).ravel()])


class QRPart(NamedTuple):
    """Rows, column means and the R factor of the (centred) block [X | y]."""

    n: float
    mean: np.ndarray
    r: np.ndarray


def tsqr(X, y, fit_intercept: bool) -> QRPart:
    """Tall-and-skinny QR of [X | y], centred when fitting an intercept: an R per chunk
    (one pass over the data, Q never formed), merged on the client in chunk order.

    Centring is a leading column of ones: the R of [1 | Z] holds ±√n and ±√n·mean(Z) in
    its first row and the R of the centred Z below it. Chunks shifted differently are
    brought to the first chunk's shift s before the merge: [1 | Z - s] is
    [1 | Z - sᵢ]·[[1, sᵢ - s], [0, I]], which changes only the first row of Rᵢ.
    """
    k = X.shape[1] + (2 if fit_intercept else 1)
    lead = k - 1 if fit_intercept else 0
    rows = make_reducer(X, y).map_chunks(partial(_chunk_qr, fit_intercept), lead + k * k)
    shifts, rs = rows[:, :lead], rows[:, lead:].reshape(-1, k, k)
    n = float(X.shape[0])
    if not fit_intercept:
        return QRPart(n, np.zeros(k), _merge_r(*rs))
    rs[:, 0, 1:] += rs[:, 0, :1] * (shifts - shifts[0])
    r = _merge_r(*rs)
    return QRPart(n, shifts[0] + r[0, 1:] / r[0, 0], r[1:, 1:])


def solve_tsqr(qr: QRPart, fit_intercept: bool, alpha: float = 0.0):
    """Least squares from the R factor of the (centred) [X | y]: a triangular solve.

    Ridge appends sqrt(alpha)·I rows and re-factors the small R. A (numerically) singular
    R gives the minimum-norm solution, with a warning. Returns coef, intercept, MSE.
    """
    r, p = qr.r, qr.r.shape[1] - 1
    if alpha > 0:
        penalty = np.zeros((p, p + 1))
        penalty[:, :p] = np.sqrt(alpha) * np.eye(p)
        r = _r_factor(np.vstack([r, penalty]))
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


# ---------------------------------------------------------------- loss families
def split_theta(theta, fit_intercept):
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


def _logistic_newton_kernel(coef, intercept, fit_intercept, x, y):
    z = x @ coef + intercept
    prob = expit(z)
    error = prob - y
    design = np.column_stack([x, np.ones(x.shape[0])]) if fit_intercept else x
    # Dᵀ diag(w) D as (√w D)ᵀ(√w D): one symmetric product (BLAS syrk), half the flops
    scaled = design * np.sqrt(prob * (1.0 - prob))[:, None]
    loss = np.sum(np.logaddexp(0.0, z) - y * z)
    return np.concatenate([[loss, x.shape[0]], design.T @ error, (scaled.T @ scaled).ravel()])


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


# ------------------------------------------------------- standardized coordinates
class Scaling(NamedTuple):
    """Column shift and scale that make the features centred (if fitting an intercept)
    and of unit variance."""

    shift: np.ndarray
    scale: np.ndarray


def _moments_kernel(x, y):
    column_sums = np.ones(x.shape[0]) @ x  # BLAS; x.sum(axis=0) is several times slower
    return np.concatenate([column_sums, np.einsum("ij,ij->j", x, x), [x.shape[0], y.sum(), y @ y]])


class Moments(NamedTuple):
    n: float
    x_mean: np.ndarray
    x_mean_square: np.ndarray
    y_mean: float
    y_mean_square: float


def moments(X, y, reduce=None) -> Moments:
    """One pass: means and mean squares of the columns of X and of y (through ``reduce``,
    a reducer of X and y, if given)."""
    p = X.shape[1]
    reduce = make_reducer(X, y) if reduce is None else reduce
    sums = reduce(_moments_kernel, size=2 * p + 3)
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


# --------------------------------------------------------------------- optimizers
class OptimizeResult(NamedTuple):
    theta: np.ndarray
    loss: float
    n_iter: int
    converged: bool
    stopped: bool  # the callback raised StopIteration
    state: dict  # everything a restart needs, including "iteration"


def _report(callback, iteration, loss):
    """Call back; True if the callback asked to stop."""
    if callback is None:
        return False
    try:
        callback({"iteration": iteration, "loss": float(loss)})
    except StopIteration:
        return True
    return False


#: A loss this many times its first value means the iterates diverge.
DIVERGENCE_FACTOR = 1e6


def _check_finite(loss, iteration, step, first_loss):
    if not np.isfinite(loss) or loss > DIVERGENCE_FACTOR * max(first_loss, 1e-300):
        raise FloatingPointError(
            f"the loss diverged ({first_loss:.3g} -> {loss:.3g} at iteration {iteration}): "
            f"the learning rate ({step:g}) is too large for this data"
        )


class _Loop:
    """Iteration bookkeeping shared by the optimizers: numbering that continues across a
    restart, the callback, the checkpoint hook and the result."""

    def __init__(self, max_iter, callback, on_iteration, state):
        self.max_iter, self.callback, self.on_iteration = max_iter, callback, on_iteration
        self.first = int(state.get("iteration", 0)) + 1 if state else 1

    def iterations(self):
        return range(self.first, self.max_iter + 1)

    def after(self, iteration, theta, loss, state, converged):
        """Record one finished iteration; a result if the run ends here, else None."""
        state = {**state, "iteration": iteration}
        stopped = _report(self.callback, iteration, loss)  # the history first, then a save
        if self.on_iteration is not None:
            self.on_iteration(theta, state)
        if stopped:
            return OptimizeResult(theta, loss, iteration, converged, True, state)
        if converged:
            return OptimizeResult(theta, loss, iteration, True, False, state)
        return None


def gradient_descent(
    loss_grad,
    theta0,
    *,
    step,
    max_iter,
    tol,
    line_search=True,
    callback=None,
    state=None,
    on_iteration=None,
) -> OptimizeResult:
    """Full-batch gradient descent ``θ ← θ − α ∇J(θ)``, one data pass per iteration.

    With ``line_search`` the step starts at ``step`` (1/L from a Lipschitz bound) and
    follows Armijo backtracking: a step is kept only if J fell by at least α/2 ||∇J||²
    (always true for α <= 1/L), halved otherwise, and grown after accepted steps so a
    pessimistic bound costs a few iterations, not hundreds. Each candidate's loss and
    gradient come from the same pass, so a rejected step costs one pass and no more.

    Stops when max |∇J| <= tol · max |∇J(θ0)|, after ``max_iter`` iterations in all, or
    when ``callback({"iteration", "loss"})`` raises StopIteration. ``state`` (from a result
    or a checkpoint, with ``theta0`` its theta) continues a run bit for bit;
    ``on_iteration(theta, state)`` sees every iteration's end.
    """
    theta = np.asarray(theta0, dtype=np.float64).copy()
    loop = _Loop(max_iter, callback, on_iteration, state)
    loss, grad = loss_grad(theta)
    state = state or {
        "step": step,
        "growth": 2.0,
        "threshold": tol * np.max(np.abs(grad), initial=0.0),
        "first_loss": loss,
    }
    step, growth = state["step"], state["growth"]
    if not np.any(grad):
        return OptimizeResult(theta, loss, loop.first - 1, True, False, state)
    for iteration in loop.iterations():
        candidate = theta - step * grad
        new_loss, new_grad = loss_grad(candidate)
        if not line_search or new_loss <= loss - 0.5 * step * (grad @ grad):
            theta, loss, grad = candidate, new_loss, new_grad
            if line_search:
                step *= growth
        else:
            step *= 0.5
            growth = 1.25  # past the first backtrack, creep up instead of bouncing
        state = {**state, "step": step, "growth": growth}
        converged = bool(np.max(np.abs(grad)) <= state["threshold"])
        ended = loop.after(iteration, theta, loss, state, converged)
        if ended is not None:
            return ended
        _check_finite(loss, iteration, step, state["first_loss"])
    return OptimizeResult(theta, loss, max_iter, False, False, {**state, "iteration": max_iter})


def _adam_update(learning_rate, beta1, beta2, epsilon):
    def update(grad, state, t):
        m = beta1 * state.get("m", 0.0) + (1 - beta1) * grad
        v = beta2 * state.get("v", 0.0) + (1 - beta2) * grad * grad
        m_hat, v_hat = m / (1 - beta1**t), v / (1 - beta2**t)
        return -learning_rate * m_hat / (np.sqrt(v_hat) + epsilon), {"m": m, "v": v}

    return update


def _momentum_update(learning_rate, momentum):
    def update(grad, state, t):
        velocity = momentum * state.get("velocity", 0.0) - learning_rate * grad
        return velocity, {"velocity": velocity}

    return update


def _stochastic(
    loss_grad,
    theta0,
    update,
    step,
    *,
    max_iter,
    tol,
    n_iter_no_change,
    batches,
    callback,
    state,
    on_iteration,
) -> OptimizeResult:
    """The loop of Adam and SGD: a (mini-batch) gradient, an update rule, and a stop when
    the loss has not improved by ``tol`` (relative) for ``n_iter_no_change`` iterations."""
    theta = np.asarray(theta0, dtype=np.float64).copy()
    loop = _Loop(max_iter, callback, on_iteration, state)
    state = dict(state or {"best": np.inf, "stale": 0, "first_loss": None})
    loss = np.inf
    for iteration in loop.iterations():
        loss, grad = loss_grad(theta, chunks=None if batches is None else batches(iteration - 1))
        if state["first_loss"] is None:
            state["first_loss"] = loss
        _check_finite(loss, iteration, step, state["first_loss"])
        delta, moments = update(grad, state, iteration)
        theta = theta + delta
        if loss < state["best"] - tol * max(abs(state["best"]), 1e-12):
            best, stale = loss, 0
        else:
            best, stale = min(state["best"], loss), state["stale"] + 1
        state = {**state, **moments, "best": best, "stale": stale}
        ended = loop.after(iteration, theta, loss, state, stale >= n_iter_no_change)
        if ended is not None:
            return ended
    return OptimizeResult(theta, loss, max_iter, False, False, {**state, "iteration": max_iter})


def adam(
    loss_grad,
    theta0,
    *,
    learning_rate,
    max_iter,
    tol,
    n_iter_no_change=10,
    beta1=0.9,
    beta2=0.999,
    epsilon=1e-8,
    batches=None,
    callback=None,
    state=None,
    on_iteration=None,
) -> OptimizeResult:
    """Adam (Kingma & Ba) with bias correction: m̂ = m/(1−β₁ᵗ), v̂ = v/(1−β₂ᵗ).

    ``loss_grad(theta, chunks=...)`` is evaluated on ``batches(t)`` (chunk indices of a
    mini-batch) or on all data when ``batches`` is None. Stops when the loss has not
    improved by ``tol`` (relative) for ``n_iter_no_change`` iterations; ``state`` and
    ``on_iteration`` as in :func:`gradient_descent`.
    """
    update = _adam_update(learning_rate, beta1, beta2, epsilon)
    return _stochastic(
        loss_grad,
        theta0,
        update,
        learning_rate,
        max_iter=max_iter,
        tol=tol,
        n_iter_no_change=n_iter_no_change,
        batches=batches,
        callback=callback,
        state=state,
        on_iteration=on_iteration,
    )


def sgd(
    loss_grad,
    theta0,
    *,
    learning_rate,
    max_iter,
    tol,
    n_iter_no_change=10,
    momentum=0.0,
    batches=None,
    callback=None,
    state=None,
    on_iteration=None,
) -> OptimizeResult:
    """(Mini-batch) stochastic gradient descent with optional heavy-ball momentum; same
    batches, stopping rule, ``state`` and ``on_iteration`` as :func:`adam`."""
    update = _momentum_update(learning_rate, momentum)
    return _stochastic(
        loss_grad,
        theta0,
        update,
        learning_rate,
        max_iter=max_iter,
        tol=tol,
        n_iter_no_change=n_iter_no_change,
        batches=batches,
        callback=callback,
        state=state,
        on_iteration=on_iteration,
    )


def _newton_direction(hessian, grad):
    return np.linalg.lstsq(hessian, grad, rcond=None)[0]


def newton(
    loss_grad_hess, theta0, *, max_iter, tol, callback=None, state=None, on_iteration=None
) -> OptimizeResult:
    """Damped Newton's method: one pass per iteration gives loss, gradient and Hessian.

    The full step is tried first; if the loss rose, the step is halved from the previous
    point. Stops when max |∇J| <= tol · max |∇J(θ0)|; ``state``/``on_iteration`` as in
    :func:`gradient_descent`.
    """
    theta = np.asarray(theta0, dtype=np.float64).copy()
    loop = _Loop(max_iter, callback, on_iteration, state)
    loss, grad, hessian = loss_grad_hess(theta)
    state = state or {"threshold": tol * np.max(np.abs(grad), initial=0.0), "scale": 1.0}
    direction, scale = _newton_direction(hessian, grad), state["scale"]
    for iteration in loop.iterations():
        candidate = theta - scale * direction
        new_loss, new_grad, new_hessian = loss_grad_hess(candidate)
        if new_loss <= loss + 1e-12 * abs(loss):
            theta, loss, grad = candidate, new_loss, new_grad
            direction, scale = _newton_direction(new_hessian, grad), 1.0
        else:
            scale *= 0.5
        state = {**state, "scale": scale}
        converged = bool(np.max(np.abs(grad)) <= state["threshold"])
        ended = loop.after(iteration, theta, loss, state, converged)
        if ended is not None:
            return ended
    return OptimizeResult(theta, loss, max_iter, False, False, {**state, "iteration": max_iter})


def chunk_batches(n_chunks: int, batch_chunks: int, random_state: int):
    """Mini-batches of ``batch_chunks`` chunk indices; batch t is a pure function of
    (random_state, t), so a restarted run draws the same batches (no RNG state to save)."""

    def batches(t):
        rng = np.random.default_rng([random_state, t])
        return sorted(rng.choice(n_chunks, size=batch_chunks, replace=False).tolist())

    return batches


# ------------------------------------------------------------------------ MLP family
def _relu_derivative(z, a):
    return (z > 0).astype(z.dtype)


ACTIVATIONS = {
    # name: (activation, derivative given pre-activation z and activation a)
    "relu": (lambda z: np.maximum(z, 0.0), _relu_derivative),
    "sigmoid": (expit, lambda z, a: a * (1.0 - a)),
    "tanh": (np.tanh, lambda z, a: 1.0 - a * a),
}


class Network(NamedTuple):
    """A dense network: ``layer_sizes`` = (inputs, hidden..., 1) and how it is fed.

    Inputs are standardized inside the kernel with ``scaling``; a regression target is
    standardized with ``target`` = (mean, std), so one learning rate suits any units.
    ``output`` is "identity" (squared error) or "logistic" (binary log-loss).
    """

    layer_sizes: tuple
    activation: str
    output: str
    scaling: Scaling
    target: tuple = (0.0, 1.0)

    @property
    def n_params(self) -> int:
        sizes = self.layer_sizes
        return sum((a + 1) * b for a, b in zip(sizes[:-1], sizes[1:], strict=True))


def unpack(theta, layer_sizes):
    """Split a flat parameter vector into [(W, b), ...] views."""
    params, start = [], 0
    for fan_in, fan_out in zip(layer_sizes[:-1], layer_sizes[1:], strict=True):
        weights = theta[start : start + fan_in * fan_out].reshape(fan_in, fan_out)
        start += fan_in * fan_out
        params.append((weights, theta[start : start + fan_out]))
        start += fan_out
    return params


def glorot_init(layer_sizes, random_state: int) -> np.ndarray:
    """Glorot-uniform weights, zero biases (Keras' default for dense layers)."""
    rng = np.random.default_rng(random_state)
    parts = []
    for fan_in, fan_out in zip(layer_sizes[:-1], layer_sizes[1:], strict=True):
        limit = np.sqrt(6.0 / (fan_in + fan_out))
        parts += [rng.uniform(-limit, limit, fan_in * fan_out), np.zeros(fan_out)]
    return np.concatenate(parts)


def network_output(net: Network, theta, x):
    """Raw output (before the output link) of the network for rows ``x``; also the
    layer activations and pre-activations, for backpropagation."""
    activate = ACTIVATIONS[net.activation][0]
    params = unpack(theta, net.layer_sizes)
    a = (x - net.scaling.shift) / net.scaling.scale
    activations, pre_activations = [a], []
    for weights, bias in params[:-1]:
        z = a @ weights + bias
        a = activate(z)
        pre_activations.append(z)
        activations.append(a)
    weights, bias = params[-1]
    return (a @ weights + bias)[:, 0], activations, pre_activations


def _network_kernel(net: Network, theta, x, y):
    out, activations, pre_activations = network_output(net, theta, x)
    if net.output == "identity":
        diff = out - (y - net.target[0]) / net.target[1]
        loss, delta = diff @ diff, 2.0 * diff
    else:
        loss, delta = np.sum(np.logaddexp(0.0, out) - y * out), expit(out) - y
    derivative = ACTIVATIONS[net.activation][1]
    params = unpack(theta, net.layer_sizes)
    grads = []
    delta = delta[:, None]
    for layer in range(len(params) - 1, -1, -1):
        a_in = activations[layer]
        grads.append((a_in.T @ delta, delta.sum(axis=0)))
        if layer:
            z, a = pre_activations[layer - 1], activations[layer]
            delta = (delta @ params[layer][0].T) * derivative(z, a)
    flat = [g for weights, bias in reversed(grads) for g in (weights.ravel(), bias)]
    return np.concatenate([[loss, x.shape[0]], *flat])


def network_loss_grad(reduce, net: Network, l2: float, theta, chunks=None):
    """Mean loss (+ (l2/2)·||weights||²) of the network and its gradient."""
    sums = reduce(partial(_network_kernel, net, theta), size=net.n_params + 2, chunks=chunks)
    n = sums[1]
    loss, grad = sums[0] / n, sums[2:] / n
    if l2:
        weights_only = np.concatenate(
            [np.r_[np.ones(w.size), np.zeros(b.size)] for w, b in unpack(theta, net.layer_sizes)]
        )
        loss += 0.5 * l2 * np.sum(weights_only * theta * theta)
        grad = grad + l2 * weights_only * theta
    return loss, grad
