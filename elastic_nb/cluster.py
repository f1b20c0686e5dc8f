"""Start, wrap or connect to a Dask cluster and make it elastic.

elastic_nb never writes its own cluster manager: a local run is a
:class:`distributed.LocalCluster` with worker processes; anything else is a
``distributed.deploy.Cluster`` the user built (dask-kubernetes, dask-jobqueue,
dask-gateway, ...) or the address of a running scheduler.
"""

from __future__ import annotations

import logging
import os
import time
from urllib.parse import urlparse

from dask.system import CPU_COUNT
from dask.utils import parse_bytes
from distributed import Client, LocalCluster
from distributed.deploy import Cluster
from distributed.security import Security

from ._validation import check_float, check_int
from .policy import resolve_policy

LOOPBACK = "127.0.0.1"


def _check_memory_limit(value):
    if value == "auto" or value is None:
        return value
    if isinstance(value, str):
        try:
            nbytes = parse_bytes(value)
        except ValueError as err:
            raise ValueError(
                f"memory_limit must be 'auto', a byte count or a size like '2GiB', got {value!r}"
            ) from err
    elif isinstance(value, (int, float)) and not isinstance(value, bool):
        nbytes = value
    else:
        raise TypeError(f"memory_limit must be 'auto', bytes or a size string, got {value!r}")
    if nbytes <= 0:
        raise ValueError(f"memory_limit must be > 0, got {value!r}")
    return value


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


class ElasticCluster:
    """An adaptive Dask cluster plus the client that talks to it.

    With neither ``address`` nor ``cluster`` it starts a ``LocalCluster`` of worker
    processes whose scheduler, workers and dashboard listen on 127.0.0.1 only, and makes it
    adaptive between ``minimum`` and ``maximum`` workers. Given ``cluster`` (any
    ``distributed.deploy.Cluster``) it adapts that one but never closes it; given a
    scheduler ``address`` it only connects and observes.

    Scaling decisions (``adapt``, ``scale``) are announced to listeners registered with
    :meth:`subscribe` (the :class:`~elastic_nb.Monitor` is one) together with their reason.
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
        security = _check_security(security)

        self.minimum, self.maximum = minimum, maximum
        self.interval = interval
        self.security = security
        self._listeners = []
        self.decisions = []  # (action, details) of every scaling decision, oldest first
        self._adaptive = None
        self.owns_cluster = address is None and cluster is None

        if address is not None:
            self.cluster = None
            self.client = Client(address, timeout=connect_timeout, security=security)
            return
        if cluster is None:
            cluster = LocalCluster(
                n_workers=minimum,
                threads_per_worker=self.threads_per_worker,
                memory_limit=self.memory_limit,
                processes=True,
                host=LOOPBACK,
                dashboard_address=f"{LOOPBACK}:0",
                protocol="tls://" if security else None,
                security=security,
                silence_logs=logging.ERROR,
            )
        self.cluster = cluster
        try:
            self.client = Client(cluster, security=security)
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
        """Scale automatically between ``minimum`` and ``maximum`` workers with ``policy``."""
        self._require_scaling("adapt")
        minimum = self.minimum if minimum is None else check_int("minimum", minimum, minimum=0)
        maximum = self.maximum if maximum is None else check_int("maximum", maximum, minimum=1)
        if maximum < minimum:
            raise ValueError(f"maximum must be >= minimum ({minimum}), got {maximum}")
        policy_class = self.policy if policy is None else resolve_policy(policy)
        kwargs.setdefault("interval", self.interval)
        self._adaptive = self.cluster.adapt(
            Adaptive=policy_class, minimum=minimum, maximum=maximum, **kwargs
        )
        self.minimum, self.maximum, self.policy = minimum, maximum, policy_class
        self._announce(
            "adapt",
            minimum=minimum,
            maximum=maximum,
            policy=policy_class.__name__,
            reason=f"adaptive between {minimum} and {maximum} workers ({policy_class.__name__})",
        )
        return self._adaptive

    def scale(self, n):
        """Stop adapting and run exactly ``n`` workers."""
        self._require_scaling("scale")
        n = check_int("n", n, minimum=0)
        if self._adaptive is not None:
            self._adaptive.stop()
            self._adaptive = None
        self.cluster.scale(n)
        self._announce("scale", target=n, reason=f"fixed at {n} workers on request")

    def wait_for_workers(self, n, timeout=60):
        """Block until at least ``n`` workers are connected."""
        self.client.wait_for_workers(check_int("n", n, minimum=0), timeout=timeout)

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

    # ------------------------------------------------------------------ closing
    @property
    def closed(self) -> bool:
        return self.client is None or self.client.status == "closed"

    def close(self, timeout=30):
        """Close the client, and the cluster too if this object started it."""
        if self._adaptive is not None:
            self._adaptive.stop()
            self._adaptive = None
        client = getattr(self, "client", None)
        if client is not None:
            client.close(timeout=timeout)
        if self.owns_cluster and getattr(self, "cluster", None) is not None:
            deadline = time.monotonic() + timeout
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
