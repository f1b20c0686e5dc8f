"""What a fit reports and saves as it goes: per-iteration records and checkpoints."""

from __future__ import annotations

import time
import warnings

from sklearn.exceptions import ConvergenceWarning

from .. import __version__
from .. import checkpoint as checkpoint_io
from .._validation import check_int


def current_workers():
    """Workers of the default distributed client, from its cluster's cache (no round trip)."""
    from distributed import default_client

    try:
        cluster = default_client().cluster
    except ValueError:  # no client: the threaded scheduler
        return None
    return None if cluster is None else len(cluster.scheduler_info.get("workers", {}))


class Progress:
    """Turns optimizer records into the public per-iteration record and keeps the history.

    State
    -----
    callback : callable or None
        The estimator's callback; it sees a copy of each record.
    distributed_fit : bool
        Whether to read the number of workers into each record.
    rows : int
        Rows one iteration reads (a mini-batch solver lowers it).
    history : list of dict
        Every record so far (restored from a checkpoint on resume).
    """

    def __init__(self, callback, distributed_fit: bool, rows: int):
        self.callback = callback
        self.distributed_fit = distributed_fit
        self.rows = rows
        self.history = []
        self.start = time.perf_counter()

    def __call__(self, record):
        record = {
            "iteration": record["iteration"],
            "loss": record["loss"],
            "elapsed": time.perf_counter() - self.start,
            "n_workers": current_workers() if self.distributed_fit else None,
            "rows": self.rows,
        }
        self.history.append(record)
        if self.callback is not None:
            self.callback(dict(record))


def warn_not_converged(result, model):
    """ConvergenceWarning when ``max_iter`` ran out before ``tol`` was met; called from
    an estimator's ``fit``, so the warning points at the line that called ``fit``."""
    if model.tol > 0 and not (result.converged or result.stopped):
        warnings.warn(
            f"{type(model).__name__}(solver={model.solver!r}) did not converge to "
            f"tol={model.tol} in max_iter={model.max_iter} iterations",
            ConvergenceWarning,
            stacklevel=3,
        )


class Checkpointer:
    """Checkpoints of one fit.

    State
    -----
    path : Path or None
        The checkpoint file (None: no checkpoints).
    every : int
        Save every ``every`` iterations, and at the end.
    resume : bool
        Start where the checkpoint left off, if there is one.
    progress : Progress
        Its history is saved with the state and restored on resume.
    meta : dict
        What the fit is (estimator, parameters, data shape); a resume checks it matches.
    last : (theta, state) or None
        The last completed iteration (or the one resumed from), for :meth:`save_last`.
    saved : int or None
        The iteration the checkpoint file holds, as far as this fit knows.
    """

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
        self.last = self.saved = None

    def start(self, theta0):
        """(theta, state) to start from; state None for a fresh run."""
        if not (self.resume and self.path.exists()):
            return theta0, None
        saved = checkpoint_io.load(self.path)
        checkpoint_io.check_compatible(saved, {**self.meta, "n_params": len(theta0)}, self.path)
        self.progress.history[:] = saved.history
        self.last, self.saved = (saved.theta, saved.state), saved.state["iteration"]
        return saved.theta, saved.state

    def save(self, theta, state):
        """Write the checkpoint now (atomically)."""
        if self.path is not None:
            meta = {**self.meta, "n_params": len(theta)}
            checkpoint_io.save(self.path, theta, state, self.progress.history, meta)
            self.saved = state["iteration"]

    def on_iteration(self, theta, state):
        """The optimizers' per-iteration hook: keep the iteration, save every ``every``."""
        self.last = (theta, state)
        if self.path is not None and state["iteration"] % self.every == 0:
            self.save(theta, state)

    def save_last(self):
        """Save the last completed iteration if the file does not hold it yet (a fit that
        cannot go on keeps its work); ``(iteration, path)``, None for either it lacks."""
        if self.last is None:
            return None, None
        theta, state = self.last
        if self.path is not None and self.saved != state["iteration"]:
            self.save(theta, state)
        return state["iteration"], self.path
