"""A local cluster of worker processes that elastic_nb starts, owns and shuts down."""

from __future__ import annotations

import asyncio
import contextlib
import logging

import dask.config
from dask.utils import parse_timedelta
from distributed import Client, LocalCluster
from distributed.core import Status
from distributed.deploy import Cluster

from .._validation import check_int
from .backends import Backend
from .capacity import check_local_capacity, check_memory_limit, check_port
from .forkserver import StartMethodNanny, resolve_start_method, temporary_config
from .prompt import make_prompt

LOOPBACK = "127.0.0.1"

#: The scheduler's own HTTP API module (adaptive target, workers, retire workers).
HTTP_API_ROUTE = "distributed.http.scheduler.api"
#: How often each worker's statistical profiler samples its task threads. distributed
#: samples every 10 ms, on the worker's event loop, which then takes the GIL from the task
#: thread: measured, 10 ms of each worker's CPU per one-pass gradient of 8M x 32 (90 ms
#: instead of 80). Every 100 ms, the dashboard's profile page still fills within seconds.
PROFILE_INTERVAL_MS = 100
#: distributed's own ``distributed.worker.profile.interval``.
DISTRIBUTED_PROFILE_INTERVAL_MS = 10


def worker_config() -> dict:
    """Config for the workers of a cluster elastic_nb starts: the profiler samples every
    :data:`PROFILE_INTERVAL_MS`, unless the user's config already chose an interval.

    distributed's ``Nanny`` adds it to its own config with a shallow merge and has the
    worker process ``dask.config.set`` the result, so the key is dotted: a nested
    ``{"distributed": ...}`` would replace all of distributed's config."""
    interval = parse_timedelta(dask.config.get("distributed.worker.profile.interval"), "ms")
    if round(interval * 1000) != DISTRIBUTED_PROFILE_INTERVAL_MS:
        return {}
    return {"distributed.worker.profile.interval": f"{PROFILE_INTERVAL_MS}ms"}


class _LocalCluster(LocalCluster):
    """A ``LocalCluster`` whose lost-worker reaper ignores stale timers.

    When a worker leaves, distributed's ``SpecCluster`` arms a timer
    (``distributed.deploy.lost-worker-timeout``, 15 s) that closes the worker's Nanny unless
    a worker of that name is back by then. The timer is never cancelled: if the replacement
    the Nanny started dies as well and the first timer fires while the Nanny restarts it
    again, a healthy Nanny is closed, and a fixed-size cluster stays one worker short for
    good (2 kills in 20 in ``benchmarks/faults.py``). Here a Nanny is reaped only if it is
    still on the very worker whose departure armed the timer and not restarting it.
    """

    def _update_worker_status(self, op, msg):
        if op != "remove":
            return super()._update_worker_status(op, msg)
        info = self.scheduler_info["workers"].get(msg)
        if info is None:  # a worker killed before its arrival reached us: nothing to reap
            return
        name = info["name"]

        def reap():
            nanny = self.workers.get(name)
            if nanny is None or any(
                info["name"] == name for info in self.scheduler_info["workers"].values()
            ):
                return  # closed already, or a worker of that name is back
            restarting = getattr(nanny.process, "status", None) == Status.starting
            if nanny.status == Status.running and (nanny.worker_address != msg or restarting):
                return  # it has started, or is starting, a newer worker: a stale timer
            self._futures.add(asyncio.ensure_future(nanny.close()))
            del self.workers[name]

        delay = parse_timedelta(dask.config.get("distributed.deploy.lost-worker-timeout"))
        asyncio.get_running_loop().call_later(delay, reap)
        Cluster._update_worker_status(self, op, msg)  # not SpecCluster's unguarded timer


def launch_local(http_api=False, **kwargs):
    """A LocalCluster of worker processes (``kwargs`` are LocalCluster's), or one clear
    error (distributed has already closed whatever it started when it raises).

    ``http_api=True`` adds :data:`HTTP_API_ROUTE` to the scheduler's routes: the scheduler
    reads ``distributed.scheduler.http.routes`` once, as it is created, so the value is
    held only while the cluster starts.
    """
    routes = list(dask.config.get("distributed.scheduler.http.routes"))
    held = contextlib.nullcontext()
    if http_api and HTTP_API_ROUTE not in routes:
        held = temporary_config("distributed.scheduler.http.routes", [*routes, HTTP_API_ROUTE])
    try:
        with held:
            return _LocalCluster(
                processes=True,
                silence_logs=logging.ERROR,
                worker_class=StartMethodNanny,
                config=worker_config(),
                **kwargs,
            )
    except Exception as err:
        raise RuntimeError(f"could not start the local cluster: {err}") from err


