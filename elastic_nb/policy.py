"""Adaptive scaling policies: subclasses of :class:`distributed.deploy.Adaptive`.

distributed runs the adaptive loop (every ``interval``: ``safe_target`` → ``recommendations``
with its ``wait_count`` → ``scale_up`` / ``scale_down``, retiring workers gracefully). A policy
here only changes *how many* workers the loop asks for, by overriding ``target()`` (and
announcing each decision with its reason); it never re-implements the loop.

Policies
--------
``"default"``
    distributed's own target (:meth:`Scheduler.adaptive_target`), unchanged; kept for
    comparison. It covers the backlog it sees *now* against ``target_duration``.
``"training"``
    Knows that a training run is in progress. A run holds a :class:`Lease` on the cluster
    (``with cluster.training(iterations=K) as run: ... run.step()``); the policy measures each
    iteration (tasks, seconds per task, the client's pause between iterations) and keeps the
    smallest width whose predicted iteration time is within ``slowdown`` of the maximum
    width's, for the whole run rather than for the current backlog. While a lease is held it
    never scales down in the gap between two iterations: it shrinks only during a running
    iteration, to a width two measured iterations agree on, or to release a worker that has
    had no task for ``cooldown`` seconds and two iterations (or any time, if the whole run
    has stalled for ``cooldown``). It releases the workers as soon as the last lease ends.
``"predictive"``
    The seed's loop — monitor → predict → decide → execute → feedback: a linear trend over
    the recent demand samples forecasts demand ``horizon`` seconds ahead and the target
    follows the forecast, up at once, down only after ``cooldown`` seconds.

A lease is plain client-side state (a list of step times); the measurements come from a
small :class:`distributed.diagnostics.plugin.SchedulerPlugin`, :class:`ActivityRecorder`,
which the training policy adds to the scheduler of a cluster that runs it in-process (every
``LocalCluster`` does). On a cluster whose scheduler is elsewhere the training policy cannot
measure iterations; it then holds the width distributed's target reaches during a lease and
never scales down until the lease ends.
"""

from __future__ import annotations

import asyncio
import contextlib
import math
import threading
import time
from collections import deque
from statistics import median

import numpy as np
from distributed.deploy import Adaptive
from distributed.diagnostics.plugin import SchedulerPlugin

from ._validation import check_choice, check_float, check_int

#: Task states that mean "the cluster has work": the run's graph is in flight.
ACTIVE_STATES = frozenset({"waiting", "queued", "no-worker", "processing"})


# --------------------------------------------------------------------------- measurement
class ActivityRecorder(SchedulerPlugin):
    """Scheduler plugin recording when the cluster is busy and what each task cost.

    It runs inside the scheduler's event loop (the same loop the adaptive policy of a local
    cluster runs in), so the policy reads its state without locks.

    State
    -----
    active : int
        Tasks currently waiting, queued or processing.
    busy_starts : deque of float
        Scheduler times (``time.time()``) at which ``active`` went from 0 to > 0, i.e. when a
        computation was submitted to an idle cluster.
    done : deque of (float, float)
        ``(finish time, compute seconds)`` of every finished task, most recent last.
    threads : deque of (float, int)
        ``(time, total threads)`` after every worker arrival or departure.
    last_busy : dict
        Worker address → last time it was given or finished a task (or joined).
    on_busy : list of callables
        Called with no arguments when a computation is submitted to an idle cluster, so a
        policy can decide at once instead of at its next interval.
    """

    name = "elastic-nb-activity"

    def __init__(self, maxlen=100_000):
        self.active = 0
        self.busy_starts = deque(maxlen=10_000)
        self.done = deque(maxlen=maxlen)
        self.threads = deque(maxlen=10_000)
        self.last_busy = {}
        self.on_busy = []
        self.scheduler = None

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

    async def start(self, scheduler):
        self.attach(scheduler)

    def transition(self, key, start, finish, *args, stimulus_id=None, **kwargs):
        was, now_active = start in ACTIVE_STATES, finish in ACTIVE_STATES
        if was == now_active:
            if finish == "processing" and self.scheduler is not None:
                self._touch_worker(key)
            return
        now = time.time()
        if now_active:
            if self.active == 0:
                self.busy_starts.append(now)
                for hook in list(self.on_busy):
                    hook()
            self.active += 1
            if finish == "processing" and self.scheduler is not None:
                self._touch_worker(key)
        else:
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

    def _touch_worker(self, key):
        ts = self.scheduler.tasks.get(key)
        if ts is not None and ts.processing_on is not None:
            self.last_busy[ts.processing_on.address] = time.time()

    def _record_threads(self, scheduler):
        self.threads.append((time.time(), sum(ws.nthreads for ws in scheduler.workers.values())))

    def add_worker(self, scheduler, worker):
        self.last_busy[worker] = time.time()
        self._record_threads(scheduler)

    def remove_worker(self, scheduler, worker, **kwargs):
        self.last_busy.pop(worker, None)
        self._record_threads(scheduler)

    # ------------------------------------------------------------------ queries
    def mean_threads(self, start, end):
        """Time-averaged total threads over [start, end] and whether it was constant."""
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

    def work_between(self, start, end):
        """(number of tasks, compute seconds) of tasks finished in (start, end]."""
        n, seconds = 0, 0.0
        for t, compute in reversed(self.done):
            if t <= start:
                break
            if t <= end:
                n += 1
                seconds += compute
        return n, seconds

    def first_busy_start(self, after, before=math.inf):
        for t in self.busy_starts:
            if after < t < before:
                return t
        return None


