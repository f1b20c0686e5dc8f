"""The ways to build an ElasticCluster: one constructor per mode, and the all-in-one form.

``ElasticCluster.local(...)``, ``ElasticCluster.wrap(manager, ...)`` and
``ElasticCluster.connect(address, ...)`` each check their arguments, build the one backend
of their mode (:mod:`.backends`, :mod:`.local`) — nothing runs yet — and hand it to the
core (:meth:`ElasticCluster._open <elastic_nb.cluster.core.ElasticCluster._open>`).
``ElasticCluster(...)`` picks the mode from ``address=`` / ``cluster=`` the same way.
"""

from __future__ import annotations

from typing import NamedTuple

from dask.system import CPU_COUNT

from .._validation import check_float, check_int
from ..policies import check_policy_params, resolve_policy
from .backends import AddressBackend, Backend, ManagerBackend
from .gateway import GatewayBackend, is_gateway_cluster
from .jobqueue import JobqueueBackend, check_job_options
from .kubernetes import KubernetesBackend
from .local import HTTP_API_ROUTE, LOOPBACK, LocalBackend


class Scaling(NamedTuple):
    """Checked bounds and policy an ElasticCluster starts adapting with."""

    minimum: int
    maximum: int
    policy: type
    interval: object


def check_scaling(minimum, maximum, policy, interval) -> Scaling:
    """Check the scaling arguments of every constructor, before anything starts."""
    minimum = check_int("minimum", minimum, minimum=0)
    maximum = check_int("maximum", maximum, minimum=1, allow_none=True)
    if maximum is None:
        maximum = max(CPU_COUNT, minimum, 1)
    if maximum < minimum:
        raise ValueError(f"maximum must be >= minimum ({minimum}), got {maximum}")
    policy = resolve_policy(policy)
    check_policy_params(policy, {"interval": interval})
    return Scaling(minimum, maximum, policy, interval)


#: ElasticCluster(...) arguments that configure a cluster elastic_nb starts, and their
#: defaults: given with ``address=`` or ``cluster=`` they would be silently ignored.
_LOCAL_ONLY = {
    "threads_per_worker": 1,
    "memory_limit": "auto",
    "host": LOOPBACK,
    "scheduler_port": 0,
    "dashboard_port": 0,
    "start_method": "auto",
}


def backend_for(address, cluster, security, connect_timeout, http_api, local) -> Backend:
    """The backend ``ElasticCluster(...)`` means: address → connect, cluster → wrap,
    neither → local."""
    if address is not None and cluster is not None:
        raise ValueError("pass either address or cluster, not both")
    if address is None and cluster is None:
        return LocalBackend(security=security, http_api=http_api, **local)
    if http_api is True:
        raise ValueError(
            "http_api=True configures a cluster elastic_nb starts; for an existing scheduler "
            f"add {HTTP_API_ROUTE!r} to its distributed.scheduler.http.routes config"
        )
    given = [k for k, default in _LOCAL_ONLY.items() if local[k] != default]
    if given:
        raise ValueError(
            f"{given[0]} configures a cluster elastic_nb starts; it does not apply with "
            f"{'address' if address is not None else 'cluster'}="
        )
    if address is not None:
        return AddressBackend(address, connect_timeout, security)
    return manager_backend(cluster, security)


def manager_backend(cluster, security) -> Backend:
    """The backend of a manager the user built: a gateway cluster goes through its adapter
    (:mod:`.gateway`), any ``distributed.deploy.Cluster`` is adapted as it is."""
    if is_gateway_cluster(cluster):
        return GatewayBackend(cluster=cluster)
    return ManagerBackend(cluster, security)


