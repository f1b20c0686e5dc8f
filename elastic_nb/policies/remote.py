"""Measuring a scheduler that runs in another process: dask-gateway's, a pod's.

The :class:`~elastic_nb.policies.recorder.ActivityRecorder` must run inside the scheduler
(it is a scheduler plugin). When the policy is here and the scheduler elsewhere, the
recorder is registered there through the scheduler's own ``register_scheduler_plugin``
handler, and :class:`RemoteRecorder` keeps a mirror of it here, refreshed once per adapt
interval with what changed since the last refresh (``run_function``: one round trip, a few
hundred bytes per iteration). The policy's rules read the mirror exactly as they read a
local recorder. Two differences, both documented where they matter: the busy-cluster wake-up
(``subscribe``) does not cross processes, so decisions come at the interval; and the
scheduler's clock is taken to agree with this one (NTP), since lease steps are timed here.
The scheduler must be able to import elastic_nb (the workers need it anyway, for the tasks);
if it cannot, the policy runs unmeasured and says so in the log.
"""

from __future__ import annotations

import logging
import math
from itertools import takewhile

from distributed.protocol.pickle import dumps

from .recorder import ActivityRecorder

logger = logging.getLogger(__name__)


def _newer(entries, since, at=lambda e: e[0]):
    """The entries of a time-ordered deque newer than ``since``, oldest first."""
    return list(reversed(list(takewhile(lambda e: at(e) > since, reversed(entries)))))


def recorder_changes(name, since, dask_scheduler=None):
    """What the scheduler's recorder ``name`` learned after ``since`` (run in the
    scheduler by ``run_function``); None if it has no such recorder."""
    import time

    rec = dask_scheduler.plugins.get(name)
    if rec is None:
        return None
    return {
        "now": time.time(),
        "active": rec.active,
        "in_flight": rec.in_flight(),
        "threads_per_worker": rec.threads_per_worker(),
        "busy_starts": _newer(rec.busy_starts, since, at=lambda t: t),
        "done": _newer(rec.done, since),
        "threads": _newer(rec.threads, since),
        "last_busy": dict(rec.last_busy),
    }


class RemoteRecorder(ActivityRecorder):
    """A mirror here of the :class:`ActivityRecorder` inside a scheduler elsewhere.

    Parameters
    ----------
    scheduler_rpc : distributed.core.rpc
        The policy's connection to the scheduler (``Adaptive.scheduler``).

    **State** (besides the recorder's own, as of the last :meth:`refresh`)

    rpc : distributed.core.rpc
        Where the refreshes go.
    synced_at : float
        The scheduler's clock at the last refresh (``-inf`` before the first).
    remote_in_flight, remote_threads_per_worker : int
        The scheduler's answers to :meth:`in_flight` and :meth:`threads_per_worker`.
    """

    def __init__(self, scheduler_rpc):
        super().__init__()
        self.rpc = scheduler_rpc
        self.synced_at = -math.inf
        self.remote_in_flight, self.remote_threads_per_worker = 0, 1

    @classmethod
    async def install_remote(cls, scheduler_rpc):
        """Register a recorder in the scheduler (if it has none) and mirror it; None, and a
        warning in the log, if the scheduler refuses (it cannot import elastic_nb)."""
        try:
            await scheduler_rpc.register_scheduler_plugin(
                plugin=dumps(ActivityRecorder()), name=cls.name, idempotent=True
            )
            mirror = cls(scheduler_rpc)
            await mirror.refresh()
        except Exception:
            logger.warning(
                "could not measure the remote scheduler (is elastic_nb installed where it "
                "runs?); the policy holds the largest width during a run instead",
                exc_info=True,
            )
            return None
        return mirror

    async def refresh(self):
        """Bring the mirror up to date: one ``run_function`` round trip."""
        response = await self.rpc.run_function(
            function=dumps(recorder_changes),
            args=dumps((self.name, self.synced_at)),
            kwargs=dumps({}),
            wait=True,
        )
        if response.get("status") != "OK" or response.get("result") is None:
            why = response.get("exception_text", "it has no elastic_nb recorder")
            raise RuntimeError(f"the scheduler's recorder did not answer: {why}")
        changes = response["result"]
        self.active = changes["active"]
        self.remote_in_flight = changes["in_flight"]
        self.remote_threads_per_worker = changes["threads_per_worker"]
        self.busy_starts.extend(changes["busy_starts"])
        self.done.extend(tuple(d) for d in changes["done"])
        self.threads.extend(tuple(t) for t in changes["threads"])
        self.last_busy = dict(changes["last_busy"])
        self.synced_at = changes["now"]

    def in_flight(self):
        return self.remote_in_flight

    def threads_per_worker(self):
        return self.remote_threads_per_worker