# ---------------------------------------------------------------------------- leases
class Lease:
    """A training run's claim on the cluster: how many iterations remain, and at what pace.

    Create one with :meth:`elastic_nb.ElasticCluster.training`; use it as a context manager
    (or call :meth:`close`), and call :meth:`step` once per finished iteration (optional —
    without steps the policy only knows a run is in progress). ``lease.callback`` is a model
    ``callback`` that steps the lease.

    Parameters
    ----------
    iterations : int or None
        Iterations the run will do (None: unknown, treated as "many").
    slowdown : float, default 1.1
        Pace preference: the run may be at most this factor slower per iteration than on
        the maximum width; the policy keeps the smallest width within it.
    deadline : float or None
        Alternatively, seconds from now by which the run should finish; the policy keeps the
        smallest width predicted to make it (the maximum if none does). Needs
        ``iterations``: the prediction is iterations left × seconds per iteration.
    name : str or None

    State
    -----
    steps : list of float
        ``time.time()`` at the start and at the end of every iteration so far.
    done : int
        Iterations finished (``len(steps) - 1``).
    closed_at : float or None
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
        return len(self.steps) - 1

    @property
    def active(self) -> bool:
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
        """Declared remaining work: iterations left × measured seconds per iteration."""
        spi = self.seconds_per_iteration
        return None if spi is None else self.remaining * spi

    def step(self, n=1):
        """Record that ``n`` more iterations have finished (now)."""
        n = check_int("n", n, minimum=1)
        if self.closed_at is not None:
            raise RuntimeError(f"{self.name} is closed")
        now = time.time()
        self.steps.extend([now] * n)
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

    State
    -----
    active : list of Lease
        Leases not yet closed, oldest first.
    ended_at : float or None
        When the last lease closed (None while one is active or before the first).
    """

    def __init__(self):
        self._lock = threading.Lock()
        self._active = []
        self.ended_at = None
        self.listeners = []

    def active(self):
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
            listener(lease, what)


