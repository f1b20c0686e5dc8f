"""The one event stream that plots, the panel, the CLI, reports and tests read."""

from __future__ import annotations

import csv
import json
import threading
import time
from pathlib import Path

from .._validation import check_float, check_int
from .buffer import Batch, RingBuffer

SAMPLE, ITERATION, SCALE, RUN = "sample", "iteration", "scale", "run"

#: Events a monitor holds by default: at one sample every 0.5 s (the default interval) plus
#: iterations and decisions, several hours of a run, in some tens of MB at most (a sample
#: is about 1 KB). Older events are dropped: plots, reports and costs cover what is held.
MAX_EVENTS = 50_000


def worker_seconds(events, start: float = 0.0, end: float | None = None) -> float:
    """Cost of a stream: the integral of running workers over [start, end], step-wise with
    each sample's value held until the next (``end`` defaults to the last sample)."""
    samples = [(e["time"], e["workers"]) for e in events if e["kind"] == SAMPLE]
    if not samples:
        return 0.0
    end = samples[-1][0] if end is None else end
    total = 0.0
    for (t, n), (t_next, _) in zip(samples, [*samples[1:], (end, 0)], strict=True):
        lo, hi = max(t, start), min(t_next, end)
        if hi > lo:
            total += n * (hi - lo)
    return total


