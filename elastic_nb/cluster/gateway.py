"""dask-gateway clusters, scaled by elastic_nb's policies from the client side.

dask-gateway's ``GatewayCluster`` is not a ``distributed.deploy.Cluster``: distributed's
``Adaptive`` (and so every elastic_nb policy) cannot attach to it, and its own ``adapt()``
runs inside the scheduler, where no training lease can reach it — it would shrink the
cluster between two iterations exactly as dask-jobqueue#701 describes. So
:class:`GatewayAdapter` presents a gateway cluster as a ``Cluster``: the policy runs here,
next to the leases, and only ``scale(n)`` crosses to the gateway. Retiring goes through the
scheduler's ``retire_workers`` first (as with any ``Adaptive``), then the gateway is told the
new count, before its scheduler reports the missing workers as failures (it waits 3 s).
Hand-written because no library adapts one to the other.
"""

from __future__ import annotations

import contextlib
import logging

from distributed import Client
from distributed.core import rpc
from distributed.deploy import Cluster
from distributed.utils import silence_logging_cmgr

from .backends import Backend

logger = logging.getLogger(__name__)

INSTALL_HINT = 'pip install "elastic-nb[gateway]"'
#: Seconds a gateway worker is assumed to take to start (a process or a pod behind it).
GATEWAY_STARTUP = 3.0


def import_gateway():
    """The ``dask_gateway`` module; ImportError with the install hint."""
    try:
        import dask_gateway
    except ImportError as err:
        raise ImportError(f"dask-gateway clusters need dask-gateway: {INSTALL_HINT}") from err
    return dask_gateway


def is_gateway_cluster(obj) -> bool:
    """Whether ``obj`` is a ``dask_gateway.GatewayCluster`` (without importing it)."""
    return any(
        c.__module__.startswith("dask_gateway") and c.__name__ == "GatewayCluster"
        for c in type(obj).__mro__
    )


class GatewayAdapter(Cluster):
    """A ``GatewayCluster`` seen as a ``distributed.deploy.Cluster``.

    Parameters
    ----------
    gateway_cluster : dask_gateway.GatewayCluster
        A running gateway cluster; its owner closes (or shuts) it down.

    State
    -----
    gateway_cluster : GatewayCluster
        Where ``scale`` goes.
    count : int
        Workers asked of the gateway (its ``scale`` count), as this side last set it.
    scheduler_comm : distributed.core.rpc
        To the scheduler through the gateway's proxy, with the cluster's TLS credentials.

    log_quieting : contextlib.ExitStack
        distributed's log handlers at ERROR while the adapter lives, as a ``SpecCluster``
        with ``silence_logs`` has them (``Adaptive`` logs every start, stop and retirement
        at INFO, which would land in the notebook; the decisions say the same).

    ``requested`` and ``plan`` are the connected workers plus a placeholder name for each
    one asked for and not connected yet, so that distributed's ``recommendations`` can
    cancel workers that never arrived before it retires running ones.
    """

    def __init__(self, gateway_cluster):
        self.log_quieting = contextlib.ExitStack()
        self.log_quieting.enter_context(silence_logging_cmgr(logging.ERROR))
        super().__init__(asynchronous=False, loop=gateway_cluster.loop, name=gateway_cluster.name)
        self.gateway_cluster = gateway_cluster
        self.count = len(gateway_cluster.scheduler_info.get("workers", {}))
        self.scheduler_comm = rpc(
            gateway_cluster.scheduler_address,
            connection_args=gateway_cluster.security.get_connection_args("client"),
        )
        self.sync(self._start)

    async def _close(self):
        try:
            await super()._close()
        finally:
            self.log_quieting.close()

    @property
    def security(self):
        return self.gateway_cluster.security

    @property
    def dashboard_link(self):
        return self.gateway_cluster.dashboard_link

    @property
    def requested(self):
        observed = self.observed
        missing = max(0, self.count - len(observed))
        return observed | {f"pending-{i}" for i in range(missing)}

    @property
    def plan(self):
        return self.requested

    def scale(self, n):
        """Ask the gateway for ``n`` workers (it starts or stops them itself)."""
        self.count = int(n)
        self.loop.add_callback(self._send_count)

    def scale_down(self, workers):
        """Workers ``workers`` were retired (or never arrived): lower the gateway's count."""
        self.count = max(0, self.count - len(set(workers)))  # each one was counted
        self.loop.add_callback(self._send_count)

    async def _send_count(self):
        gateway = self.gateway_cluster.gateway
        try:
            await gateway._scale_cluster(self.gateway_cluster.name, self.count)
        except Exception:
            logger.exception("asking dask-gateway for %d worker(s) failed", self.count)

    async def pending_reason(self, names):
        """The gateway's side of the workers not connected yet."""
        return (
            f"{len(names)} worker(s) asked of dask-gateway cluster "
            f"{self.gateway_cluster.name}, starting"
        )