# -------------------------------------------------------------------------- policies
class ElasticPolicy(Adaptive):
    """Base of elastic_nb's policies: announces every decision with its reason.

    Parameters (besides :class:`distributed.deploy.Adaptive`'s)
    ------------------------------------------------------------
    announce : callable or None
        ``announce(action, **details)`` is called for every scaling decision (new target,
        scale up, scale down) with a ``reason``; :class:`~elastic_nb.ElasticCluster` passes
        its monitor hook.
    leases : LeaseBook or None
        The leases held on the cluster (``ElasticCluster`` passes its own).

    State
    -----
    reason : str
        Why the last ``target()`` returned what it did.
    last_target : int or None
        The last target returned by ``target()``.

    Methods a subclass provides
    ---------------------------
    decide(now, current) -> (int, str)
        The target and its reason; ``current`` is the planned worker count.
    """

    #: Parameter name → validator, checked by :meth:`check_params` before anything runs.
    params: dict = {}

    def __init__(self, cluster=None, *args, announce=None, leases=None, **kwargs):
        own = {k: kwargs.pop(k) for k in list(kwargs) if k in self.params}
        self.check_params(**own)
        for k, check in self.params.items():
            setattr(self, k, check(own[k]) if k in own else check(None))
        self.announce = announce
        self.leases = leases if leases is not None else LeaseBook()
        self.reason = "not adapted yet"
        self.last_target = None
        super().__init__(cluster, *args, **kwargs)

    @classmethod
    def check_params(cls, **kwargs):
        """Validate this policy's own keyword arguments; raise naming the bad one."""
        for k, v in kwargs.items():
            if k in cls.params:
                cls.params[k](v)

    def _say(self, action, **details):
        if self.announce is not None:
            # a listener must never break the adaptive loop
            with contextlib.suppress(Exception):
                self.announce(action, policy=type(self).__name__, **details)

    async def target(self):
        n, reason = await self.decide(time.time(), len(self.plan))
        n = int(min(max(n, self.minimum), self.maximum))
        if n != self.last_target:
            self._say("target", target=int(n), reason=reason)
        self.last_target, self.reason = int(n), reason
        return int(n)

    async def decide(self, now, current):
        return await super().target(), "distributed's adaptive_target"

    async def scale_up(self, n):
        self._say("scale-up", target=int(n), reason=f"scale up to {n}: {self.reason}")
        await super().scale_up(n)

    async def scale_down(self, workers):
        if workers:
            self._say(
                "scale-down",
                retired=[str(w) for w in workers],
                target=len(self.plan) - len(workers),
                reason=f"retire {len(workers)} worker(s): {self.reason}",
            )
        await super().scale_down(workers)


class DefaultPolicy(ElasticPolicy):
    """distributed's own ``Adaptive`` target, unchanged, with decisions announced."""


def _opt_float(name, default, **kw):
    def check(value):
        return default if value is None else check_float(name, value, **kw)

    return check


def _opt_int(name, default, **kw):
    def check(value):
        return default if value is None else check_int(name, value, **kw)

    return check