class Monitor:
    """Samples a cluster periodically and records training and scaling events.

    Parameters
    ----------
    cluster : ElasticCluster or None
        What to sample; its scaling decisions (past ones first) are recorded too. None for a
        stream loaded from a file or filled by hand.
    interval : float
        Seconds between samples once :meth:`start` ed.
    max_events : int
        How many events are held (default :data:`MAX_EVENTS`); the oldest go first.

    State
    -----
    events : RingBuffer of dict
        The latest ``max_events`` events, in time order; each has a sequence number (see
        :meth:`events_since`). Every event has ``kind`` and ``time`` (seconds since
        the monitor started); the kinds are

        - ``"sample"``: ``workers`` running, ``workers_requested`` (by the cluster
          manager), ``demand`` (the scheduler's adaptive target), ``threads``, ``memory``
          (bytes in use, all workers), ``managed`` (bytes of task results), tasks
          ``processing`` / ``waiting`` (for dependencies) / ``executing``, and
          ``per_worker`` rows of ``[name, memory, managed]``;
        - ``"iteration"``: ``run``, ``iteration``, ``loss``, ``elapsed``, ``workers``,
          and ``rows`` (rows the iteration read, when the model says);
        - ``"scale"``: ``action`` and ``reason`` (plus the action's numbers);
        - ``"run"``: ``run``, ``status`` (``"started"``, ``"finished"``, ``"stopped"``,
          ``"failed"``), a ``message``, and what describes the run (``model``,
          ``solver``, ``data``, ...), for reports.
    start_time : float
        Wall-clock (``time.time()``) of time 0, so a reloaded stream can be dated.

    Subscribers registered with :meth:`subscribe` are called with each event as it is
    recorded, in the recording thread; they must be quick (plots batch on their side).
    """

    def __init__(self, cluster=None, interval=0.5, max_events=MAX_EVENTS):
        self.cluster = cluster
        self.interval = check_float("interval", interval, positive=True)
        self.events = RingBuffer(check_int("max_events", max_events, minimum=1))
        self.start_time = time.time()
        self._t0 = time.monotonic()
        self._lock = threading.Lock()  # guards _subscribers (events lock themselves)
        self._subscribers = []
        self._stop = threading.Event()
        self._thread = None
        self._runs = 0
        if cluster is not None and hasattr(cluster, "subscribe"):
            cluster.subscribe(self._on_scale)

    # ----------------------------------------------------------------- recording
    def now(self) -> float:
        return time.monotonic() - self._t0

    def record(self, kind: str, **fields) -> dict:
        event = {"kind": kind, "time": round(self.now(), 6), **fields}
        self.events.append(event)
        with self._lock:
            subscribers = list(self._subscribers)
        for subscriber in subscribers:
            subscriber(event)
        return event

    def subscribe(self, subscriber):
        """Call ``subscriber(event)`` for every event recorded from now on."""
        with self._lock:
            self._subscribers.append(subscriber)

    def _on_scale(self, action, **details):
        self.record(SCALE, action=action, **details)

    def training_callback(self, name: str | None = None):
        """A model ``callback`` that records each iteration under a new run name."""
        self._runs += 1
        run = name or f"run-{self._runs}"

        def callback(record):
            self.record(ITERATION, run=run, workers=self.current_workers(), **record)

        callback.run = run
        return callback

    def run_status(self, run: str, status: str, message: str = "", **details):
        """Record that ``run`` started or ended; ``details`` describe it (model, solver,
        data, final numbers) for reports."""
        return self.record(RUN, run=run, status=status, message=message, **details)

    # ------------------------------------------------------------------ sampling
    def sample(self) -> dict:
        """Take one sample of the cluster now and record it.

        Three cheap calls to the scheduler's standard handlers (worker identities, task
        counts per state, the scheduler's own adaptive target), so any scheduler can be
        watched without shipping code to it.
        """
        client = self.cluster.client
        info = client.scheduler_info(n_workers=-1)
        states = client.sync(client.scheduler.get_task_prefix_states)
        demand = client.sync(client.scheduler.adaptive_target)
        workers = info.get("workers", {}).values()
        metrics = [w.get("metrics", {}) for w in workers]
        return self.record(
            SAMPLE,
            workers=len(workers),
            workers_requested=getattr(self.cluster, "requested_workers", None),
            demand=demand,
            threads=sum(w.get("nthreads", 0) for w in workers),
            memory=sum(m.get("memory", 0) for m in metrics),
            managed=sum(m.get("managed_bytes", 0) for m in metrics),
            processing=sum(counts.get("processing", 0) for counts in states.values()),
            waiting=sum(counts.get("waiting", 0) for counts in states.values()),
            executing=sum(m.get("task_counts", {}).get("executing", 0) for m in metrics),
            per_worker=[
                [str(w.get("name")), m.get("memory", 0), m.get("managed_bytes", 0)]
                for w, m in zip(workers, metrics, strict=True)
            ],
        )

    def start(self):
        """Sample every ``interval`` seconds in a daemon thread until :meth:`stop`."""
        if self.cluster is None:
            raise RuntimeError("this Monitor has no cluster to sample (it was loaded from a file)")
        if self._thread is not None and self._thread.is_alive():
            return self
        self._stop.clear()
        self._thread = threading.Thread(target=self._sample_loop, name="enb-monitor", daemon=True)
        self._thread.start()
        return self

    def _sample_loop(self):
        while not self._stop.is_set():
            try:
                if self.cluster.closed:
                    break
                self.sample()
            except Exception as err:  # a lost scheduler must not kill the kernel's thread
                if self._stop.is_set() or self.cluster.closed:
                    break
                self.record(SCALE, action="sample-failed", reason=str(err))
            self._stop.wait(self.interval)

    def stop(self, timeout=5.0):
        """Stop sampling; :attr:`running` stays true if the thread outlives ``timeout``."""
        self._stop.set()
        thread = self._thread
        if thread is not None and thread is not threading.current_thread():
            thread.join(timeout)
        if thread is None or not thread.is_alive():
            self._thread = None

    @property
    def running(self) -> bool:
        return self._thread is not None and self._thread.is_alive()

    # ------------------------------------------------------------------- reading
    def events_since(self, cursor: int) -> Batch:
        """The events from sequence number ``cursor`` on (see :meth:`RingBuffer.since`).

        A reader starts at 0 and goes on from the returned ``cursor``; ``missed`` counts the
        events dropped before it read them, if it fell behind by more than ``max_events``.
        """
        return self.events.since(cursor)

    def of_kind(self, kind: str) -> list[dict]:
        return [e for e in self.events if e["kind"] == kind]

    def current_workers(self) -> int | None:
        """Running workers in the latest sample (None before the first one)."""
        sample = self.events.find_last(lambda event: event["kind"] == SAMPLE)
        return None if sample is None else sample["workers"]

    def worker_seconds(self, start: float = 0.0, end: float | None = None) -> float:
        """Cost: the integral of running workers over [start, end] (see :func:`worker_seconds`),
        over the events still held."""
        return worker_seconds(self.events.snapshot(), start, end)

    # ---------------------------------------------------------------- persisting
    def to_jsonl(self, path) -> Path:
        """Write the stream as JSON lines: a header line, then one event per line."""
        path = Path(path)
        events = self.events.snapshot()
        with path.open("w") as out:
            out.write(json.dumps({"kind": "header", "start_time": self.start_time}) + "\n")
            for event in events:
                out.write(json.dumps(event) + "\n")
        return path

    def to_csv(self, path, kind: str = SAMPLE) -> Path:
        """Write the events of one ``kind`` as a CSV table (nested fields as JSON)."""
        path = Path(path)
        rows = self.of_kind(kind)
        columns = list(dict.fromkeys(k for row in rows for k in row))
        with path.open("w", newline="") as out:
            writer = csv.DictWriter(out, fieldnames=columns)
            writer.writeheader()
            for row in rows:
                writer.writerow(
                    {k: json.dumps(v) if isinstance(v, (list, dict)) else v for k, v in row.items()}
                )
        return path

    @classmethod
    def read_jsonl(cls, path, max_events=MAX_EVENTS) -> Monitor:
        """Reload a stream written by :meth:`to_jsonl` (for replay and reports); the last
        ``max_events`` events are kept."""
        monitor = cls(max_events=max_events)
        with Path(path).open() as lines:
            for line in lines:
                event = json.loads(line)
                if event.get("kind") == "header":
                    monitor.start_time = event["start_time"]
                else:
                    monitor.events.append(event)
        return monitor