class GatewayBackend(Backend):
    """A dask-gateway cluster: started by elastic_nb (and shut down with it), or the user's.

    Parameters
    ----------
    address, proxy_address : str or None
        The gateway's API and scheduler proxy (None: dask-gateway's configuration).
    auth : str, dask_gateway.auth.GatewayAuth or None
        How to authenticate (None: dask-gateway's configuration).
    cluster_options : dict or None
        Set on ``gateway.cluster_options()`` (worker cores, memory, image, ...).
    cluster : dask_gateway.GatewayCluster or None
        A gateway cluster the user made: adapted, never shut down, by elastic_nb.

    State
    -----
    gateway_cluster : GatewayCluster or None
        Set by :meth:`open` (or given).
    manager : GatewayAdapter or None
        What policies attach to; set by :meth:`open`.
    owns : bool
        True when elastic_nb made the gateway cluster: closing shuts it down.
    """

    startup_estimate = GATEWAY_STARTUP

    def __init__(self, address=None, *, proxy_address=None, auth=None, cluster_options=None,
                 cluster=None):  # fmt: skip
        import_gateway()
        for name, value in (("address", address), ("proxy_address", proxy_address)):
            if value is not None and not isinstance(value, str):
                raise TypeError(f"{name} must be a URL string or None, got {value!r}")
        if cluster_options is not None and not isinstance(cluster_options, dict):
            raise TypeError(f"cluster_options must be a dict, got {cluster_options!r}")
        super().__init__(None)
        self.gateway_args = {"address": address, "proxy_address": proxy_address, "auth": auth}
        self.cluster_options = dict(cluster_options or {})
        self.gateway_cluster, self.owns = cluster, cluster is None

    def open(self, n_workers) -> Client:
        if self.gateway_cluster is None:
            self.gateway_cluster = self._new_cluster()
        self.security = self.gateway_cluster.security
        self.manager = GatewayAdapter(self.gateway_cluster)
        self.client = Client(self.manager, security=self.security)
        return self.client

    def _new_cluster(self):
        """A new gateway cluster with the options, or a clear error naming the gateway.

        The options go to the gateway as keyword overrides, which it checks itself (a
        separate ``Gateway`` to read ``cluster_options()`` first would be closed twice by
        dask-gateway 2026.3, once more in its ``__del__``, which then raises)."""
        dask_gateway = import_gateway()
        address = self.gateway_args["address"] or "the configured gateway"
        try:
            return dask_gateway.GatewayCluster(
                **self.gateway_args, shutdown_on_close=True, **self.cluster_options
            )
        except OSError as err:
            raise ConnectionError(f"no dask-gateway answers at {address!r}: {err}") from err
        except (ValueError, TypeError) as err:
            raise ValueError(f"dask-gateway at {address!r} refused the cluster: {err}") from err

    async def pending_reason(self, names):
        return await self.manager.pending_reason(names)

    def close(self, timeout=30):
        """Close the client and the adapter; shut the gateway cluster down if ours (the
        user's own is left exactly as it was: running, and open)."""
        super().close(timeout)
        if self.manager is not None:
            self.manager.close(timeout=timeout)
        if self.owns and self.gateway_cluster is not None:
            self.gateway_cluster.shutdown()
            quiet_gateway(self.gateway_cluster.gateway)


def quiet_gateway(gateway):
    """Make a closed ``dask_gateway.Gateway`` forget its loop runner.

    dask-gateway 2026.3's ``Gateway.__del__`` closes it a second time, which raises (its
    loop has stopped) and prints "Exception ignored in ..." with a traceback into the
    notebook; ``__del__`` does nothing for a gateway without a loop runner."""
    if hasattr(gateway, "_loop_runner"):
        del gateway._loop_runner
