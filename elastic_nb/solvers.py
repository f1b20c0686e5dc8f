"""Pure solver functions over row-chunked data (a dask array, or one numpy block).

Data enter only through a *reducer*: a kernel maps one row block ``(x, y)`` to a small
1-D vector of sums, and the vectors are added up in a fixed order over chunk indices.
That is "map per shard, aggregate" done exactly, and the fixed order makes results
independent of which worker computed which chunk.

- :func:`blockwise_sum` builds a dask graph (a tree reduction) — for one-pass statistics
  on data that may not fit in memory.
- :func:`make_reducer` returns the per-iteration reducer used by the optimizers: on data
  persisted on a distributed cluster it submits one task per worker (over the chunks that
  worker holds) instead of a task per chunk, which is what makes small iterations cheap.

The rest is shaped as in dask-glm: loss *families* (squared, logistic, MLP) give a
per-chunk kernel ``[loss_sum, n, gradient...]``; *optimizers* (gradient descent, SGD,
Adam, Newton) see only ``loss_grad(theta)``. No widgets, no printing, no global state:
estimators in :mod:`elastic_nb.models` call these and report through a callback.
"""

from __future__ import annotations

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


def _kernel_per_chunk(kernel, xs, ys):
    return np.stack([kernel(x, y) for x, y in zip(xs, ys, strict=True)])


#: Data one per-iteration task reads at most: few tasks for small data (low overhead per
#: iteration), enough tasks for large data that the scheduler and the scaling policy see
#: the parallelism there is.
TASK_BYTES = 64 * 2**20


class PersistedReducer:
    """Sums a kernel over the chunks of (X, y) persisted on a distributed cluster.

    State
    -----
    x_futures, y_futures : list of Future
        The row blocks, in order; holding them keeps their lineage, so a chunk lost with
        its worker is recomputed by the scheduler.
    chunk_bytes : list of int
        Size of each row block.
    workers : set of str
        The workers seen at the last call; when new ones join, the chunks are rebalanced
        across all of them (distributed's ``rebalance``), so new workers share the work.

    Each call asks the scheduler where the chunks are and submits, per worker, tasks over
    runs of that worker's chunks of at most TASK_BYTES. The per-chunk vectors come back to
    the client and are added in chunk order: a fixed order, so the bits of the result do
    not depend on where anything ran.
    """

    def __init__(self, client, x_futures, y_futures, chunk_bytes):
        self.client = client
        self.x_futures = x_futures
        self.y_futures = y_futures
        self.chunk_bytes = chunk_bytes
        self.workers = set()

    @property
    def n_chunks(self) -> int:
        return len(self.x_futures)

    def _rebalance_if_grown(self):
        workers = set(self.client.scheduler_info(n_workers=-1)["workers"])
        if len(workers) > 1 and workers - self.workers and self.workers:
            self.client.rebalance(self.x_futures + self.y_futures)
        self.workers = workers

    def _groups(self, chunks):
        where = self.client.who_has([self.x_futures[i] for i in chunks])
        by_holder = defaultdict(list)
        for i in chunks:
            holders = sorted(where.get(self.x_futures[i].key, ()))
            by_holder[holders[0] if holders else None].append(i)
        groups = []
        for members in by_holder.values():
            group, size = [], 0
            for i in members:
                if group and size + self.chunk_bytes[i] > TASK_BYTES:
                    groups.append(group)
                    group, size = [], 0
                group.append(i)
                size += self.chunk_bytes[i]
            groups.append(group)
        return groups

    def __call__(self, kernel, size: int, chunks=None) -> np.ndarray:
        chunks = range(self.n_chunks) if chunks is None else chunks
        self._rebalance_if_grown()
        groups = self._groups(chunks)
        # no worker restrictions: the scheduler places each task where its chunks are,
        # and may move it to an idle worker
        tasks = [
            self.client.submit(
                _kernel_per_chunk,
                kernel,
                [self.x_futures[i] for i in group],
                [self.y_futures[i] for i in group],
                pure=False,
            )
            for group in groups
        ]
        rows = {}
        for group, result in zip(groups, self.client.gather(tasks), strict=True):
            rows.update(zip(group, result, strict=True))
        return np.stack([rows[i] for i in chunks]).sum(axis=0)


class GraphReducer:
    """Sums a kernel over the chunks of (X, y) with a dask graph (any scheduler)."""

    def __init__(self, X, y):
        self.X, self.y = X, y

    @property
    def n_chunks(self) -> int:
        return 1 if isinstance(self.X, np.ndarray) else self.X.numblocks[0]

    def __call__(self, kernel, size: int, chunks=None) -> np.ndarray:
        if chunks is None or isinstance(self.X, np.ndarray):
            return blockwise_sum(kernel, self.X, self.y, size)
        chunks = list(chunks)
        return blockwise_sum(kernel, self.X.blocks[chunks], self.y.blocks[chunks], size)


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
    return np.concatenate([(x.T @ x).ravel(), x.T @ y, x.sum(axis=0), [n, y.sum(), y @ y]])


