"""Leases: a training run's claim on the cluster, plain client-side state."""

from __future__ import annotations

import logging
import math
import threading
import time

import numpy as np

from .._validation import check_float, check_int

logger = logging.getLogger(__name__)


class Lease:
    """A training run's claim on the cluster: how many iterations remain, and at what pace.

    Create one with :meth:`elastic_nb.ElasticCluster.training`; use it as a context manager
    (or call :meth:`close`), and call :meth:`step` once per finished iteration (optional:
    without steps the policy only knows a run is in progress). ``lease.callback`` is a model
    ``callback`` that steps the lease.

    **State**

    steps : list of float
        ``time.time()`` at the start of the lease and at the end of every iteration so far.
    started_at : float
        When the lease was taken.
    closed_at : float or None
        When it was closed (None while it is active).

    Parameters
    ----------
    book : LeaseBook
        The cluster's leases; the lease adds itself.
    iterations : int or None
        Iterations the run will do (None: unknown, treated as "many").
    slowdown : float, default 1.1
        Pace preference: the run may be at most this factor slower per iteration than on
        the maximum width; the policy keeps the smallest width within it.
    deadline : float or None
        Alternatively, seconds from now by which the run should finish; the policy keeps the
        smallest width predicted to make it (the maximum if none does). Needs
        ``iterations``: the prediction is iterations left x seconds per iteration.
    name : str or None
        A name for decisions and logs (default ``lease-<id>``).

    Raises
    ------
    TypeError, ValueError
        A bad argument, named in the message.
    """

    def __init__(self, book, iterations=None, *, slowdown=1.1, deadline=None, name=None):
        self.iterations = check_int("iterations", iterations, minimum=1, allow_none=True)
        self.slowdown = check_float("slowdown", slowdown, minimum=1.0)
        self.deadline = check_float("deadline", deadline, positive=True, allow_none=True)
        if self.deadline is not None and self.iterations is None:
            raise ValueError(
                "deadline needs iterations=<the run's total>: the policy meets a deadline by "
                "predicting how long the iterations left take"
            )
        if name is not None and not isinstance(name, str):
            raise TypeError(f"name must be a string, got {name!r}")
        self.name = name or f"lease-{id(self):x}"
        self._book = book
        self.started_at = time.time()
        self.steps = [self.started_at]
        self.closed_at = None
        book._add(self)

    @property
    def done(self) -> int:
        """Iterations finished (``len(steps) - 1``)."""
        return len(self.steps) - 1

    @property
    def active(self) -> bool:
        """Whether the lease is still held."""
        return self.closed_at is None

    @property
    def remaining(self) -> float:
        """Iterations left (``inf`` when the total is unknown)."""
        if self.iterations is None:
            return math.inf
        return max(0, self.iterations - self.done)

    @property
    def seconds_per_iteration(self) -> float | None:
        """Median wall seconds of the recent iterations (None before the first step)."""
        gaps = np.diff(self.steps[-6:])
        return float(np.median(gaps)) if len(gaps) else None

    @property
    def remaining_seconds(self) -> float | None:
        """Declared remaining work: iterations left x measured seconds per iteration."""
        spi = self.seconds_per_iteration
        return None if spi is None else self.remaining * spi

    def step(self, n=1):
        """Record that ``n`` more iterations have finished (now).

        Parameters
        ----------
        n : int, default 1

        Raises
        ------
        RuntimeError
            The lease is closed.
        """
        n = check_int("n", n, minimum=1)
        if self.closed_at is not None:
            raise RuntimeError(f"{self.name} is closed")
        self.steps.extend([time.time()] * n)
        self._book._changed(self, "step")

    def callback(self, record=None):
        """A model ``callback``: one call per iteration steps the lease."""
        if self.closed_at is None:
            self.step()

    def close(self):
        """End the lease; the policy releases the workers it no longer needs."""
        if self.closed_at is None:
            self.closed_at = time.time()
            self._book._remove(self)

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()

    def __repr__(self):
        total = "?" if self.iterations is None else self.iterations
        state = "active" if self.active else "closed"
        return f"<Lease {self.name} {self.done}/{total} iterations, {state}>"


class LeaseBook:
    """The leases held on one cluster; shared by the cluster object and its policy.

    Thread-safe: a training thread steps and closes leases while the policy reads them in
    the event loop.

    **State**

    ended_at : float or None
        When the last lease closed (None while one is active or before the first).
    listeners : list of callables
        ``listener(lease, what)`` with ``what`` one of ``"start"``, ``"step"``, ``"end"``.
        A failing listener is logged; it never breaks the run that stepped the lease.
    """

    def __init__(self):
        self._lock = threading.Lock()
        self._active = []
        self.ended_at = None
        self.listeners = []

    def active(self):
        """The leases not yet closed, oldest first."""
        with self._lock:
            return list(self._active)

    def _add(self, lease):
        with self._lock:
            self._active.append(lease)
            self.ended_at = None
        self._changed(lease, "start")

    def _remove(self, lease):
        with self._lock:
            if lease in self._active:
                self._active.remove(lease)
            if not self._active:
                self.ended_at = lease.closed_at
        self._changed(lease, "end")

    def _changed(self, lease, what):
        for listener in list(self.listeners):
            try:
                listener(lease, what)
            except Exception:
                logger.exception("lease listener %r failed on %s of %s", listener, what, lease)
