"""The ``"default"`` policy: distributed's own target, with its decisions announced."""

from __future__ import annotations

from .base import ElasticPolicy


class DefaultPolicy(ElasticPolicy):
    """distributed's ``Adaptive``, unchanged, with every decision announced with a reason.

    It covers the backlog it sees *now* against ``target_duration``
    (:meth:`distributed.Scheduler.adaptive_target`); kept for comparison.

    **State**

    As :class:`ElasticPolicy`; it has no parameters of its own and installs no recorder.

    Parameters
    ----------
    cluster : distributed.deploy.Cluster or None
    *args, **kwargs
        As :class:`ElasticPolicy`.
    """
