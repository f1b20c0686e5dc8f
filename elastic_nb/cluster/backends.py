"""How an :class:`~elastic_nb.ElasticCluster` reaches its cluster: one small class per mode.

- :class:`~elastic_nb.cluster.local.LocalBackend` starts a ``LocalCluster`` and owns it;
- :class:`ManagerBackend` wraps a cluster manager the user built (dask-kubernetes,
  dask-jobqueue, dask-gateway, ...) and scales it, but never closes it;
- :class:`AddressBackend` connects to a running scheduler and only observes it.

A backend is built from checked arguments (nothing runs yet), then opened once; the
``ElasticCluster`` holds the policy, the leases and the decisions, the same in every mode.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time

from distributed import Client
from distributed.deploy import Cluster
from distributed.utils import silence_logging_cmgr

from .._validation import check_float
from .connect import check_security, connect


class Backend:
    """The part of an ElasticCluster that differs between modes.

    Parameters
    ----------
    security : None, bool or distributed.security.Security
        TLS settings of the client (see :func:`~elastic_nb.cluster.connect.check_security`).

    State
    -----
    manager : distributed.deploy.Cluster or None
        Where scaling goes; None when the backend only observes a scheduler.
    client : distributed.Client or None
        Set by :meth:`open`.
    security : distributed.security.Security or None
        What the client connects with.
    owns : bool
        (class attribute) Whether :meth:`close` and garbage collection shut the manager
        down too.
    threads_per_worker, memory_limit : int, str or None
        The resources of new workers, where the backend sets them (None: the manager's).
    http_api : bool
        Whether the scheduler serves its HTTP API through elastic_nb's doing.
    startup_estimate : float
        (class attribute) Seconds a new worker is assumed to take to start, until the
        policy measures one: a forked process, a batch job and a pod differ by 100x.
    pending_reason : coroutine function or None
        (class attribute or method) ``await pending_reason(names)``: why the requested
        workers ``names`` have not connected yet, in the backend's words; None when the
        backend has nothing to add.
    """

    owns = False
    http_api = False
    threads_per_worker = memory_limit = None
    startup_estimate = 3.0
    pending_reason = None

    def __init__(self, security=None):
        self.security = check_security(security)
        self.manager = None
        self.client = None

    def check_width(self, n):
        """Raise ValueError if this backend cannot run ``n`` workers (default: it can)."""

    def open(self, n_workers) -> Client:
        """Start or reach the cluster (with ``n_workers`` to begin with, where it starts one)
        and return a client for it; called once."""
        raise NotImplementedError

    def check_resources(self, threads_per_worker, memory_limit, maximum):
        """The checked (threads, memory) of workers to roll to (None: keep the current
        value), for ``maximum`` workers; a local cluster only."""
        raise RuntimeError("resize_workers needs a local cluster started by elastic_nb")

    def roll_workers(self, threads_per_worker, memory_limit, at_least, timeout):
        """Replace every worker by one with new resources (a local cluster only)."""
        raise RuntimeError("resize_workers needs a local cluster started by elastic_nb")

    def close(self, timeout=30):
        """Close the client, and the manager if this backend owns it, within ``timeout``
        seconds in all (at least 1 s is left for the manager)."""
        deadline = time.monotonic() + timeout
        # A LocalCluster quiets distributed's log handlers for its lifetime and restores
        # them midway through its close: its goodbye lines ("Connection to ... has been
        # closed.") would then reach stderr, i.e. the notebook. Quiet until fully closed.
        # A client that lost its scheduler logs the cancelled reconnect at ERROR as it
        # closes: expected then, and not for the notebook either.
        lost = self.client is not None and self.client.status not in ("running", "closed")
        with silence_logging_cmgr(logging.CRITICAL if lost else logging.ERROR):
            if self.client is not None:
                self.client.close(timeout=timeout)
            if self.owns and self.manager is not None:
                self.manager.close(timeout=max(1.0, deadline - time.monotonic()))

    def abandon(self, timeout=10):
        """Close what :meth:`close` would, for an ElasticCluster nobody closed: it was
        garbage collected, or the interpreter is exiting. Never blocks the client's own
        event loop (the last reference may drop there): the closing is scheduled on it."""
        client, manager = self.client, self.manager if self.owns else None
        if client is None:
            return
        try:
            in_loop = asyncio.get_running_loop() is client.loop.asyncio_loop
        except RuntimeError:  # no loop runs in this thread
            in_loop = False
        if in_loop:
            client.loop.add_callback(client._close)
            if manager is not None:
                client.loop.add_callback(manager._close)
            return
        with contextlib.suppress(Exception):
            client.close(timeout=timeout)
        if manager is not None:
            with contextlib.suppress(Exception):
                manager.close(timeout=timeout)


class ManagerBackend(Backend):
    """A cluster manager the user built: scaled by elastic_nb, closed by its owner.

    Parameters
    ----------
    manager : distributed.deploy.Cluster
        Any cluster manager (``LocalCluster``, ``KubeCluster``, ``SLURMCluster``,
        ``GatewayCluster``, ...).
    security : None, bool or Security
        TLS settings of the client (the manager's own, usually).

    State
    -----
    manager : distributed.deploy.Cluster
        The user's manager: ``adapt`` and ``scale`` go to it; its owner closes it.
    """

    def __init__(self, manager, security=None):
        if not isinstance(manager, Cluster):
            raise TypeError(f"cluster must be a distributed.deploy.Cluster, got {manager!r}")
        super().__init__(security)
        self.manager = manager

    def open(self, n_workers) -> Client:
        self.client = Client(self.manager, security=self.security)
        return self.client


class AddressBackend(Backend):
    """A running scheduler reached by its address: observed, never scaled or closed.

    Parameters
    ----------
    address : str
        The scheduler's address, e.g. ``"tcp://10.0.0.5:8786"``.
    timeout : float
        Seconds to wait for it before a ConnectionError.
    security : None, bool or Security
        TLS settings of the client.

    State
    -----
    address : str, timeout : float
        Where the scheduler is, and how long :meth:`open` waits for it.
    manager : None
        Always: there is nothing to scale, so the ElasticCluster refuses to.
    """

    def __init__(self, address, timeout=10, security=None):
        if not isinstance(address, str):
            raise TypeError(f"address must be a scheduler address string, got {address!r}")
        self.address = address
        self.timeout = check_float("connect_timeout", timeout, positive=True)
        super().__init__(security)

    def open(self, n_workers) -> Client:
        self.client = connect(self.address, self.timeout, self.security)
        return self.client
