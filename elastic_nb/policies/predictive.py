"""The ``"predictive"`` policy: the seed's monitor -> predict -> decide loop on ``Adaptive``."""

from __future__ import annotations

import logging
import math
from collections import deque
from statistics import median

import numpy as np
from distributed.deploy import Adaptive

from .base import ElasticPolicy, Param

logger = logging.getLogger(__name__)


def linear_forecast(samples, at):
    """The least-squares line through ``(time, demand)`` samples, evaluated at ``at``.

    Fewer than three samples give the last demand (no trend yet); none gives 0.
    """
    if not samples:
        return 0.0
    if len(samples) < 3:
        return float(samples[-1][1])
    t, y = np.array(samples, dtype=float).T
    slope, intercept = np.polyfit(t - t[-1], y, 1)
    return float(intercept + slope * (at - t[-1]))


class PredictivePolicy(ElasticPolicy):
    """The seed's autoscaler loop on distributed's ``Adaptive``.

    Every ``interval`` it *monitors* demand (distributed's target: workers the backlog
    needs within ``target_duration``), *predicts* demand ``horizon`` seconds ahead with a
    least-squares line through the last ``window`` samples, *decides* a target, lets
    ``Adaptive`` *execute* it (``wait_count``, ``Scheduler.workers_to_close``) and takes
    *feedback* from how far past forecasts fell short of the demand that then arrived.

    The rules (:meth:`plan_target`):

    - **look ahead**: the target is the larger of the demand now and the forecast plus the
      recent median shortfall (:meth:`headroom`).
    - **no more than the work can use** (:meth:`cap`): the look-ahead never asks for more
      workers than the tasks in flight (processing, queued, without a worker; one thread
      each) can keep busy; distributed's own demand is never cut.
    - **up at once, down after the cooldown** (:meth:`settle`): a higher target is taken at
      once; a lower one once the wanted width has stayed below the held one for
      ``cooldown`` seconds, and then to the width wanted now.

    So an idle cluster is back at ``minimum`` within ``cooldown`` plus
    ``interval x (wait_count + 1)`` seconds (the cooldown, then ``wait_count`` proposals
    to close, counted from the next tick), plus the time workers take to retire.

    **State**

    samples : deque of (float, float)
        ``(time, demand)`` observed, most recent last (``window`` of them).
    forecasts : deque of (float, float)
        ``(time it is for, forecast)`` made, for the feedback.
    errors : deque of float
        Realised demand minus its forecast, most recent last.
    below_since : float or None
        When the wanted width first fell below the held one (None while it is not below).
    held : int or None
        The width the policy holds (None before the first decision: the current width).

    **Methods a subclass may override**

    observe, forecast, headroom, cap, settle: the steps above.

    Parameters
    ----------
    cluster : distributed.deploy.Cluster or None
    *args, **kwargs
        As :class:`~elastic_nb.policies.base.ElasticPolicy`, and:
    window : int, default 8
        Demand samples the trend is fitted over.
    horizon : float, default 3
        Seconds ahead the forecast looks (about the time a new worker takes to start).
    cooldown : float, default 10
        Seconds the wanted width must stay below the held one before it is lowered
        (0: as soon as distributed's ``wait_count`` allows).
    """

    params = {
        "window": Param("window", 8, kind="int", minimum=2),
        "horizon": Param("horizon", 3.0, minimum=0.0),
        "cooldown": Param("cooldown", 10.0, minimum=0.0),
    }
    uses_recorder = True

    def __init__(self, cluster=None, *args, **kwargs):
        super().__init__(cluster, *args, **kwargs)
        self.samples = deque(maxlen=self.window)
        self.forecasts = deque(maxlen=64)
        self.errors = deque(maxlen=16)
        self.below_since = None
        self.held = None

    async def decide(self, now, current):
        """Monitor (distributed's target), then :meth:`plan_target` under the cap of the
        work in flight (distributed's target itself when the scheduler is elsewhere)."""
        demand = await Adaptive.target(self)
        usable = demand if self.recorder is None else self.recorder.usable_workers()
        self.observe(now, demand)
        return self.plan_target(now, current, usable=usable)

    # --------------------------------------------------------------------- steps
    def observe(self, now, demand):
        """Monitor + feedback: record a demand sample and score the forecasts it settles."""
        demand = float(demand)
        self.samples.append((float(now), demand))
        while self.forecasts and self.forecasts[0][0] <= now:
            _, predicted = self.forecasts.popleft()
            self.errors.append(demand - predicted)

    def forecast(self, at):
        """Predict: the linear trend of the recent samples, evaluated at time ``at``."""
        return linear_forecast(list(self.samples), at)

    def headroom(self):
        """Feedback: the recent median shortfall of the forecasts (never negative)."""
        return max(0.0, median(self.errors)) if self.errors else 0.0

    @staticmethod
    def cap(want, demand, usable):
        """At most what the work in flight can use, but never below distributed's demand."""
        return min(want, max(math.ceil(demand - 1e-9), usable))

    def plan_target(self, now, current, usable=math.inf):
        """Decide: the target from the latest sample, the forecast, the cap and the
        hysteresis; returns ``(target, reason)``.

        Parameters
        ----------
        now : float
        current : int
            The planned width (taken as held before the first decision).
        usable : int or float, default inf
            Workers the tasks in flight can keep busy.
        """
        demand = self.samples[-1][1] if self.samples else 0.0
        ahead = self.forecast(now + self.horizon)
        self.forecasts.append((now + self.horizon, ahead))
        want = math.ceil(max(demand, ahead + self.headroom()) - 1e-9)
        want = int(self.cap(want, demand, usable))
        why = f"demand {demand:.1f} now, {ahead:.1f} forecast in {self.horizon:g} s"
        if want < math.ceil(ahead - 1e-9):
            why += f", capped at the {want} worker(s) the tasks in flight can use"
        return self.settle(now, want, current, why)

    def settle(self, now, want, current, why):
        """Up at once; down to ``want`` once it has been below the held width for
        ``cooldown`` seconds; else hold."""
        held = current if self.held is None else self.held
        if want >= held:
            self.below_since, self.held = None, want
            return want, why
        if self.below_since is None:
            self.below_since = now
        waited = now - self.below_since
        if waited >= self.cooldown:
            self.below_since, self.held = None, want
            return want, f"{why}: below {held} for {waited:.1f} s, scale down"
        return held, f"hold {held} ({why}; below it for {waited:.1f} s)"