class TrainingPolicy(ElasticPolicy):
    """Scale for the whole of the training runs holding a lease, without flapping.

    Parameters (besides :class:`distributed.deploy.Adaptive`'s; ``wait_count`` defaults to 1,
    because the hysteresis is here: a decrease is decided only inside a running iteration,
    so it must be carried out at once, not in the gap before the next one)
    ---------------------------------------------------------------------------------------
    cooldown : float, default 10
        Seconds a worker must have had no task (and no task during the last two
        iterations) before it is released while a lease is held.
    startup : float, default 3
        Seconds a new worker is assumed to take to start, until one start is measured; a
        width increase is not made when the remaining run would not gain that much time.
    history : int, default 5
        Recent iterations the pace model is fitted over (medians, so one slow one is ignored).

    State
    -----
    recorder : ActivityRecorder or None
        The scheduler plugin measuring iterations (None on a remote scheduler).
    model : dict or None
        The last fitted pace model: ``tasks`` per iteration, ``task_seconds``, ``pause``,
        ``overhead`` and ``threads_per_worker`` (see :meth:`fit_model` for the prediction).
    held : int
        The width held for the current lease(s); increases at once, decreases only by the
        rules above.
    """

    params = {
        "cooldown": _opt_float("cooldown", 10.0, positive=True),
        "startup": _opt_float("startup", 3.0, positive=True),
        "history": _opt_int("history", 5, minimum=1),
    }

    def __init__(self, cluster=None, *args, wait_count=None, **kwargs):
        super().__init__(
            cluster, *args, wait_count=1 if wait_count is None else wait_count, **kwargs
        )
        self.recorder = None
        self.model = None
        self.held = 0
        self._provisional = 0
        self._scale_requested_at = None
        self._measured_startup = None
        self._wake_up = None  # the adapt() task _wake started, kept from garbage collection
        if self.cluster is not None:  # measure from the start, so the first run can _wake us
            self.loop.add_callback(self._ensure_recorder)

    # ------------------------------------------------------------ measurement hooks
    def _local_scheduler(self):
        scheduler = getattr(self.cluster, "scheduler", None)
        return scheduler if hasattr(scheduler, "add_plugin") else None

    def _ensure_recorder(self):
        if self.recorder is not None:
            return self.recorder
        scheduler = self._local_scheduler()
        if scheduler is None:
            return None
        existing = scheduler.plugins.get(ActivityRecorder.name)
        if existing is None:
            existing = ActivityRecorder()
            scheduler.add_plugin(existing)
        existing.attach(scheduler)
        existing.on_busy.append(self._wake)
        self.recorder = existing
        return existing

    def _wake(self):
        """Work arrived on an idle cluster: while a run holds a lease, decide now rather than
        at the next interval, during which one worker would carry the whole iteration. Runs
        once the submitting handler has finished, so the whole iteration is seen."""
        if self.state == "running" and self.leases.active():
            self._wake_up = asyncio.ensure_future(self.adapt())

    def stop(self, *args, **kwargs):
        if self.recorder is not None and self._wake in self.recorder.on_busy:
            self.recorder.on_busy.remove(self._wake)
        super().stop(*args, **kwargs)

    async def scale_up(self, n):
        self._scale_requested_at = time.time()
        await super().scale_up(n)

    def _startup_seconds(self):
        rec = self.recorder
        if self._scale_requested_at is not None and rec is not None and rec.threads:
            arrivals = [t for t, _ in rec.threads if t > self._scale_requested_at]
            if arrivals:
                self._measured_startup = arrivals[0] - self._scale_requested_at
        return self._measured_startup or self.startup

    # -------------------------------------------------------------------- the model
    def fit_model(self, lease, threads_per_worker):
        """Fit the pace model from the lease's steps and the recorder's measurements.

        Per finished iteration k (between step k-1 and step k): ``pause`` is the time from
        step k-1 to the first submission after it, ``span`` from that submission to step k;
        ``tasks`` and ``task_seconds`` come from the tasks finished in between. Predicted
        seconds per iteration on ``w`` workers of ``t`` threads::

            pause + ceil(tasks / (w * t)) * task_seconds + overhead

        where ``overhead`` is what the observed span had beyond that at its own width.
        Returns None until one iteration and one pause have been seen.
        """
        rec = self.recorder
        steps = list(lease.steps)
        if rec is None or len(steps) < 2:
            return None
        rows = []
        for k in range(max(1, len(steps) - self.history), len(steps)):
            lo, hi = steps[k - 1], steps[k]
            begin = rec.first_busy_start(lo, hi)
            if begin is None:
                continue
            n, seconds = rec.work_between(lo, hi)
            if n == 0:
                continue
            threads, steady = rec.mean_threads(begin, hi)
            rows.append(
                {
                    "pause": (begin - lo) if k > 1 else None,
                    "span": hi - begin,
                    "tasks": n,
                    "seconds": seconds,
                    "threads": threads,
                    "steady": steady,
                }
            )
        # the pause before the iteration in progress is known as soon as it is submitted
        upcoming = rec.first_busy_start(steps[-1])
        pauses = [r["pause"] for r in rows if r["pause"] is not None]
        if upcoming is not None:
            pauses.append(upcoming - steps[-1])
        if not rows or not pauses:
            return None
        tasks = max(1, round(median(r["tasks"] for r in rows)))
        task_seconds = sum(r["seconds"] for r in rows) / sum(r["tasks"] for r in rows)
        overheads = [
            max(0.0, r["span"] - math.ceil(r["tasks"] / max(r["threads"], 1)) * task_seconds)
            for r in rows
            if r["steady"]
        ]
        overhead = median(overheads) if overheads else 0.0
        pause = median(pauses[-self.history :])

        def predict(width):
            return pause + math.ceil(tasks / (width * threads_per_worker)) * task_seconds + overhead

        return {
            "tasks": tasks,
            "task_seconds": task_seconds,
            "pause": pause,
            "overhead": overhead,
            "threads_per_worker": threads_per_worker,
            "predict": predict,
        }

    def pace_width(self, lease, model, now):
        """Smallest width meeting the lease's pace (or deadline) preference, and why."""
        lo, hi = max(1, self.minimum), int(min(self.maximum, 10_000))
        predict = model["predict"]
        if lease.deadline is not None and lease.iterations is not None:
            left = lease.started_at + lease.deadline - now
            for w in range(lo, hi + 1):
                if lease.remaining * predict(w) <= left:
                    return w, (
                        f"{w} worker(s) finish the {lease.remaining} iterations left "
                        f"({predict(w):.2f} s each) within the deadline ({left:.0f} s left)"
                    )
            return hi, f"no width meets the deadline ({left:.0f} s left): the maximum"
        best = predict(hi)
        for w in range(lo, hi + 1):
            if predict(w) <= lease.slowdown * best + 1e-9:
                return w, (
                    f"{w} worker(s) keep the pace: {predict(w):.2f} s per iteration vs "
                    f"{best:.2f} s on {hi} (slowdown ≤ {lease.slowdown:g}; "
                    f"{model['tasks']} tasks × {model['task_seconds']:.2f} s, "
                    f"pause {model['pause']:.2f} s)"
                )
        return hi, "the maximum keeps the pace"

    # ------------------------------------------------------------------- decision
    def _snapshot(self):
        scheduler = self._local_scheduler()
        if scheduler is None:
            return None
        backlog = len(scheduler.queued) + len(scheduler.unrunnable)
        backlog += sum(len(ws.processing) for ws in scheduler.workers.values())
        nthreads = [ws.nthreads for ws in scheduler.workers.values()]
        return {
            "backlog": backlog,
            "threads_per_worker": max(1, round(sum(nthreads) / len(nthreads))) if nthreads else 1,
        }

    async def decide(self, now, current):
        recorder = self._ensure_recorder()  # from the first tick, so _wake can fire
        leases = self.leases.active()
        if not leases:
            self.held, self._provisional, self.model = 0, 0, None
            n = await self.scheduler.adaptive_target(target_duration=self.target_duration)
            ended = self.leases.ended_at
            if ended is not None and n < current:
                return n, "the training run ended: release the workers it no longer needs"
            return n, "no training run: distributed's adaptive_target"
        snap = self._snapshot()
        if recorder is None or snap is None:  # remote scheduler: hold what the backlog asked
            n = await self.scheduler.adaptive_target(target_duration=self.target_duration)
            self.held = max(self.held, n, current)
            return self.held, "training run in progress (no measurements): never scale down"

        lease_widths = []
        for lease in leases:
            model = self.fit_model(lease, snap["threads_per_worker"])
            if model is None:
                continue
            self.model = {k: v for k, v in model.items() if k != "predict"}
            w, why = self.pace_width(lease, model, now)
            # too little left to pay for starting workers: do not grow
            if w > self.held and self.held and lease.remaining != math.inf:
                gain = lease.remaining * (model["predict"](self.held) - model["predict"](w))
                if gain < self._startup_seconds():
                    w, why = (
                        self.held,
                        (
                            f"{lease.remaining} iteration(s) left: more workers would not pay "
                            "for their start-up"
                        ),
                    )
            lease_widths.append((w, why))

        if lease_widths:
            want, why = max(lease_widths)
        else:
            # before the first measured iteration: one thread per task in the backlog
            # (tasks of this iteration: those finished since it was submitted + the backlog)
            # or, between iterations, those of the last finished one
            tasks = snap["backlog"]
            if tasks and recorder.busy_starts:
                tasks += recorder.work_between(recorder.busy_starts[-1], math.inf)[0]
            for lease in leases:
                if lease.done:
                    tasks = max(tasks, recorder.work_between(*lease.steps[-2:])[0])
            per_worker = snap["threads_per_worker"]
            self._provisional = max(self._provisional, math.ceil(tasks / per_worker))
            want = max(self._provisional, self.held, current)
            why = (
                f"first iteration: one worker per {per_worker} of its {tasks} task(s) until "
                "the pace is measured"
            )
        want = int(min(max(want, self.minimum), self.maximum))

        if want >= self.held:
            self.held = want
            return want, why
        # a decrease while a lease is held: only while an iteration is running (never in
        # the gap between two), and after the same answer on two consecutive iterations
        if recorder.active > 0 and self._confirm(want, leases):
            self.held = want
            return want, f"right-size during an iteration: {why}"
        # a worker idle for the cooldown goes too — during an iteration as well (so never
        # in the gap before the next one), unless the whole run has stalled that long
        idle = self._long_idle(recorder, now)
        last_activity = max(
            [recorder.done[-1][0]] if recorder.done else [],
            default=recorder.busy_starts[-1] if recorder.busy_starts else now,
        )
        if idle and (recorder.active > 0 or now - last_activity > self.cooldown):
            self.held = max(want, self.held - len(idle), self.minimum)
            return self.held, f"{len(idle)} worker(s) idle for over {self.cooldown:g} s"
        return self.held, f"hold {self.held} while the run goes on ({why})"

    def _confirm(self, want, leases):
        key = (want, tuple(lease.done for lease in leases))
        history = getattr(self, "_down_votes", [])
        if not history or history[-1][0] != want:
            history = []
        if not history or history[-1][1] != key[1]:
            history.append(key)
        self._down_votes = history
        return len(history) >= 2

    async def workers_to_close(self, target):
        """Release the workers idle the longest first, then distributed's choice."""
        scheduler = self._local_scheduler()
        if self.recorder is None or scheduler is None:
            return await super().workers_to_close(target)
        n = len(scheduler.workers) - target
        if n <= 0:
            return []
        by_idle = sorted(
            scheduler.workers.values(),
            key=lambda ws: (len(ws.processing), self.recorder.last_busy.get(ws.address, 0)),
        )
        return [ws.name for ws in by_idle[:n]]

    def _long_idle(self, recorder, now):
        starts = [t for t in recorder.busy_starts]
        if len(starts) < 3:
            return []
        two_iterations_ago = starts[-2]
        return [
            w
            for w, t in recorder.last_busy.items()
            if now - t > self.cooldown and t < two_iterations_ago
        ]


