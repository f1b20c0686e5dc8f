"""The one scheduler plugin: what the cluster is doing, measured inside the scheduler.

:class:`ActivityRecorder` is the only place in elastic_nb that reads the scheduler's
internals (task states, ``queued``, ``unrunnable``, ``processing``, worker threads). Policies
ask it questions; they never look at the scheduler themselves.
"""

from __future__ import annotations

import logging
import math
import time
import weakref
from collections import deque

from distributed import Scheduler
from distributed.diagnostics.plugin import SchedulerPlugin

logger = logging.getLogger(__name__)

#: Task states that mean "the cluster has work": the run's graph is in flight.
ACTIVE_STATES = frozenset({"waiting", "queued", "no-worker", "processing"})


def _weak(callback):
    """A reference to ``callback`` that calling returns it: weak for a bound method (so that
    subscribing never keeps a policy alive), strong for a plain function."""
    if hasattr(callback, "__self__") and hasattr(callback, "__func__"):
        return weakref.WeakMethod(callback)
    return lambda: callback


class ActivityRecorder(SchedulerPlugin):
    """Scheduler plugin recording when the cluster is busy and what each task cost.

    It runs inside the scheduler's event loop (the loop the adaptive policy of a local
    cluster runs in too), so a policy reads its state without locks. Install it with
    :meth:`install`; one recorder serves every policy of a scheduler.

    **State**

    scheduler : distributed.Scheduler or None
        The scheduler it is attached to (None until :meth:`attach`).
    active : int
        Tasks currently waiting, queued, without a worker, or processing.
    busy_starts : deque of float
        ``time.time()`` at which ``active`` went from 0 to > 0, i.e. when a computation
        was submitted to an idle cluster.
    done : deque of (float, float)
        ``(finish time, compute seconds)`` of every finished task, most recent last.
    threads : deque of (float, int)
        ``(time, total threads)`` after every worker arrival or departure.
    last_busy : dict
        Worker address -> last time it was given or finished a task (or joined).

    **Hooks**

    :meth:`subscribe` registers a callable (a bound method is held weakly) that is called
    with no argument when a computation is submitted to an idle cluster, so a policy can
    decide at once instead of at its next interval. A failing callback is logged, never
    raised into the scheduler.

    Parameters
    ----------
    maxlen : int, default 100_000
        Finished tasks remembered.
    """

    name = "elastic-nb-activity"

    def __init__(self, maxlen=100_000):
        self.scheduler = None
        self.active = 0
        self.busy_starts = deque(maxlen=10_000)
        self.done = deque(maxlen=maxlen)
        self.threads = deque(maxlen=10_000)
        self.last_busy = {}
        self._on_busy = []

    # ----------------------------------------------------------------- installation
    @classmethod
    def install(cls, cluster):
        """The recorder of ``cluster``'s scheduler, added if it has none yet.

        Parameters
        ----------
        cluster : distributed.deploy.Cluster or None

        Returns
        -------
        ActivityRecorder or None
            None when the scheduler does not run in this process (nothing to measure).
        """
        scheduler = getattr(cluster, "scheduler", None)
        if not isinstance(scheduler, Scheduler):
            return None
        recorder = scheduler.plugins.get(cls.name)
        if not isinstance(recorder, cls):
            recorder = cls()
            scheduler.add_plugin(recorder, name=cls.name)
        recorder.attach(scheduler)
        return recorder

    def attach(self, scheduler):
        """Take the scheduler's current state as the starting point (idempotent)."""
        if self.scheduler is scheduler:
            return
        self.scheduler = scheduler
        now = time.time()
        self.active = sum(1 for ts in scheduler.tasks.values() if ts.state in ACTIVE_STATES)
        if self.active:
            self.busy_starts.append(now)
        self._record_threads(scheduler)
        for address in scheduler.workers:
            self.last_busy.setdefault(address, now)

    def subscribe(self, callback):
        """Call ``callback()`` whenever work arrives on an idle cluster.

        A bound method is held weakly: it never keeps its object (a policy) alive."""
        self._on_busy.append(_weak(callback))

    def unsubscribe(self, callback):
        """Forget ``callback`` (and every subscriber that has been garbage collected)."""
        self._on_busy = [r for r in self._on_busy if r() is not None and r() != callback]

    @property
    def subscribers(self):
        """The live subscribed callables."""
        return [cb for cb in (r() for r in self._on_busy) if cb is not None]

    # ------------------------------------------------------------ scheduler hooks
    async def start(self, scheduler):
        """Plugin hook: attach to the scheduler."""
        self.attach(scheduler)

    def transition(self, key, start, finish, *args, stimulus_id=None, **kwargs):
        """Plugin hook: count active tasks, note busy starts and finished tasks."""
        was, now_active = start in ACTIVE_STATES, finish in ACTIVE_STATES
        if was == now_active:
            if finish == "processing":
                self._touch_worker(key)
            return
        now = time.time()
        if now_active:
            if self.active == 0:
                self.busy_starts.append(now)
                self._notify_busy()
            self.active += 1
            if finish == "processing":
                self._touch_worker(key)
            return
        self.active = max(0, self.active - 1)
        if start == "processing":
            compute = sum(
                s.get("stop", 0) - s.get("start", 0)
                for s in kwargs.get("startstops", ())
                if s.get("action") == "compute"
            )
            self.done.append((now, compute))
            worker = kwargs.get("worker")
            if worker is not None:
                self.last_busy[worker] = now

    def _notify_busy(self):
        self._on_busy = [r for r in self._on_busy if r() is not None]
        for callback in self.subscribers:
            try:
                callback()
            except Exception:
                logger.exception("%s: a busy-cluster subscriber failed", self.name)

    def _touch_worker(self, key):
        ts = self.scheduler.tasks.get(key) if self.scheduler is not None else None
        if ts is not None and ts.processing_on is not None:
            self.last_busy[ts.processing_on.address] = time.time()

    def _record_threads(self, scheduler):
        self.threads.append((time.time(), sum(ws.nthreads for ws in scheduler.workers.values())))

    def add_worker(self, scheduler, worker):
        """Plugin hook: a worker joined."""
        self.last_busy[worker] = time.time()
        self._record_threads(scheduler)

    def remove_worker(self, scheduler, worker, **kwargs):
        """Plugin hook: a worker left."""
        self.last_busy.pop(worker, None)
        self._record_threads(scheduler)

    # -------------------------------------------------------------------- queries
    def in_flight(self):
        """Tasks the cluster could run now: processing, queued, or without a worker."""
        s = self.scheduler
        if s is None:
            return 0
        processing = sum(len(ws.processing) for ws in s.workers.values())
        return processing + len(s.queued) + len(s.unrunnable)

    def threads_per_worker(self):
        """Mean threads of a worker (rounded, at least 1; 1 when there is none)."""
        s = self.scheduler
        nthreads = [ws.nthreads for ws in s.workers.values()] if s is not None else []
        return max(1, round(sum(nthreads) / len(nthreads))) if nthreads else 1

    def usable_workers(self):
        """Workers the tasks in flight can keep busy: one thread per task."""
        return math.ceil(self.in_flight() / self.threads_per_worker())

    def mean_threads(self, start, end):
        """Time-averaged total threads over ``[start, end]`` and whether it was constant."""
        points = list(self.threads)
        if not points or end <= start:
            return (points[-1][1] if points else 0), True
        level = points[0][1]
        for t, n in points:
            if t <= start:
                level = n
        total, t_prev, changed = 0.0, start, False
        for t, n in points:
            if start < t < end:
                total += level * (t - t_prev)
                t_prev, level, changed = t, n, changed or n != level
        total += level * (end - t_prev)
        return total / (end - start), not changed

    def work_between(self, start, end=math.inf):
        """``(number of tasks, compute seconds)`` of tasks finished in ``(start, end]``."""
        n, seconds = 0, 0.0
        for t, compute in reversed(self.done):
            if t <= start:
                break
            if t <= end:
                n += 1
                seconds += compute
        return n, seconds

    def first_busy_start(self, after, before=math.inf):
        """The first time work arrived on an idle cluster in ``(after, before)``, or None."""
        for t in self.busy_starts:
            if after < t < before:
                return t
        return None

    def tasks_this_computation(self):
        """Tasks of the computation in progress: finished since it began, plus in flight."""
        tasks = self.in_flight()
        if tasks and self.busy_starts:
            tasks += self.work_between(self.busy_starts[-1])[0]
        return tasks

    def last_activity(self, default):
        """When a task last finished (or, failing that, work last arrived)."""
        if self.done:
            return self.done[-1][0]
        return self.busy_starts[-1] if self.busy_starts else default

    def first_arrival_after(self, t):
        """When the cluster's threads first changed after ``t`` (a worker came), or None."""
        return next((at for at, _ in self.threads if at > t), None)

    def idle_workers(self, now, seconds, before):
        """Workers with no task for ``seconds`` and none since time ``before``."""
        return [w for w, t in self.last_busy.items() if now - t > seconds and t < before]
