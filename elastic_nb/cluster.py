"""Start, wrap or connect to a Dask cluster and make it elastic.

elastic_nb never writes its own cluster manager: a local run is a
:class:`distributed.LocalCluster` with worker processes; anything else is a
``distributed.deploy.Cluster`` the user built (dask-kubernetes, dask-jobqueue,
dask-gateway, ...) or the address of a running scheduler.
"""

from __future__ import annotations

import asyncio
import contextlib
import errno
import functools
import logging
import multiprocessing
import os
import socket
import threading
import time
import weakref
from urllib.parse import urlparse

import dask.config
from dask.system import CPU_COUNT
from dask.utils import parse_bytes, parse_timedelta
from distributed import Client, LocalCluster
from distributed.comm import connect
from distributed.core import Status
from distributed.deploy import Cluster
from distributed.security import Security
from distributed.system import MEMORY_LIMIT
from distributed.utils import silence_logging_cmgr

from ._validation import check_float, check_int
from .policy import ElasticPolicy, Lease, LeaseBook, check_policy_params, resolve_policy

LOOPBACK = "127.0.0.1"

#: Below this a worker process (Python, numpy, distributed: ~120 MB resident) would be
#: killed by its nanny as soon as it starts, and restarted forever.
MIN_WORKER_MEMORY = 256 * 2**20

#: The scheduler's own HTTP API module (adaptive target, workers, retire workers).
HTTP_API_ROUTE = "distributed.http.scheduler.api"


def _check_memory_limit(value):
    if value == "auto" or value is None:
        return value
    if isinstance(value, str):
        try:
            nbytes = parse_bytes(value)
        except (ValueError, OverflowError) as err:  # "1e400" overflows inside parse_bytes
            raise ValueError(
                f"memory_limit must be 'auto', a byte count or a size like '2GiB', got {value!r}"
            ) from err
    elif isinstance(value, (int, float)) and not isinstance(value, bool):
        nbytes = value
    else:
        raise TypeError(f"memory_limit must be 'auto', bytes or a size string, got {value!r}")
    if not 0 < nbytes < float("inf"):
        raise ValueError(f"memory_limit must be > 0 and finite, got {value!r}")
    return value


def _worker_memory(memory_limit, threads_per_worker):
    """Bytes one local worker may use: distributed's own rule for ``"auto"``."""
    if memory_limit in ("auto", None):
        return MEMORY_LIMIT * min(1, threads_per_worker / CPU_COUNT)
    return parse_bytes(memory_limit) if isinstance(memory_limit, str) else memory_limit