class PredictivePolicy(ElasticPolicy):
    """The seed's autoscaler loop on distributed's ``Adaptive``.

    Every ``interval`` it *monitors* demand (distributed's ``adaptive_target``: workers the
    current backlog needs within ``target_duration``), *predicts* demand ``horizon`` seconds
    ahead with a least-squares line through the last ``window`` samples, *decides* a target
    (up at once to the forecast; down only after demand has stayed below the current width
    for ``cooldown`` seconds, and then only to the highest forecast of that period), lets
    ``Adaptive`` *execute* it, and takes *feedback* from how far past forecasts fell short of
    the demand that then arrived (the recent median shortfall is added as headroom).

    Parameters (besides :class:`distributed.deploy.Adaptive`'s)
    ---------------------------------------------------------
    window : int, default 8
        Demand samples the trend is fitted over.
    horizon : float, default 3
        Seconds ahead the forecast looks (about the time a new worker takes to start).
    cooldown : float, default 10
        Seconds demand must stay below the current target before it is lowered.

    State
    -----
    samples : deque of (float, float)
        ``(time, demand)`` observed, most recent last.
    forecasts : deque of (float, float)
        ``(time it is for, forecast)`` made, for the feedback.
    errors : deque of float
        Realised demand minus its forecast, most recent last.
    below_since : float or None
        When demand first fell below the current target (None while it is not below).
    """

    params = {
        "window": _opt_int("window", 8, minimum=2),
        "horizon": _opt_float("horizon", 3.0, minimum=0.0),
        "cooldown": _opt_float("cooldown", 10.0, minimum=0.0),
    }

    def __init__(self, cluster=None, *args, **kwargs):
        super().__init__(cluster, *args, **kwargs)
        self.samples = deque(maxlen=self.window)
        self.forecasts = deque(maxlen=64)
        self.errors = deque(maxlen=16)
        self.below_since = None
        self._wants = deque(maxlen=10_000)
        self._held = None

    def observe(self, now, demand):
        """Monitor + feedback: record a demand sample and score the forecasts it settles."""
        demand = float(demand)
        self.samples.append((float(now), demand))
        while self.forecasts and self.forecasts[0][0] <= now:
            _, predicted = self.forecasts.popleft()
            self.errors.append(demand - predicted)

    def forecast(self, at):
        """Predict: the linear trend of the recent samples, evaluated at time ``at``."""
        if not self.samples:
            return 0.0
        if len(self.samples) < 3:
            return self.samples[-1][1]
        t, y = np.array(self.samples).T
        slope, intercept = np.polyfit(t - t[-1], y, 1)
        return float(intercept + slope * (at - t[-1]))

    def plan_target(self, now, current):
        """Decide: the target from the latest sample, the forecast and the hysteresis."""
        demand = self.samples[-1][1] if self.samples else 0.0
        ahead = self.forecast(now + self.horizon)
        self.forecasts.append((now + self.horizon, ahead))
        shortfall = max(0.0, median(self.errors)) if self.errors else 0.0
        want = math.ceil(max(demand, ahead + shortfall) - 1e-9)
        want = int(min(max(want, self.minimum), self.maximum))
        self._wants.append((now, want))
        held = current if self._held is None else self._held
        if want >= held:
            self.below_since = None
            self._held = want
            why = f"demand {demand:.1f} now, {ahead:.1f} forecast in {self.horizon:g} s"
            return want, why
        if self.below_since is None:
            self.below_since = now
        if now - self.below_since >= self.cooldown:
            recent = max(w for t, w in self._wants if t >= self.below_since)
            self._held = max(recent, want)
            self.below_since = now if self._held > want else None
            return self._held, f"demand below {held} for {self.cooldown:g} s: scale down"
        return held, f"hold {held}: demand {demand:.1f} below it for {now - self.below_since:.1f} s"

    async def decide(self, now, current):
        demand = await self.scheduler.adaptive_target(target_duration=self.target_duration)
        self.observe(now, demand)
        return self.plan_target(now, current)


