"""The base of elastic_nb's policies: distributed's ``Adaptive`` plus reasons and leases."""

from __future__ import annotations

import asyncio
import logging
import math
import time
from dataclasses import dataclass

from distributed.deploy import Adaptive

from .._validation import check_float, check_int
from .leases import LeaseBook
from .recorder import ActivityRecorder
from .remote import RemoteRecorder

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class Param:
    """A policy's own keyword argument: its default and its check.

    Parameters
    ----------
    name : str
    default : int or float
    kind : {"int", "float"}
    minimum : int or float or None
        Smallest value allowed.
    positive : bool
        For floats: must be > 0.
    """

    name: str
    default: int | float
    kind: str = "float"
    minimum: int | float | None = None
    positive: bool = False

    def check(self, value):
        """``value`` checked (TypeError/ValueError naming the argument); default for None."""
        if value is None:
            return self.default
        if self.kind == "int":
            return check_int(self.name, value, minimum=self.minimum)
        return check_float(self.name, value, minimum=self.minimum, positive=self.positive)


#: What ``Adaptive`` accepts by keyword (``memory_ratio`` goes to workers_to_close).
ADAPTIVE_KWARGS = frozenset(
    {"interval", "minimum", "maximum", "wait_count", "target_duration", "worker_key"}
    | {"memory_ratio"}
)


#: Seconds between two questions to the backend about workers not connected yet.
PENDING_EVERY = 2.0


def _log_failure(future):
    """Done-callback of a background ``adapt()``: log its failure, never lose it."""
    if not future.cancelled() and future.exception() is not None:
        logger.error("adapting failed", exc_info=future.exception())


