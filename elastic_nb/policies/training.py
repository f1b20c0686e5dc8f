"""The ``"training"`` policy: scale for the whole of a training run that holds a lease."""

from __future__ import annotations

import logging
import math
import time

from distributed.deploy import Adaptive

from .base import ElasticPolicy, Param
from .pace import IterationSample, deadline_width, fit_pace, pace_width, worth_growing

logger = logging.getLogger(__name__)


class TrainingPolicy(ElasticPolicy):
    """Scale for the whole of the training runs holding a lease, without flapping.

    Without a lease it *is* distributed's ``Adaptive``: the same target
    (``Scheduler.adaptive_target``), ``wait_count``, ``interval``, ``target_duration`` and
    ``minimum``/``maximum`` from the ``distributed.adaptive`` configuration unless given,
    and workers closed through ``Scheduler.workers_to_close``. A lease only adds knowledge of
    the run (``with cluster.training(iterations=K) as run: ... run.step()``):

    - **measured width** (:meth:`lease_width`): from the run's measured iterations, a
      :class:`~elastic_nb.policies.pace.PaceModel`, and the smallest width whose iterations
      are within the lease's ``slowdown`` of the widest's (or that meets its ``deadline``);
      not grown when the iterations left would not pay for a worker's start-up.
    - **first iteration** (:meth:`first_iteration_width`): before a pace is measured, one
      thread per task of the iteration.
    - **grow at once** / **confirmed decrease** / **idle release** / **hold**
      (:meth:`settle`): a larger width is taken at once; a smaller one only after two
      iterations agree on it, or to release workers idle for ``cooldown`` and two iterations.
    - **no shrinking in the gap** (:meth:`in_gap`): between two iterations the count of
      ``wait_count`` proposals is paused, so workers are never closed just before the next
      iteration needs them (unless the run has stalled for ``cooldown``).
    - **unmeasured** (:meth:`hold_unmeasured`): on a scheduler in another process (no
      recorder), hold the largest width distributed's target reached until the lease ends.

    **State**

    model : PaceModel or None
        The last fitted pace model.
    held : int
        The width held for the current lease(s); 0 without a lease.
    provisional : int
        The first-iteration width, until a pace is measured.
    down_votes : list of (int, tuple)
        ``(width, iterations done per lease)`` of the consecutive proposals to shrink.
    scale_requested_at : float or None
        When the last scale-up was asked (to measure a worker's start-up).
    measured_startup : float or None
        Seconds the last measured worker start took.

    **Methods a subclass may override**

    lease_width, first_iteration_width, settle, in_gap: the rules above.

    Parameters
    ----------
    cluster : distributed.deploy.Cluster or None
    *args, **kwargs
        As :class:`~elastic_nb.policies.base.ElasticPolicy`, and:
    cooldown : float, default 10
        Seconds a worker must have had no task (and none during the last two iterations)
        before it is released while a lease is held; also how long a run may stall before
        workers are released between iterations.
    startup : float, default 3
        Seconds a new worker is assumed to take to start, until one start is measured.
    history : int, default 5
        Recent iterations the pace model is fitted over.
    """

    params = {
        "cooldown": Param("cooldown", 10.0, positive=True),
        "startup": Param("startup", 3.0, positive=True),
        "history": Param("history", 5, kind="int", minimum=1),
    }
    uses_recorder = True

    def __init__(self, cluster=None, *args, **kwargs):
        self.model = None
        self.held = 0
        self.provisional = 0
        self.down_votes = []
        self.scale_requested_at = None
        self.measured_startup = None
        super().__init__(cluster, *args, **kwargs)

    # ------------------------------------------------------------------ the loop
    async def decide(self, now, current):
        """The target and its reason: the rule that applies, see the class docstring."""
        leases = self.leases.active()
        if not leases:
            return self.without_lease(await Adaptive.target(self), current)
        if self.recorder is None:
            return self.hold_unmeasured(await Adaptive.target(self), current)
        widths = [w for w in (self.lease_width(lease, now) for lease in leases) if w]
        want, why = max(widths) if widths else self.first_iteration_width(leases, current)
        return self.settle(want, why, leases, now, current)

    async def recommendations(self, target):
        """``Adaptive.recommendations``, paused (not reset) while :meth:`in_gap`."""
        if self.in_gap(target, len(self.plan), time.time()):
            return {"status": "same"}  # close counts kept, not cleared: paused
        return await super().recommendations(target)

    def on_busy(self):
        """Work arrived on an idle cluster: while a run holds a lease, decide now rather
        than at the next interval, during which one worker would carry the whole iteration.
        The adapt runs once the submitting handler has finished, so it sees the iteration."""
        if self.leases.active():
            self.adapt_soon()

    async def scale_up(self, n):
        """Note when workers were asked for (start-up measurement), then scale up."""
        self.scale_requested_at = time.time()
        await super().scale_up(n)

    # --------------------------------------------------------------------- rules
    def without_lease(self, demand, current):
        """No lease: distributed's target ``demand``, and the lease state forgotten."""
        self.held, self.provisional, self.model, self.down_votes = 0, 0, None, []
        if self.leases.ended_at is not None and demand < current:
            return demand, "the training run ended: release the workers it no longer needs"
        return demand, "no training run: distributed's adaptive_target"

    def hold_unmeasured(self, demand, current):
        """A lease on a scheduler that cannot be measured: the largest of distributed's
        target ``demand`` so far and the current width; never scale down during it."""
        self.held = max(self.held, demand, current)
        return self.held, "training run in progress (no measurements): never scale down"

    def lease_width(self, lease, now):
        """The width the lease's measured pace asks for, and why (None before a pace)."""
        model = self.fit_model(lease, self.recorder.threads_per_worker())
        if model is None:
            return None
        self.model = model
        width, why = self.pace_width(lease, model, now)
        if not worth_growing(model, lease.remaining, self.held, width, self.startup_seconds()):
            return self.held, (
                f"{lease.remaining} iteration(s) left: more workers would not pay for "
                "their start-up"
            )
        return width, why

    def first_iteration_width(self, leases, current):
        """Before a pace is measured: one thread per task of the iteration (those of the
        computation in progress, or, between iterations, those of the last one)."""
        rec = self.recorder
        tasks = rec.tasks_this_computation()
        for lease in leases:
            if lease.done:
                tasks = max(tasks, rec.work_between(*lease.steps[-2:])[0])
        per_worker = rec.threads_per_worker()
        self.provisional = max(self.provisional, math.ceil(tasks / per_worker))
        return max(self.provisional, self.held, current), (
            f"first iteration: one worker per {per_worker} of its {tasks} task(s) until "
            "the pace is measured"
        )

    def settle(self, want, why, leases, now, current):
        """Grow at once; shrink only when confirmed or to release idle workers; else hold."""
        if want >= self.held:
            self.held, self.down_votes = want, []
            return want, why
        if self.confirmed(want, leases):
            self.held = want
            return want, f"right-size (two iterations agree): {why}"
        idle = self.idle_workers(now)
        if idle:
            self.held = max(want, current - len(idle))
            return self.held, f"{len(idle)} worker(s) idle for over {self.cooldown:g} s"
        return self.held, f"hold {self.held} while the run goes on ({why})"

    def confirmed(self, want, leases):
        """Whether the same smaller width was proposed on two different iterations."""
        done = tuple(lease.done for lease in leases)
        if not self.down_votes or self.down_votes[-1][0] != want:
            self.down_votes = []
        if not self.down_votes or self.down_votes[-1][1] != done:
            self.down_votes.append((want, done))
        return len(self.down_votes) >= 2

    def idle_workers(self, now):
        """Workers with no task for ``cooldown`` seconds and none in the last two
        iterations (computations, as the recorder sees them)."""
        starts = self.recorder.busy_starts
        if len(starts) < 3:
            return []
        return self.recorder.idle_workers(now, self.cooldown, before=starts[-2])

    def in_gap(self, target, planned, now):
        """Whether a decrease from ``planned`` workers to ``target`` must wait: a lease is
        held, the cluster is between two iterations, and the run has not stalled for
        ``cooldown``."""
        if target >= planned or self.recorder is None or not self.leases.active():
            return False
        if self.recorder.active > 0:
            return False
        return now - self.recorder.last_activity(default=now) <= self.cooldown

    # ------------------------------------------------------------------- the pace
    def fit_model(self, lease, threads_per_worker):
        """The :class:`PaceModel` of ``lease``'s recent iterations (None before one
        iteration and one pause are measured); see :func:`~.pace.fit_pace`."""
        samples, pauses = self.iteration_samples(lease)
        return fit_pace(samples, pauses, threads_per_worker, history=self.history)

    def iteration_samples(self, lease):
        """The recorder's measurements of the lease's last ``history`` iterations, and the
        pauses (including the one before the iteration in progress, known once it began)."""
        rec, steps = self.recorder, list(lease.steps)
        samples = []
        for k in range(max(1, len(steps) - self.history), len(steps)):
            lo, hi = steps[k - 1], steps[k]
            begin = rec.first_busy_start(lo, hi)
            n, seconds = rec.work_between(lo, hi)
            if begin is None or n == 0:
                continue
            threads, steady = rec.mean_threads(begin, hi)
            pause = (begin - lo) if k > 1 else None
            samples.append(IterationSample(pause, hi - begin, n, seconds, threads, steady))
        pauses = [s.pause for s in samples if s.pause is not None]
        upcoming = rec.first_busy_start(steps[-1])
        if upcoming is not None and len(steps) > 1:
            pauses.append(upcoming - steps[-1])
        return samples, pauses

    def pace_width(self, lease, model, now):
        """Smallest width meeting the lease's deadline, or else its pace, and why."""
        if lease.deadline is not None and lease.iterations is not None:
            left = lease.started_at + lease.deadline - now
            return deadline_width(model, lease.remaining, left, self.maximum)
        return pace_width(model, lease.slowdown, self.maximum)

    def startup_seconds(self):
        """Seconds a worker took to start the last time one was asked for (measured by the
        recorder), else the ``startup`` parameter."""
        asked = self.scale_requested_at
        if asked is not None and self.recorder is not None:
            arrived = self.recorder.first_arrival_after(asked)
            if arrived is not None:
                self.measured_startup = arrived - asked
        return self.measured_startup or self.startup
