"""Adaptive scaling policies: subclasses of :class:`distributed.deploy.Adaptive`.

distributed runs the adaptive loop (every ``interval``: ``safe_target`` ->
``recommendations`` with its ``wait_count`` -> ``scale_up`` / ``scale_down``, the workers to
close chosen by ``Scheduler.workers_to_close``). A policy here only changes *how many*
workers the loop asks for, by overriding ``target()`` through
:meth:`ElasticPolicy.decide`, and announces each decision with its reason. Without a lease
every policy reads the ``distributed.adaptive`` configuration and honours its
``wait_count``, ``interval``, ``target_duration``, ``minimum`` and ``maximum`` as
``Adaptive`` does; a lease only adds knowledge of the run.

Modules
-------
recorder
    :class:`ActivityRecorder`, the one scheduler plugin (the only code that reads the
    scheduler's internals).
leases
    :class:`Lease` and :class:`LeaseBook`: a training run's claim on the cluster.
pace
    :class:`PaceModel`, pure: seconds per iteration as a function of the width.
base
    :class:`ElasticPolicy`, the base on ``Adaptive``.
default, training, predictive
    :class:`DefaultPolicy`, :class:`TrainingPolicy`, :class:`PredictivePolicy`.
registry
    :data:`POLICIES`, :func:`resolve_policy`, :func:`check_policy_params`.
"""

from .base import ElasticPolicy, Param
from .default import DefaultPolicy
from .leases import Lease, LeaseBook
from .pace import IterationSample, PaceModel, deadline_width, fit_pace, pace_width, worth_growing
from .predictive import PredictivePolicy
from .recorder import ACTIVE_STATES, ActivityRecorder
from .registry import POLICIES, check_policy_params, resolve_policy
from .training import TrainingPolicy

__all__ = [
    "ACTIVE_STATES",
    "POLICIES",
    "ActivityRecorder",
    "DefaultPolicy",
    "ElasticPolicy",
    "IterationSample",
    "Lease",
    "LeaseBook",
    "PaceModel",
    "Param",
    "PredictivePolicy",
    "TrainingPolicy",
    "check_policy_params",
    "deadline_width",
    "fit_pace",
    "pace_width",
    "resolve_policy",
    "worth_growing",
]