def check_local_capacity(maximum, threads_per_worker=1, memory_limit="auto"):
    """Refuse a local cluster this machine cannot hold, before any process starts.

    Each worker needs at least :data:`MIN_WORKER_MEMORY`, no worker may be promised more
    than the machine (or container) has, and ``maximum`` workers with an explicit
    ``memory_limit`` must fit in it together. CPUs may be oversubscribed, as in distributed.
    """
    per_worker = _worker_memory(memory_limit, threads_per_worker)
    total = f"{MEMORY_LIMIT / 2**30:.1f} GiB"
    if per_worker < MIN_WORKER_MEMORY:
        raise ValueError(
            f"memory_limit must be at least {MIN_WORKER_MEMORY // 2**20} MiB per worker "
            f"(a worker process needs that much to start), got {memory_limit!r}"
        )
    if per_worker > MEMORY_LIMIT:
        raise ValueError(
            f"memory_limit {memory_limit!r} is more than this machine's memory ({total})"
        )
    floor = per_worker if memory_limit not in ("auto", None) else MIN_WORKER_MEMORY
    if maximum * floor > MEMORY_LIMIT:
        most = int(MEMORY_LIMIT // floor)
        raise ValueError(
            f"maximum must be at most {most} on this machine: {maximum} workers of "
            f"{floor / 2**30:.2f} GiB need more than its {total}"
        )


def _check_port(name, host, port):
    """Raise OSError(EADDRINUSE) naming ``name`` if ``host:port`` is taken (0: any port)."""
    port = check_int(name, port, minimum=0)
    if port > 65535:
        raise ValueError(f"{name} must be <= 65535, got {port}")
    if port:
        with socket.socket() as probe:
            try:
                probe.bind((host, port))
            except OSError as err:
                raise OSError(
                    errno.EADDRINUSE,
                    f"{name} {port} on {host} is already in use (another cluster?); "
                    f"pass {name}=0 to pick a free port",
                ) from err
    return port


#: What every elastic_nb worker imports sooner or later (dask.array alone is 0.4 s of CPU),
#: imported once in the fork server instead of once per worker.
WORKER_PRELOAD = ("dask.array", "elastic_nb.solvers", "elastic_nb.datasets")


@functools.cache  # once: update_defaults appends to dask's list of defaults
def _prefer_forkserver():
    """Start local workers from distributed's fork server where the platform has one.

    A spawned worker imports Python, numpy and distributed from scratch (0.5 s of CPU each:
    8 workers take 4 s to join on 2 cores); a fork of a server that imported them once
    takes 0.06 s. Elastic scaling lives on that latency. This only changes the *default*
    of ``distributed.worker.multiprocessing-method``: a value the user configured wins.
    The server also preloads :data:`WORKER_PRELOAD` besides distributed's own list.
    """
    if "forkserver" not in multiprocessing.get_all_start_methods():
        return
    dask.config.update_defaults(
        {"distributed": {"worker": {"multiprocessing-method": "forkserver"}}}
    )
    if dask.config.get("distributed.worker.multiprocessing-method") == "forkserver":
        from distributed.utils import get_mp_context
        from distributed.versions import optional_packages, required_packages

        # distributed sets its list the first time; ours replaces it with a superset (it
        # only counts if no fork server runs yet: then it is the one that starts)
        get_mp_context().set_forkserver_preload(
            ["distributed", *required_packages, *optional_packages, *WORKER_PRELOAD]
        )


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


def _launch_local(**kwargs):
    """A LocalCluster of worker processes, or one clear error (distributed has already
    closed whatever it started when it raises)."""
    _prefer_forkserver()
    try:
        return _LocalCluster(processes=True, silence_logs=logging.ERROR, **kwargs)
    except Exception as err:
        raise RuntimeError(f"could not start the local cluster: {err}") from err


def _check_security(security):
    if security is None or security is False:
        return None
    if security is True:
        return Security.temporary()
    if isinstance(security, Security):
        return security
    raise TypeError(
        f"security must be True, False or a distributed.security.Security, got {security!r}"
    )


async def _probe(address, timeout, security):
    args = security.get_connection_args("client") if security is not None else {}
    comm = await connect(address, timeout=timeout, **args)
    await comm.close()


def _in_fresh_loop(make_coroutine):
    """Run a coroutine to completion on a new event loop in its own thread: works whether
    or not this thread already runs a loop (a Jupyter kernel's main thread does)."""
    outcome = {}

    def run():
        try:
            asyncio.run(make_coroutine())
        except BaseException as err:  # handed back to the caller's thread
            outcome["error"] = err

    thread = threading.Thread(target=run, name="enb-probe", daemon=True)
    thread.start()
    thread.join()
    if "error" in outcome:
        raise outcome["error"]


def _connect(address, timeout, security):
    """A client for a running scheduler, or a clear error within ``timeout`` seconds."""
    try:
        # probe on a throw-away event loop first: a Client that fails to connect leaves its
        # IO-loop thread behind, a plain comm does not
        _in_fresh_loop(lambda: _probe(address, timeout, security))
        return Client(address, timeout=timeout, security=security)
    except (OSError, TimeoutError) as err:
        raise ConnectionError(
            f"could not connect to the Dask scheduler at {address!r} within {timeout:g} s "
            f"({type(err).__name__}: {err})"
        ) from err


def _weak_method(method):
    """A callable that calls ``method`` while its object lives: the policy and the lease
    book must not keep an ``ElasticCluster`` alive, or garbage collection could not close
    it."""
    ref = weakref.WeakMethod(method)

    def call(*args, **kwargs):
        bound = ref()
        if bound is not None:
            bound(*args, **kwargs)

    return call


def _shut_down(client, cluster, timeout=10):
    """Close an ``ElasticCluster`` nobody closed: it was garbage collected, or the
    interpreter is exiting. ``cluster`` is None when elastic_nb did not start it."""
    try:
        in_loop = asyncio.get_running_loop() is client.loop.asyncio_loop
    except RuntimeError:  # no loop runs in this thread
        in_loop = False
    if in_loop:  # collected inside the client's own event loop: blocking here would hang it
        client.loop.add_callback(client._close)
        if cluster is not None:
            client.loop.add_callback(cluster._close)
        return
    with contextlib.suppress(Exception):
        client.close(timeout=timeout)
    if cluster is not None:
        with contextlib.suppress(Exception):
            cluster.close(timeout=timeout)


class ElasticCluster:
    """An adaptive Dask cluster plus the client that talks to it.

    With neither ``address`` nor ``cluster`` it starts a ``LocalCluster`` of worker
    processes whose scheduler, workers and dashboard listen on 127.0.0.1 only, and makes it
    adaptive between ``minimum`` and ``maximum`` workers. Given ``cluster`` (any
    ``distributed.deploy.Cluster``) it adapts that one but never closes it; given a
    scheduler ``address`` it only connects and observes.

    Scaling decisions (``adapt``, ``scale``, and every target, scale-up and scale-down of an
    elastic_nb policy) are announced to listeners registered with :meth:`subscribe` (the
    :class:`~elastic_nb.Monitor` is one) together with their reason.

    A training run tells the policy it is in progress with a lease,
    ``with cluster.training(iterations=K) as run: ... run.step()`` (see
    :class:`~elastic_nb.policy.Lease`); the ``"training"`` policy scales for it.

    ``http_api=True`` (local clusters only) also serves the scheduler's own HTTP API
    (``distributed.http.scheduler.api``) on the dashboard's port, bound to 127.0.0.1, so the
    cluster can be inspected and shrunk from outside the notebook: see :attr:`api_url`.

    A local launch is checked before anything starts: ports in use, a ``memory_limit`` a
    worker cannot live in, or a ``maximum`` the machine cannot hold raise a clear error.
    A cluster elastic_nb started is shut down by :meth:`close`, ``with``, garbage collection
    or interpreter exit, whichever comes first; one it only wraps or connects to never is.
    ``host`` opts out of 127.0.0.1 (then use ``security=True``).
    """

    def __init__(
        self,
        minimum=1,
        maximum=None,
        threads_per_worker=1,
        memory_limit="auto",
        policy="default",
        address=None,
        cluster=None,
        *,
        security=None,
        interval="500ms",
        connect_timeout=10,
        http_api=False,
        host=LOOPBACK,
        scheduler_port=0,
        dashboard_port=0,
    ):
        minimum = check_int("minimum", minimum, minimum=0)
        maximum = check_int("maximum", maximum, minimum=1, allow_none=True)
        if maximum is None:
            maximum = max(CPU_COUNT, minimum, 1)
        if maximum < minimum:
            raise ValueError(f"maximum must be >= minimum ({minimum}), got {maximum}")
        self.threads_per_worker = check_int("threads_per_worker", threads_per_worker, minimum=1)
        self.memory_limit = _check_memory_limit(memory_limit)
        self.policy = resolve_policy(policy)
        if address is not None and cluster is not None:
            raise ValueError("pass either address or cluster, not both")
        if address is not None and not isinstance(address, str):
            raise TypeError(f"address must be a scheduler address string, got {address!r}")
        if cluster is not None and not isinstance(cluster, Cluster):
            raise TypeError(f"cluster must be a distributed.deploy.Cluster, got {cluster!r}")
        connect_timeout = check_float("connect_timeout", connect_timeout, positive=True)
        if not isinstance(http_api, bool):
            raise TypeError(f"http_api must be True or False, got {http_api!r}")
        if http_api and (address is not None or cluster is not None):
            raise ValueError(
                "http_api=True configures a cluster elastic_nb starts; for an existing scheduler "
                f"add {HTTP_API_ROUTE!r} to its distributed.scheduler.http.routes config"
            )
        check_policy_params(self.policy, {"interval": interval})
        security = _check_security(security)
        self.owns_cluster = address is None and cluster is None
        if self.owns_cluster:
            if not isinstance(host, str) or not host:
                raise TypeError(f"host must be an address like {LOOPBACK!r}, got {host!r}")
            check_local_capacity(maximum, self.threads_per_worker, self.memory_limit)
            scheduler_port = _check_port("scheduler_port", host, scheduler_port)
            dashboard_port = _check_port("dashboard_port", host, dashboard_port)

        self.minimum, self.maximum = minimum, maximum
        self.interval = interval
        self.security = security
        self.http_api = http_api
        self._listeners = []
        self.decisions = []  # (action, details) of every scaling decision, oldest first
        self._adaptive = None
        self._adapt_kwargs = {}
        self.leases = LeaseBook()
        self.leases.listeners.append(_weak_method(self._on_lease))
        self.client = None

        if address is not None:
            self.cluster = None
            self.client = _connect(address, connect_timeout, security)
            self._finalizer = weakref.finalize(self, _shut_down, self.client, None)
            return
        if cluster is None:
            routes = list(dask.config.get("distributed.scheduler.http.routes"))
            if http_api and HTTP_API_ROUTE not in routes:
                routes.append(HTTP_API_ROUTE)
            with dask.config.set({"distributed.scheduler.http.routes": routes}):
                cluster = _launch_local(
                    n_workers=minimum,
                    threads_per_worker=self.threads_per_worker,
                    memory_limit=self.memory_limit,
                    host=host,
                    scheduler_port=scheduler_port,
                    dashboard_address=f"{host}:{dashboard_port}",
                    protocol="tls://" if security else None,
                    security=security,
                )
        self.cluster = cluster
        try:
            self.client = Client(cluster, security=security)
            self._finalizer = weakref.finalize(
                self, _shut_down, self.client, cluster if self.owns_cluster else None
            )
            self.adapt(minimum, maximum)
        except BaseException:
            self.close()
            raise

    # ------------------------------------------------------------------ scaling
    @property
    def can_scale(self) -> bool:
        return self.cluster is not None

    def _require_scaling(self, what):
        if not self.can_scale:
            raise RuntimeError(
                f"cannot {what}: this ElasticCluster is connected to a scheduler address and "
                "only observes it; pass cluster=<a distributed.deploy.Cluster> to control scaling"
            )

    def adapt(self, minimum=None, maximum=None, policy=None, **kwargs):
        """Scale automatically between ``minimum`` and ``maximum`` workers with ``policy``.

        ``policy`` is a name (``"default"``, ``"training"``, ``"predictive"``) or a subclass
        of :class:`distributed.deploy.Adaptive`; ``kwargs`` go to it (``interval``,
        ``wait_count``, ``target_duration`` and the policy's own parameters, e.g.
        ``cooldown``) and are checked before the running policy is replaced.
        """
        self._require_scaling("adapt")
        minimum = self.minimum if minimum is None else check_int("minimum", minimum, minimum=0)
        maximum = self.maximum if maximum is None else check_int("maximum", maximum, minimum=1)
        if maximum < minimum:
            raise ValueError(f"maximum must be >= minimum ({minimum}), got {maximum}")
        if self.owns_cluster:
            check_local_capacity(maximum, self.threads_per_worker, self.memory_limit)
        policy_class = self.policy if policy is None else resolve_policy(policy)
        if policy is None and policy_class is getattr(self, "_adapted_policy", None):
            kwargs = {**self._adapt_kwargs, **kwargs}
        kwargs.setdefault("interval", self.interval)
        check_policy_params(policy_class, kwargs)
        extra = {}
        if issubclass(policy_class, ElasticPolicy):
            extra = {"leases": self.leases, "announce": _weak_method(self._announce)}
        self._adaptive = self.cluster.adapt(
            Adaptive=policy_class, minimum=minimum, maximum=maximum, **kwargs, **extra
        )
        self.minimum, self.maximum, self.policy = minimum, maximum, policy_class
        self._adapted_policy, self._adapt_kwargs = policy_class, dict(kwargs)
        self._announce(
            "adapt",
            minimum=minimum,
            maximum=maximum,
            policy=policy_class.__name__,
            reason=f"adaptive between {minimum} and {maximum} workers ({policy_class.__name__})",
        )
        return self._adaptive

    def training(self, iterations=None, *, slowdown=1.1, deadline=None, name=None):
        """Hold a lease on the cluster for a training run; returns the :class:`Lease`.

        ``with cluster.training(iterations=K) as run: ... run.step()`` — one ``step()`` per
        finished iteration (``run.callback`` is a model ``callback`` that does it). While a
        lease is held the ``"training"`` policy keeps the smallest width whose iterations are
        within ``slowdown`` of the maximum width's pace (or that meets ``deadline`` seconds),
        for the whole run, and does not shrink between iterations; when the last lease
        closes it releases the workers. Other policies ignore leases.
        """
        return Lease(self.leases, iterations, slowdown=slowdown, deadline=deadline, name=name)

    def _on_lease(self, lease, what):
        if what == "start":
            total = "an unknown number of" if lease.iterations is None else lease.iterations
            self._announce(
                "lease",
                lease=lease.name,
                iterations=lease.iterations,
                reason=f"training run {lease.name} started: {total} iterations",
            )
        elif what == "end":
            self._announce(
                "lease-end",
                lease=lease.name,
                iterations=lease.done,
                reason=f"training run {lease.name} ended after {lease.done} iterations",
            )

    def scale(self, n):
        """Stop adapting and run exactly ``n`` workers."""
        self._require_scaling("scale")
        n = check_int("n", n, minimum=0)
        if self.owns_cluster:
            check_local_capacity(n, self.threads_per_worker, self.memory_limit)
        if self._adaptive is not None:
            self._adaptive.stop()
            self._adaptive = None
        self.cluster.scale(n)
        self._announce("scale", target=n, reason=f"fixed at {n} workers on request")

    def resize_workers(self, threads_per_worker=None, memory_limit=None, timeout=120):
        """Vertical scaling: give every worker new ``threads_per_worker`` / ``memory_limit``.

        Rolls the workers of a local cluster: starts as many new workers with the new
        resources as are running, waits for them, then retires the old ones gracefully (their
        data moves to the new workers), and resumes adapting if it was. Blocks until done.
        """
        if not self.owns_cluster:
            raise RuntimeError("resize_workers needs a local cluster started by elastic_nb")
        threads = (
            self.threads_per_worker
            if threads_per_worker is None
            else check_int("threads_per_worker", threads_per_worker, minimum=1)
        )
        memory = self.memory_limit if memory_limit is None else _check_memory_limit(memory_limit)
        check_local_capacity(self.maximum, threads, memory)
        adaptive = self._adaptive is not None
        if adaptive:
            self._adaptive.stop()
            self._adaptive = None
        old = list(self.cluster.worker_spec)
        options = self.cluster.new_spec["options"]
        options["nthreads"], options["memory_limit"] = threads, memory
        self.threads_per_worker, self.memory_limit = threads, memory
        n = max(len(old), 1 if adaptive else 0)
        self.cluster.scale(len(old) + n)
        self.client.wait_for_workers(len(old) + n, timeout=timeout)
        if old:
            self.client.retire_workers(names=old, close_workers=True)
            self.cluster.sync(self.cluster.scale_down, old)
        self._announce(
            "resize",
            threads_per_worker=threads,
            memory_limit=memory,
            target=n,
            reason=f"rolled {len(old)} worker(s) to {threads} thread(s), memory {memory}",
        )
        if adaptive:
            self.adapt()
        else:
            self.client.wait_for_workers(n, timeout=timeout)

    def wait_for_workers(self, n, timeout=60):
        """Block until at least ``n`` workers are connected."""
        self.client.wait_for_workers(check_int("n", n, minimum=0), timeout=timeout)

    def wait_for_width(self, n, timeout=60):
        """Block until exactly ``n`` workers are connected: after a scale-down, until the
        retired ones are gone (:meth:`wait_for_workers` waits for at least ``n``)."""
        n = check_int("n", n, minimum=0)
        deadline = time.monotonic() + check_float("timeout", timeout, positive=True)
        while self.width != n:
            if time.monotonic() > deadline:
                raise TimeoutError(
                    f"the cluster did not reach {n} workers within {timeout:g} s "
                    f"(it runs {self.width})"
                )
            time.sleep(0.1)

    @property
    def width(self) -> int:
        """Workers connected to the scheduler now."""
        return len(self.client.scheduler_info(n_workers=-1)["workers"])

    @property
    def adaptive(self):
        """The running ``Adaptive`` instance, or None when the cluster is fixed."""
        return self._adaptive

    # ---------------------------------------------------------------- observing
    def subscribe(self, listener):
        """Call ``listener(action, **details)`` on every scaling decision, past ones first."""
        for action, details in list(self.decisions):
            listener(action, **details)
        self._listeners.append(listener)

    def _announce(self, action, **details):
        self.decisions.append((action, details))
        for listener in list(self._listeners):
            listener(action, **details)

    @property
    def requested_workers(self) -> int | None:
        """How many workers the cluster manager has been asked for (None if unknown)."""
        if self.cluster is None:
            return None
        return len(getattr(self.cluster, "requested", ()) or ())

    @property
    def scheduler_address(self) -> str:
        return self.client.scheduler.address

    @property
    def dashboard_link(self) -> str:
        """Dashboard URL; behind JupyterHub/Binder, the jupyter-server-proxy path."""
        link = self.client.dashboard_link
        prefix = os.environ.get("JUPYTERHUB_SERVICE_PREFIX")
        if prefix and link:
            port = urlparse(link).port
            return f"{prefix.rstrip('/')}/proxy/{port}/status"
        return link

    @property
    def api_url(self) -> str | None:
        """Base URL of the scheduler's HTTP API (``http_api=True``), else None.

        Routes (distributed's own): ``GET {api_url}/get_workers``, ``GET
        {api_url}/adaptive_target``, ``GET {api_url}/check_idle`` and ``POST
        {api_url}/retire_workers`` with ``{"n": k}`` or ``{"workers": [addresses]}``.
        """
        if not self.http_api or self.closed:
            return None
        link = urlparse(self.client.dashboard_link)
        return f"{link.scheme}://{link.netloc}/api/v1"

    # ------------------------------------------------------------------ closing
    @property
    def closed(self) -> bool:
        return self.client is None or self.client.status == "closed"

    def close(self, timeout=30):
        """Close the client, and the cluster too if this object started it, within
        ``timeout`` seconds in all (at least 1 s is left for the cluster)."""
        deadline = time.monotonic() + timeout
        finalizer = getattr(self, "_finalizer", None)
        if finalizer is not None:
            finalizer.detach()
        if self._adaptive is not None:
            self._adaptive.stop()
            self._adaptive = None
        client = getattr(self, "client", None)
        # A LocalCluster quiets distributed's log handlers for its lifetime and restores
        # them midway through its close: its goodbye lines ("Connection to ... has been
        # closed.") would then reach stderr, i.e. the notebook. Quiet until fully closed.
        with silence_logging_cmgr(logging.ERROR):
            if client is not None:
                client.close(timeout=timeout)
            if self.owns_cluster and getattr(self, "cluster", None) is not None:
                self.cluster.close(timeout=max(1.0, deadline - time.monotonic()))
                self._announce("close", target=0, reason="cluster closed")

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()

    def __repr__(self):
        if self.closed:
            return "<ElasticCluster: closed>"
        return (
            f"<ElasticCluster {self.scheduler_address} "
            f"minimum={self.minimum} maximum={self.maximum} policy={self.policy.__name__}>"
        )
