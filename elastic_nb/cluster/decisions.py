"""The cluster's scaling decisions: a bounded log, and listeners that get each one once.

A listener registered with :meth:`DecisionLog.subscribe` first gets the decisions already
held, then every new one, in order, exactly once — also when a decision is made (by the
policy in the scheduler's event loop, or by a user's ``scale``) while the past is being
replayed to it. Each listener has a cursor (a sequence number into the log) and a single
deliverer at a time: whoever finds it busy leaves the new decision to the thread already
delivering, which goes on until the cursor reaches the end of the log. No lock is held
while a listener runs, so a listener may itself make decisions or call the cluster.
"""

from __future__ import annotations

import logging
import threading

from ..observe.buffer import RingBuffer

logger = logging.getLogger(__name__)

#: Decisions an ElasticCluster holds. A policy announces only changes (new target, scale
#: up, scale down), a few per minute of elastic training: a day of them, in well under 1 MB.
MAX_DECISIONS = 1_000


class _Delivery:
    """One listener's position in the log.

    State
    -----
    cursor : int
        Sequence number of the next decision to hand to the listener.
    busy : bool
        A thread is delivering to this listener now.
    again : bool
        Another thread found it busy after a new decision arrived: look once more.
    """

    def __init__(self, listener, log, cursor):
        self.listener, self.log, self.cursor = listener, log, cursor
        self.busy = self.again = False
        self._state = threading.Lock()

    def _claim(self) -> bool:
        with self._state:
            if self.busy:
                self.again = True
                return False
            self.busy = True
            return True

    def _release(self) -> bool:
        """Stop delivering unless something arrived meanwhile (then keep going)."""
        with self._state:
            if self.again:
                self.again = False
                return False
            self.busy = False
            return True

    def run(self):
        """Hand the listener every decision from its cursor to the end of the log."""
        if not self._claim():
            return  # the thread delivering now will see the new decision
        try:
            while self._deliver_pending() or not self._release():
                pass  # keep going while decisions arrive
        except BaseException:  # KeyboardInterrupt in a listener: the next decision retries
            with self._state:
                self.busy = self.again = False
            raise

    def _deliver_pending(self) -> bool:
        """Deliver what the log holds past the cursor; False if there was nothing."""
        batch = self.log.records.since(self.cursor)
        if batch.missed:
            logger.warning("a scaling-decision listener missed %d decision(s)", batch.missed)
        for offset, (action, details) in enumerate(batch.records):
            self.cursor = batch.start + offset + 1
            try:
                self.listener(action, **details)
            except Exception:  # one broken listener must not stop a scale-up or the rest
                logger.exception("scaling-decision listener %r failed", self.listener)
        self.cursor = max(self.cursor, batch.cursor)
        return bool(batch.records)


class DecisionLog:
    """Every scaling decision of one cluster with its details, bounded, and its listeners.

    Parameters
    ----------
    maxlen : int
        Decisions held (default :data:`MAX_DECISIONS`); the oldest are dropped first.

    State
    -----
    records : RingBuffer of (action, details)
        The latest ``maxlen`` decisions, oldest first; ``details`` is a dict with a
        ``reason``.
    deliveries : list of _Delivery
        One per listener, each with its own cursor into ``records``.
    """

    def __init__(self, maxlen: int = MAX_DECISIONS):
        self.records = RingBuffer(maxlen)
        self.deliveries: list[_Delivery] = []
        self._lock = threading.Lock()  # guards ``deliveries``

    def record(self, action: str, **details):
        """Log a decision and hand it to every listener."""
        self.records.append((action, details))
        with self._lock:
            deliveries = list(self.deliveries)
        for delivery in deliveries:
            delivery.run()

    def subscribe(self, listener):
        """Call ``listener(action, **details)`` for every decision held, then for every new
        one: each exactly once and in order, in the thread that made it (or in the thread
        still delivering earlier ones to ``listener``)."""
        with self._lock:
            delivery = _Delivery(listener, self, self.records.first)
            self.deliveries.append(delivery)
        delivery.run()

    def __iter__(self):
        return iter(self.records)

    def __len__(self):
        return len(self.records)

    def __getitem__(self, index):
        return self.records[index]

    def __repr__(self):
        return f"<DecisionLog {self.records!r}>"