class LocalBackend(Backend):
    """A ``LocalCluster`` of worker processes on this machine, owned by elastic_nb.

    Everything is checked when the backend is built, before any process starts: the
    resources of a worker, the ports, and (by :meth:`check_width`) whether the machine can
    hold the widest the cluster may grow to.

    Parameters
    ----------
    threads_per_worker : int
        Threads of each worker.
    memory_limit : "auto", int or str
        Memory of each worker (``"auto"``: distributed's share of the machine).
    security : None, bool or Security
        ``True``: TLS with a temporary certificate; the scheduler then speaks ``tls://``.
    http_api : bool
        Serve the scheduler's HTTP API (:data:`HTTP_API_ROUTE`) on the dashboard's port.
    host : str
        Where the scheduler, workers and dashboard listen (127.0.0.1 by default).
    scheduler_port, dashboard_port : int
        0 picks free ports.
    start_method : "auto", None or a multiprocessing start method
        How worker processes start (see
        :func:`~elastic_nb.cluster.forkserver.resolve_start_method`): by default from the
        fork server, for this cluster's workers only; None leaves it to dask's config.

    State
    -----
    threads_per_worker, memory_limit
        The resources of new workers (:meth:`roll_workers` changes them).
    start_method : str or None
        As resolved when the backend was built.
    """

    owns = True

    def __init__(
        self,
        threads_per_worker=1,
        memory_limit="auto",
        *,
        security=None,
        http_api=False,
        host=LOOPBACK,
        scheduler_port=0,
        dashboard_port=0,
        start_method="auto",
    ):
        self.threads_per_worker = check_int("threads_per_worker", threads_per_worker, minimum=1)
        self.memory_limit = check_memory_limit(memory_limit)
        if not isinstance(http_api, bool):
            raise TypeError(f"http_api must be True or False, got {http_api!r}")
        if not isinstance(host, str) or not host:
            raise TypeError(f"host must be an address like {LOOPBACK!r}, got {host!r}")
        self.start_method = resolve_start_method(start_method)
        super().__init__(security)
        self.http_api, self.host = http_api, host
        self.scheduler_port = check_port("scheduler_port", host, scheduler_port)
        self.dashboard_port = check_port("dashboard_port", host, dashboard_port)

    def check_width(self, n):
        check_local_capacity(n, self.threads_per_worker, self.memory_limit)

    def check_resources(self, threads_per_worker, memory_limit, maximum):
        threads, memory = self.threads_per_worker, self.memory_limit
        if threads_per_worker is not None:
            threads = check_int("threads_per_worker", threads_per_worker, minimum=1)
        if memory_limit is not None:
            memory = check_memory_limit(memory_limit)
        check_local_capacity(maximum, threads, memory)
        return threads, memory

    def open(self, n_workers) -> Client:
        self.manager = launch_local(
            http_api=self.http_api,
            n_workers=n_workers,
            threads_per_worker=self.threads_per_worker,
            memory_limit=self.memory_limit,
            host=self.host,
            scheduler_port=self.scheduler_port,
            dashboard_address=f"{self.host}:{self.dashboard_port}",
            protocol="tls://" if self.security else None,
            security=self.security,
            start_method=self.start_method,
        )
        self.client = Client(self.manager, security=self.security)
        make_prompt(self.client)
        return self.client

    def roll_workers(self, threads_per_worker, memory_limit, at_least, timeout):
        """Start as many workers with the new resources as run (``at_least`` of them), wait
        for them, then retire the old ones gracefully (their data moves to the new ones).

        If the new workers do not all arrive within ``timeout`` seconds (or starting them
        fails), the old resources are put back, the new workers are dropped, and the error
        is raised: the cluster is left as it was. Returns (old workers, new workers).
        """
        manager, client = self.manager, self.client
        old = list(manager.worker_spec)
        n = max(len(old), at_least)
        options = manager.new_spec["options"]
        before = options["nthreads"], options["memory_limit"]
        options["nthreads"], options["memory_limit"] = threads_per_worker, memory_limit
        try:
            manager.scale(len(old) + n)
            client.wait_for_workers(len(old) + n, timeout=timeout)
        except BaseException:
            options["nthreads"], options["memory_limit"] = before
            manager.scale(len(old))  # drops the newest specs: the ones just added
            raise
        self.threads_per_worker, self.memory_limit = threads_per_worker, memory_limit
        if old:
            client.retire_workers(names=old, close_workers=True)
            manager.sync(manager.scale_down, old)
        return len(old), n
