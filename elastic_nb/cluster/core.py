"""ElasticCluster: an adaptive Dask cluster, its client, its policy, leases and decisions.

elastic_nb never writes its own cluster manager: a local run is a
:class:`distributed.LocalCluster` with worker processes; anything else is a
``distributed.deploy.Cluster`` the user built (dask-kubernetes, dask-jobqueue,
dask-gateway, ...) or the address of a running scheduler. What differs between those three
is a :class:`~elastic_nb.cluster.backends.Backend`, built by the constructors in
:mod:`.modes`; everything here is the same for all.
"""

from __future__ import annotations

import time
import weakref

from .._validation import check_float, check_int
from ..policies import ElasticPolicy, Lease, LeaseBook, check_policy_params, resolve_policy
from .backends import Backend
from .decisions import DecisionLog
from .endpoints import Endpoints
from .modes import Constructors, Scaling


class ElasticCluster(Constructors, Endpoints):
    """An adaptive Dask cluster plus the client that talks to it.

    Three modes, one backend each (:mod:`elastic_nb.cluster.backends`):

    - :meth:`local` starts a ``LocalCluster`` of worker processes whose scheduler, workers
      and dashboard listen on 127.0.0.1 only, makes it adaptive between ``minimum`` and
      ``maximum`` workers, and shuts it down on :meth:`close`, ``with``, garbage
      collection or interpreter exit, whichever comes first. The launch is checked before
      anything starts: ports in use, a ``memory_limit`` a worker cannot live in, or a
      ``maximum`` the machine cannot hold raise a clear error. ``host`` opts out of
      127.0.0.1 (then use ``security=True``).
    - :meth:`wrap` adapts a ``distributed.deploy.Cluster`` the user built, never closing it.
    - :meth:`connect` only connects to a scheduler address and observes it.

    ``ElasticCluster(...)`` is the all-in-one form: ``address=`` connects, ``cluster=``
    wraps, neither starts a local cluster.

    Scaling decisions (``adapt``, ``scale``, and every target, scale-up and scale-down of an
    elastic_nb policy) are announced to listeners registered with :meth:`subscribe` (the
    :class:`~elastic_nb.Monitor` is one) together with their reason.

    A training run tells the policy it is in progress with a lease,
    ``with cluster.training(iterations=K) as run: ... run.step()`` (see
    :class:`~elastic_nb.policies.Lease`); the ``"training"`` policy scales for it.

    ``http_api=True`` (local clusters only) also serves the scheduler's own HTTP API
    (``distributed.http.scheduler.api``) on the dashboard's port, bound to 127.0.0.1, so the
    cluster can be inspected and shrunk from outside the notebook: see :attr:`api_url`.

    State
    -----
    backend : Backend
        The mode: how the cluster was reached, whether it may be scaled and closed.
    client : distributed.Client
        Connected to the cluster's scheduler.
    minimum, maximum : int
        The bounds the next :meth:`adapt` uses.
    policy : type
        The ``Adaptive`` subclass the next :meth:`adapt` uses.
    interval
        The policy's adapt interval.
    leases : LeaseBook
        The training runs holding the cluster now.
    decisions : DecisionLog
        The latest :data:`~elastic_nb.cluster.decisions.MAX_DECISIONS` decisions as
        ``(action, details)``, oldest first.
    adaptive : distributed.deploy.Adaptive or None
        The running policy; None while the cluster is fixed (or only observed).
    """

    def _open(self, backend: Backend, scaling: Scaling):
        """Check the width, reach the cluster through ``backend`` and start adapting."""
        backend.check_width(scaling.maximum)
        self.minimum, self.maximum, self.policy, self.interval = scaling
        self.backend = backend
        self.decisions = DecisionLog()
        self._adaptive = self._adapted_policy = None
        self._adapt_kwargs = {}
        self.leases = LeaseBook()
        self.leases.listeners.append(_weak_method(self._on_lease))
        self.client = None
        self.control = None
        try:
            self.client = backend.open(scaling.minimum)
            self._finalizer = weakref.finalize(self, backend.abandon)
            if self.can_scale:
                self.adapt(scaling.minimum, scaling.maximum)
        except BaseException:
            self.close()
            raise

    # ------------------------------------------------------------------ the mode
    @property
    def cluster(self):
        """The cluster manager scaling goes to; None when only observing an address."""
        return self.backend.manager

    @property
    def owns_cluster(self) -> bool:
        """Whether closing this object (or losing it) shuts the cluster down."""
        return self.backend.owns

    @property
    def can_scale(self) -> bool:
        return self.backend.manager is not None

    @property
    def threads_per_worker(self):
        """Threads of each new worker (a local cluster's; else None)."""
        return self.backend.threads_per_worker

    @property
    def memory_limit(self):
        """Memory of each new worker (a local cluster's; else None)."""
        return self.backend.memory_limit

    @property
    def security(self):
        return self.backend.security

    @property
    def http_api(self) -> bool:
        return self.backend.http_api

    def _require_scaling(self, what):
        if not self.can_scale:
            raise RuntimeError(
                f"cannot {what}: this ElasticCluster is connected to a scheduler address and "
                "only observes it; pass cluster=<a distributed.deploy.Cluster> to control scaling"
            )

    # ------------------------------------------------------------------ scaling
    def adapt(self, minimum=None, maximum=None, policy=None, **kwargs):
        """Scale automatically between ``minimum`` and ``maximum`` workers with ``policy``.

        Parameters
        ----------
        minimum, maximum : int, optional
            Bounds of the width; omitted, the last ones.
        policy : str or type, optional
            ``"default"``, ``"training"``, ``"predictive"`` or a subclass of
            :class:`distributed.deploy.Adaptive`; omitted, the last one (with its kwargs).
        **kwargs
            For the policy: ``interval``, ``wait_count``, ``target_duration`` and its own
            parameters (e.g. ``cooldown``), checked before the running policy is replaced.

        Returns
        -------
        distributed.deploy.Adaptive
            The running policy.
        """
        self._require_scaling("adapt")
        minimum = self.minimum if minimum is None else check_int("minimum", minimum, minimum=0)
        maximum = self.maximum if maximum is None else check_int("maximum", maximum, minimum=1)
        if maximum < minimum:
            raise ValueError(f"maximum must be >= minimum ({minimum}), got {maximum}")
        self.backend.check_width(maximum)
        policy_class = self.policy if policy is None else resolve_policy(policy)
        if policy is None and policy_class is self._adapted_policy:
            kwargs = {**self._adapt_kwargs, **kwargs}
        kwargs.setdefault("interval", self.interval)
        check_policy_params(policy_class, kwargs)
        extra = {}
        if issubclass(policy_class, ElasticPolicy):
            extra = {"leases": self.leases, "announce": _weak_method(self._announce)}
            extra["pending"] = self.backend.pending_reason
            if "startup" in policy_class.params:
                kwargs.setdefault("startup", self.backend.startup_estimate)
        self._adaptive = self.cluster.adapt(
            Adaptive=policy_class, minimum=minimum, maximum=maximum, **kwargs, **extra
        )
        self.minimum, self.maximum, self.policy = minimum, maximum, policy_class
        self._adapted_policy, self._adapt_kwargs = policy_class, dict(kwargs)
        name = policy_class.__name__
        self._announce(
            "adapt",
            minimum=minimum,
            maximum=maximum,
            policy=name,
            reason=f"adaptive between {minimum} and {maximum} workers ({name})",
        )
        return self._adaptive

    def _stop_adapting(self) -> bool:
        """Stop the running policy; True if there was one."""
        adaptive, self._adaptive = self._adaptive, None
        if adaptive is not None:
            adaptive.stop()
        return adaptive is not None

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
        """Stop adapting and run exactly ``n`` workers.

        Parameters
        ----------
        n : int
            Workers to run (a local cluster refuses more than the machine holds).
        """
        self._require_scaling("scale")
        n = check_int("n", n, minimum=0)
        self.backend.check_width(n)
        self._stop_adapting()
        self.cluster.scale(n)
        self._announce("scale", target=n, reason=f"fixed at {n} workers on request")

    def resize_workers(self, threads_per_worker=None, memory_limit=None, timeout=120):
        """Vertical scaling: give every worker new ``threads_per_worker`` / ``memory_limit``.

        Parameters
        ----------
        threads_per_worker : int, optional
            Threads of each new worker; omitted, the current ones.
        memory_limit : "auto", int or str, optional
            Memory of each new worker; omitted, the current one.
        timeout : float
            Seconds to wait for the new workers.

        Rolls the workers of a local cluster: starts as many new workers with the new
        resources as are running, waits for them, then retires the old ones gracefully (their
        data moves to the new workers), and resumes adapting if it was. Blocks until done.

        If the new workers do not arrive within ``timeout`` seconds (``TimeoutError``) or
        fail to start, the old resources stay and the new workers are dropped. Whatever
        fails, a ``"resize-failed"`` decision is announced and adaptive scaling (if it was
        on) is resumed before the error is raised.
        """
        threads, memory = self.backend.check_resources(
            threads_per_worker, memory_limit, self.maximum
        )
        timeout = check_float("timeout", timeout, positive=True)
        adaptive = self._stop_adapting()
        try:
            old, n = self.backend.roll_workers(threads, memory, int(adaptive), timeout)
            self._announce(
                "resize",
                threads_per_worker=threads,
                memory_limit=memory,
                target=n,
                reason=f"rolled {old} worker(s) to {threads} thread(s), memory {memory}",
            )
        except BaseException as err:
            self._announce("resize-failed", reason=f"resize failed: {err!r}")
            raise
        finally:
            if adaptive:
                self.adapt()
        if not adaptive:
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
        """Call ``listener(action, **details)`` on every scaling decision, past ones first.

        Parameters
        ----------
        listener : callable
            Called with the action (``"adapt"``, ``"target"``, ``"scale-up"``, ...) and its
            details, which always include a ``reason``; exceptions it raises are logged.

        Each decision reaches the listener exactly once and in order, also one made while
        the past is being replayed to it (see :class:`~elastic_nb.cluster.decisions.DecisionLog`).
        """
        self.decisions.subscribe(listener)

    def _announce(self, action, **details):
        self.decisions.record(action, **details)

    @property
    def requested_workers(self) -> int | None:
        """How many workers the cluster manager has been asked for (None if unknown)."""
        if self.cluster is None:
            return None
        return len(getattr(self.cluster, "requested", ()) or ())

    # ------------------------------------------------------------------ closing
    @property
    def closed(self) -> bool:
        return self.client is None or self.client.status == "closed"

    def close(self, timeout=30):
        """Close the client, and the cluster too if this object started it, within
        ``timeout`` seconds in all (at least 1 s is left for the cluster)."""
        finalizer = getattr(self, "_finalizer", None)
        if finalizer is not None:
            finalizer.detach()
        if getattr(self, "control", None) is not None:
            self.control.close()
        self._stop_adapting()
        self.backend.close(timeout)
        if self.owns_cluster and self.cluster is not None:
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