#: Policy names accepted by :class:`elastic_nb.ElasticCluster` and the panel.
POLICIES: dict[str, type[Adaptive]] = {
    "default": DefaultPolicy,
    "training": TrainingPolicy,
    "predictive": PredictivePolicy,
}


def resolve_policy(policy) -> type[Adaptive]:
    """Map a policy name or an ``Adaptive`` subclass to the class to instantiate."""
    if isinstance(policy, type) and issubclass(policy, Adaptive):
        return policy
    if not isinstance(policy, str):
        raise TypeError(
            f"policy must be a name ({', '.join(POLICIES)}) or a subclass of "
            f"distributed.deploy.Adaptive, got {policy!r}"
        )
    return POLICIES[check_choice("policy", policy, tuple(POLICIES))]


def check_policy_params(policy_class, kwargs):
    """Validate keyword arguments for ``policy_class`` before any cluster is touched."""
    own = getattr(policy_class, "params", {})
    for key in ("interval", "target_duration"):
        if key in kwargs and kwargs[key] is not None:
            from dask.utils import parse_timedelta

            try:
                value = parse_timedelta(kwargs[key])
            except (ValueError, TypeError, KeyError) as err:
                raise ValueError(
                    f"{key} must be a duration like '500ms', got {kwargs[key]!r}"
                ) from err
            if value is None or value <= 0:
                raise ValueError(f"{key} must be > 0, got {kwargs[key]!r}")
    if "wait_count" in kwargs and kwargs["wait_count"] is not None:
        check_int("wait_count", kwargs["wait_count"], minimum=1)
    allowed = {"interval", "target_duration", "wait_count", "worker_key", *own}
    if issubclass(policy_class, ElasticPolicy):
        unknown = set(kwargs) - allowed - {"minimum", "maximum"}
        if unknown:
            names = ", ".join(sorted(allowed))
            raise TypeError(
                f"unknown argument(s) for policy {policy_class.__name__}: "
                f"{', '.join(sorted(unknown))} (expected some of {names})"
            )
        policy_class.check_params(**{k: v for k, v in kwargs.items() if k in own})