class Constructors:
    """The constructors of :class:`~elastic_nb.ElasticCluster` (a mixin: the class itself
    is in :mod:`.core`). They keep no state of their own."""

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
        start_method="auto",
    ):
        """The all-in-one form: ``address=`` is :meth:`connect`, ``cluster=`` is
        :meth:`wrap`, neither is :meth:`local`; the other arguments are theirs.

        Raises
        ------
        ValueError
            For both ``address`` and ``cluster``, or an argument of a local cluster
            (``threads_per_worker``, ``memory_limit``, ``http_api``, ``host``, the ports,
            ``start_method``) given with either — it would not apply — and for any
            argument out of range.
        TypeError
            For an argument of the wrong type.
        """
        scaling = check_scaling(minimum, maximum, policy, interval)
        local = {
            "threads_per_worker": threads_per_worker,
            "memory_limit": memory_limit,
            "host": host,
            "scheduler_port": scheduler_port,
            "dashboard_port": dashboard_port,
            "start_method": start_method,
        }
        backend = backend_for(address, cluster, security, connect_timeout, http_api, local)
        self._open(backend, scaling)

    # ------------------------------------------------------------- constructors
    @classmethod
    def local(
        cls,
        minimum=1,
        maximum=None,
        *,
        threads_per_worker=1,
        memory_limit="auto",
        policy="default",
        interval="500ms",
        security=None,
        http_api=False,
        host=LOOPBACK,
        scheduler_port=0,
        dashboard_port=0,
        start_method="auto",
    ) -> Constructors:
        """Start an adaptive local cluster of worker processes, owned by the result.

        Parameters
        ----------
        minimum, maximum : int
            Bounds of the adaptive width (``maximum`` defaults to the CPU count).
        threads_per_worker : int
            Threads of each worker.
        memory_limit : "auto", int or str
            Memory of each worker, e.g. ``"1GiB"``.
        policy : str or type
            ``"default"``, ``"training"``, ``"predictive"`` or an ``Adaptive`` subclass.
        interval : str or float
            The policy's adapt interval.
        security : None, bool or Security
            ``True``: TLS with a temporary certificate.
        http_api : bool
            Serve the scheduler's HTTP API on the dashboard's port.
        host : str
            Where everything listens (127.0.0.1).
        scheduler_port, dashboard_port : int
            0 picks free ports.
        start_method : "auto", None or a start method
            How worker processes start; ``"auto"`` forks them from distributed's fork server
            (fast elastic starts) without changing dask's config for anyone else, unless the
            user configured ``distributed.worker.multiprocessing-method``; None leaves it to
            dask's config.
        """
        scaling = check_scaling(minimum, maximum, policy, interval)
        backend = LocalBackend(
            threads_per_worker,
            memory_limit,
            security=security,
            http_api=http_api,
            host=host,
            scheduler_port=scheduler_port,
            dashboard_port=dashboard_port,
            start_method=start_method,
        )
        return cls._from(backend, scaling)

    @classmethod
    def wrap(
        cls,
        cluster_manager,
        minimum=1,
        maximum=None,
        *,
        policy="default",
        interval="500ms",
        security=None,
    ) -> Constructors:
        """Adapt a cluster manager the user built; closing the result never closes it.

        Parameters
        ----------
        cluster_manager : distributed.deploy.Cluster
            ``LocalCluster``, ``KubeCluster``, ``SLURMCluster``, ``GatewayCluster``, ...
        minimum, maximum, policy, interval
            As in :meth:`local`.
        security : None or Security
            TLS settings of the client.
        """
        scaling = check_scaling(minimum, maximum, policy, interval)
        return cls._from(manager_backend(cluster_manager, security), scaling)

    @classmethod
    def jobqueue(
        cls,
        kind="slurm",
        minimum=0,
        maximum=4,
        *,
        cores=1,
        memory="2GiB",
        queue=None,
        walltime="01:00:00",
        account=None,
        policy="training",
        interval="1s",
        security=None,
        host=LOOPBACK,
        **job_kwargs,
    ) -> Constructors:
        """Start a batch-queue cluster (one worker per job) through dask-jobqueue, owned by
        the result: closing it cancels every job.

        Parameters
        ----------
        kind : {"slurm", "pbs", "sge"}
            The batch system (``SLURMCluster``, ``PBSCluster``, ``SGECluster``).
        minimum, maximum : int
            Bounds of the adaptive width, in jobs.
        cores, memory, queue, walltime, account
            Each job's cores (its worker's threads), memory, partition or queue, time limit
            (``"HH:MM:SS"``) and account, as ``sbatch`` / ``qsub`` take them.
        policy, interval
            As in :meth:`local`; ``"training"`` keeps a run's jobs for the whole run.
        security : None, bool or Security
            TLS for the scheduler, the workers and the client.
        host : str
            Where the scheduler listens: 127.0.0.1 unless given. Workers on other nodes
            need the login node's address (and ``interface=``, ``security=True``).
        **job_kwargs
            Passed to the dask-jobqueue class (``job_extra_directives``, ``interface``,
            ``log_directory``, ...).

        Raises
        ------
        ImportError
            Without dask-jobqueue, with the install hint ``pip install "elastic-nb[hpc]"``.
        """
        scaling = check_scaling(minimum, maximum, policy, interval)
        job = check_job_options(kind, cores, memory, queue, walltime, account)
        backend = JobqueueBackend(
            kind, job, host=host, security=security, manager_kwargs=job_kwargs
        )
        return cls._from(backend, scaling)

    @classmethod
    def gateway(
        cls,
        address=None,
        minimum=0,
        maximum=4,
        *,
        proxy_address=None,
        auth=None,
        cluster_options=None,
        policy="training",
        interval="1s",
    ) -> Constructors:
        """Start a cluster on a dask-gateway server, owned by the result: closing it shuts
        the gateway cluster down. The policy runs here, in the notebook, and drives the
        gateway's ``scale`` (see :mod:`elastic_nb.cluster.gateway` for why).

        Parameters
        ----------
        address, proxy_address : str, optional
            The gateway's URL and its scheduler proxy; omitted, dask-gateway's
            configuration (``gateway.address``).
        auth : str or dask_gateway.auth.GatewayAuth, optional
            ``"basic"``, ``"kerberos"``, ``"jupyterhub"`` or an auth object.
        cluster_options : dict, optional
            The gateway's cluster options (e.g. ``{"worker_cores": 2}``): those it does not
            offer raise ValueError naming them.
        minimum, maximum, policy, interval
            As in :meth:`jobqueue`.

        Raises
        ------
        ImportError
            Without dask-gateway, with ``pip install "elastic-nb[gateway]"``.
        ConnectionError
            If no gateway answers at ``address``.
        """
        scaling = check_scaling(minimum, maximum, policy, interval)
        backend = GatewayBackend(
            address, proxy_address=proxy_address, auth=auth, cluster_options=cluster_options
        )
        return cls._from(backend, scaling)

    @classmethod
    def kubernetes(
        cls, manifest, minimum=0, maximum=4, *, policy="training", interval="1s", timeout=10
    ) -> Constructors:
        """Deploy ``manifest`` (a DaskCluster) with the Dask Kubernetes operator, owned by
        the result: closing it deletes the cluster.

        Parameters
        ----------
        manifest : dict
            From :func:`elastic_nb.cluster.kubernetes.kubernetes_spec` (image, namespace,
            requests and limits); validated offline first, as ``kubectl apply`` would see
            it (``to_yaml`` shows it).
        minimum, maximum, policy, interval
            As in :meth:`jobqueue`; the worker range is elastic_nb's, not the operator's
            autoscaler's.
        timeout : float
            Seconds to wait for the API server before a ConnectionError.
        """
        scaling = check_scaling(minimum, maximum, policy, interval)
        return cls._from(KubernetesBackend(manifest, timeout), scaling)

    @classmethod
    def connect(cls, address, *, timeout=10, security=None) -> Constructors:
        """Connect to the scheduler at ``address`` to observe it (no scaling, never closed).

        Parameters
        ----------
        address : str
            E.g. ``"tcp://10.0.0.5:8786"``.
        timeout : float
            Seconds before a ConnectionError naming the address.
        security : None or Security
            TLS settings of the client.
        """
        scaling = check_scaling(1, None, "default", "500ms")
        timeout = check_float("timeout", timeout, positive=True)
        return cls._from(AddressBackend(address, timeout, security), scaling)

    @classmethod
    def _from(cls, backend, scaling):
        self = cls.__new__(cls)
        self._open(backend, scaling)
        return self