def gram(X, y) -> Gram:
    """One pass: per chunk X_i^T X_i, X_i^T y_i and sums, tree-summed."""
    p = X.shape[1]
    flat = blockwise_sum(_gram_kernel, X, y, size=p * p + 2 * p + 3)
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


class QRPart(NamedTuple):
    """Rows, column means and the R factor of the (centred) block [X | y]."""

    n: float
    mean: np.ndarray
    r: np.ndarray


def _chunk_qr(shift, x, y):
    """QRPart of one chunk; ``shift`` (None: no centring) is subtracted from every chunk
    first, so that chunk means are small and their differences exact."""
    z = np.column_stack([x, y])
    if shift is None:
        return QRPart(float(z.shape[0]), np.zeros(z.shape[1]), _r_factor(z))
    z -= shift
    mean = z.mean(axis=0)
    return QRPart(float(z.shape[0]), mean, _r_factor(z - mean))


def _merge_qr(*parts):
    """Centred R of the union of blocks, without forming any XᵀX.

    The union's scatter is Σ Sᵢ + Σ nᵢ (μᵢ − μ)(μᵢ − μ)ᵀ, so its R is the R of the stacked
    [Rᵢ ; √nᵢ (μᵢ − μ)] — the QR form of Chan's parallel variance update.
    """
    n = sum(part.n for part in parts)
    mean = sum(part.n * part.mean for part in parts) / n
    rows = [part.r for part in parts] + [np.sqrt(part.n) * (part.mean - mean) for part in parts]
    return QRPart(n, mean, _r_factor(np.vstack(rows)))


#: Rows whose mean is the common shift of every chunk before centring.
SHIFT_ROWS = 1024


def tsqr(X, y, fit_intercept: bool) -> QRPart:
    """Tall-and-skinny QR of [X | y], centred when fitting an intercept: one R per chunk,
    merged in a fixed tree. Q is never formed; the data are read once (plus the first
    SHIFT_ROWS rows, whose mean is subtracted from all chunks: merging centred chunks then
    adds small, exactly computed mean differences instead of cancelling large means)."""
    shift = None
    if fit_intercept:
        head = slice(0, min(SHIFT_ROWS, X.shape[0]))
        x_head, y_head = dask.compute(X[head], y[head])
        shift = np.append(x_head.mean(axis=0), y_head.mean())
    if isinstance(X, np.ndarray):
        return _with_shift(_chunk_qr(shift, X, y), shift)
    parts = [
        dask.delayed(_chunk_qr)(shift, xb, yb)
        for xb, yb in zip(X.to_delayed().ravel(), y.to_delayed().ravel(), strict=True)
    ]
    while len(parts) > 1:
        parts = [
            dask.delayed(_merge_qr)(*parts[i : i + SPLIT_EVERY])
            for i in range(0, len(parts), SPLIT_EVERY)
        ]
    return _with_shift(parts[0].compute(), shift)


def _with_shift(part: QRPart, shift) -> QRPart:
    return part if shift is None else part._replace(mean=part.mean + shift)


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
    error, weight = prob - y, prob * (1.0 - prob)
    design = np.column_stack([x, np.ones(x.shape[0])]) if fit_intercept else x
    hessian = design.T @ (design * weight[:, None])
    loss = np.sum(np.logaddexp(0.0, z) - y * z)
    return np.concatenate([[loss, x.shape[0]], design.T @ error, hessian.ravel()])


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
    return np.concatenate(
        [x.sum(axis=0), np.einsum("ij,ij->j", x, x), [x.shape[0], y.sum(), y @ y]]
    )


class Moments(NamedTuple):
    n: float
    x_mean: np.ndarray
    x_mean_square: np.ndarray
    y_mean: float
    y_mean_square: float


def moments(X, y) -> Moments:
    """One pass: means and mean squares of the columns of X and of y."""
    p = X.shape[1]
    sums = blockwise_sum(_moments_kernel, X, y, size=2 * p + 3)
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


def to_standardized(theta, scaling: Scaling, fit_intercept: bool) -> np.ndarray:
    """Inverse of :func:`to_original`."""
    coef = theta[: len(scaling.scale)]
    if not fit_intercept:
        return coef * scaling.scale
    return np.append(coef * scaling.scale, theta[-1] + scaling.shift @ coef)


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