class ElasticPolicy(Adaptive):
    """Base of elastic_nb's policies: distributed's ``Adaptive``, announcing its decisions.

    distributed runs the loop: every ``interval``, ``safe_target`` (``target`` clamped to
    ``minimum``/``maximum``) -> ``recommendations`` (a worker is closed after ``wait_count``
    consecutive proposals) -> ``scale_up`` / ``scale_down``, with the workers to close chosen
    by ``Scheduler.workers_to_close`` (``worker_key`` groups, less data first). A policy only
    changes the target, through :meth:`decide`, and says why.

    **State**

    reason : str
        Why the last target was what it was.
    last_target : int or None
        The last target, after distributed's clamping to ``minimum``/``maximum``.
    leases : LeaseBook
        The leases held on the cluster (the cluster's own, or a private empty one).
    recorder : ActivityRecorder or None
        The scheduler plugin measuring the cluster, once the policy runs, if
        :attr:`uses_recorder`: the plugin itself when the scheduler is in this process, a
        :class:`~elastic_nb.policies.remote.RemoteRecorder` mirror of it when the
        scheduler is elsewhere (refreshed at every interval), None until it is installed
        or where it cannot be.
    waiting_reason : str or None
        The backend's last word on why requested workers have not connected (see
        ``pending``); None while none are awaited.
    waiting_checked_at : float
        When the backend was last asked (it is asked at most every
        :data:`PENDING_EVERY` seconds: ``squeue`` is not free on a busy login node).

    **Methods a subclass provides**

    decide(now, current) -> (int, str)
        Coroutine: the target (unclamped) and its reason; ``current`` is the planned
        worker count. The default is distributed's ``Adaptive.target``.
    on_busy() -> None
        Called by the recorder when work arrives on an idle cluster (weakly held).

    **Class attributes a subclass sets**

    params : dict of str -> Param
        The subclass's own keyword arguments; each becomes an attribute.
    uses_recorder : bool
        Whether to install the :class:`ActivityRecorder` when the policy starts.

    Parameters
    ----------
    cluster : distributed.deploy.Cluster or None
        None makes a pure object (no loop), for tests of the rules.
    *args, **kwargs
        :class:`distributed.deploy.Adaptive`'s (``interval``, ``minimum``, ``maximum``,
        ``wait_count``, ``target_duration``, ``worker_key``; unset ones come from the
        ``distributed.adaptive`` configuration) and the subclass's :attr:`params`.
    announce : callable or None
        ``announce(action, policy=..., **details)`` for every decision (``"target"``,
        ``"scale-up"``, ``"scale-down"``) with a ``reason``. A failing one is logged.
    leases : LeaseBook or None
        The leases held on the cluster (:class:`~elastic_nb.ElasticCluster` passes its own).
    pending : coroutine function or None
        ``await pending(names)``: why the requested workers ``names`` have not connected
        yet, in the backend's words (``"1 job(s) PENDING in queue debug (Resources)"``);
        announced as a ``"pending"`` decision when it changes.
    """

    params: dict[str, Param] = {}
    uses_recorder: bool = False
    #: The parameter names of every policy class defined so far (see :meth:`_own_kwargs`).
    _every_param: set[str] = set()

    def __init_subclass__(cls, **kwargs):
        super().__init_subclass__(**kwargs)
        ElasticPolicy._every_param.update(cls.params)

    def __init__(self, cluster=None, *args, announce=None, leases=None, pending=None, **kwargs):
        # first, so that __del__ -> stop() works even if a check below raises
        self.state, self.recorder, self._background = "inactive", None, set()
        own = self._own_kwargs(kwargs)
        for name, param in self.params.items():
            setattr(self, name, param.check(own.get(name)))
        self.announce, self.pending = announce, pending
        self.waiting_reason, self.waiting_checked_at = None, -math.inf
        self.leases = leases if leases is not None else LeaseBook()
        self.reason = "not adapted yet"
        self.last_target = None
        super().__init__(cluster, *args, **kwargs)

    @classmethod
    def _own_kwargs(cls, kwargs):
        """Pop this policy's parameters from ``kwargs``, and those of other policies.

        ``Cluster.adapt`` keeps the options of earlier calls (so ``adapt(maximum=2)`` keeps
        the interval); switching policy therefore brings the old policy's parameters along.
        They are dropped (and logged); what is left goes to ``Adaptive``, which passes
        unknown names on to ``Scheduler.workers_to_close``, only ``memory_ratio`` is valid.
        """
        own = {k: kwargs.pop(k) for k in list(kwargs) if k in cls.params}
        foreign = sorted(k for k in kwargs if k in ElasticPolicy._every_param)
        for k in foreign:
            kwargs.pop(k)
        if foreign:
            logger.info("%s ignores %s (another policy's)", cls.__name__, ", ".join(foreign))
        unknown = sorted(set(kwargs) - ADAPTIVE_KWARGS)
        if unknown:
            raise TypeError(f"unknown argument(s) for policy {cls.__name__}: {', '.join(unknown)}")
        return own

    @classmethod
    def check_params(cls, **kwargs):
        """Validate this policy's own keyword arguments; raise naming the bad one."""
        for k, v in kwargs.items():
            if k in cls.params:
                cls.params[k].check(v)

    # ------------------------------------------------------------- life cycle
    def _start(self):
        """Adaptive's start, then the recorder installed and subscribed to (weakly); for a
        scheduler in another process, installed there in the background."""
        super()._start()
        if self.state == "running" and self.uses_recorder and self.recorder is None:
            self.recorder = ActivityRecorder.install(self.cluster)
            if self.recorder is not None:
                self.recorder.subscribe(self.on_busy)
            elif getattr(self.cluster, "scheduler_comm", None) is not None:
                self._in_background(self._install_remote_recorder())

    async def _install_remote_recorder(self):
        recorder = await RemoteRecorder.install_remote(self.scheduler)
        if self.state == "running":
            self.recorder = recorder

    def stop(self, reason="unknown"):
        """Stop adapting (``Adaptive.stop``) and unsubscribe from the recorder."""
        if self.recorder is not None:
            self.recorder.unsubscribe(self.on_busy)
        super().stop(reason=reason)

    def on_busy(self):
        """Work arrived on an idle cluster; the base waits for the next interval."""

    def adapt_soon(self):
        """Run one ``adapt()`` now, in the background (its failure is logged).

        Call it from the event loop (the recorder's hooks run there)."""
        if self.state == "running":
            self._in_background(self.adapt())

    def _in_background(self, coroutine):
        """Run ``coroutine`` as a task of the loop; its failure is logged."""
        task = asyncio.ensure_future(coroutine)
        self._background.add(task)  # asyncio holds tasks weakly
        task.add_done_callback(self._background.discard)
        task.add_done_callback(_log_failure)

    # ---------------------------------------------------------------- the loop
    async def target(self):
        """The target of :meth:`decide` (distributed's ``safe_target`` clamps it), on a
        fresh view of a remote scheduler's recorder (a failed refresh is logged, and the
        last view used)."""
        if isinstance(self.recorder, RemoteRecorder):
            try:
                await self.recorder.refresh()
            except Exception:
                logger.warning("refreshing the remote recorder failed", exc_info=True)
        n, self.reason = await self.decide(time.time(), len(self.plan))
        return n

    async def safe_target(self):
        """distributed's clamp to ``minimum``/``maximum``; a changed target is announced,
        and so is the backend's reason for workers that are still awaited."""
        n = int(await super().safe_target())
        if n != self.last_target:
            self._say("target", target=n, reason=self.reason)
        self.last_target = n
        await self.explain_waiting(time.monotonic())
        return n

    async def explain_waiting(self, now):
        """Ask the backend why the requested workers are not connected yet, and announce
        a ``"pending"`` decision when its answer changes (a failure is logged)."""
        if self.pending is None or self.cluster is None:
            return
        waiting = list(self.requested - self.observed)
        if not waiting:
            self.waiting_reason = None
            return
        if now - self.waiting_checked_at < PENDING_EVERY:
            return
        self.waiting_checked_at = now
        try:
            why = await asyncio.wait_for(self.pending(waiting), PENDING_EVERY)
        except Exception:
            logger.warning("asking the backend about pending workers failed", exc_info=True)
            return
        if why != self.waiting_reason:
            self.waiting_reason = why
            self._say("pending", waiting=len(waiting), reason=why)

    async def decide(self, now, current):
        """distributed's target, unchanged."""
        return await Adaptive.target(self), "distributed's adaptive_target"

    async def scale_up(self, n):
        """Announce, then ``Adaptive.scale_up``."""
        self._say("scale-up", target=int(n), reason=f"scale up to {n}: {self.reason}")
        await super().scale_up(n)

    async def scale_down(self, workers):
        """Announce, then ``Adaptive.scale_down`` (retire gracefully, then close)."""
        if workers:
            self._say(
                "scale-down",
                retired=[str(w) for w in workers],
                target=len(self.plan) - len(workers),
                reason=f"retire {len(workers)} worker(s): {self.reason}",
            )
        await super().scale_down(workers)

    def _say(self, action, **details):
        if self.announce is None:
            return
        try:
            self.announce(action, policy=type(self).__name__, **details)
        except Exception:  # a listener must never break the adaptive loop
            logger.exception("announcing %s failed", action)

    def __repr__(self):
        bounds = f"{self.minimum}..{'inf' if math.isinf(self.maximum) else self.maximum}"
        return f"<{type(self).__name__} {self.state} {bounds} wait_count={self.wait_count}>"
