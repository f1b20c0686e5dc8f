"""Policy names, and the checks of a policy's arguments before anything runs."""

from __future__ import annotations

from dask.utils import parse_timedelta
from distributed.deploy import Adaptive

from .._validation import check_choice, check_int
from .base import ADAPTIVE_KWARGS, ElasticPolicy
from .default import DefaultPolicy
from .predictive import PredictivePolicy
from .training import TrainingPolicy

#: Policy names accepted by :class:`elastic_nb.ElasticCluster` and the panel.
POLICIES: dict[str, type[Adaptive]] = {
    "default": DefaultPolicy,
    "training": TrainingPolicy,
    "predictive": PredictivePolicy,
}


def resolve_policy(policy) -> type[Adaptive]:
    """The class to instantiate for a policy name or an ``Adaptive`` subclass.

    Parameters
    ----------
    policy : str or type
        One of :data:`POLICIES`, or any subclass of :class:`distributed.deploy.Adaptive`
        (an elastic_nb policy, a subclass of one, or distributed's own ``Adaptive``).

    Returns
    -------
    type

    Raises
    ------
    ValueError
        An unknown name.
    TypeError
        Neither a name nor an ``Adaptive`` subclass.
    """
    if isinstance(policy, type) and issubclass(policy, Adaptive):
        return policy
    if not isinstance(policy, str):
        raise TypeError(
            f"policy must be a name ({', '.join(POLICIES)}) or a subclass of "
            f"distributed.deploy.Adaptive, got {policy!r}"
        )
    return POLICIES[check_choice("policy", policy, tuple(POLICIES))]


def _check_duration(name, value):
    try:
        seconds = parse_timedelta(value)
    except (ValueError, TypeError, KeyError) as err:
        raise ValueError(f"{name} must be a duration like '500ms', got {value!r}") from err
    if seconds is None or seconds <= 0:
        raise ValueError(f"{name} must be > 0, got {value!r}")


def check_policy_params(policy_class, kwargs):
    """Validate keyword arguments for ``policy_class`` before any cluster is touched.

    Parameters
    ----------
    policy_class : type
        A subclass of :class:`distributed.deploy.Adaptive`.
    kwargs : dict
        What will be passed to it (``None`` values mean "from the configuration").

    Raises
    ------
    TypeError, ValueError
        Naming the bad argument; an elastic_nb policy also rejects unknown names.
    """
    for key in ("interval", "target_duration"):
        if kwargs.get(key) is not None:
            _check_duration(key, kwargs[key])
    if kwargs.get("wait_count") is not None:
        check_int("wait_count", kwargs["wait_count"], minimum=1)
    if not issubclass(policy_class, ElasticPolicy):
        return
    own = policy_class.params
    unknown = set(kwargs) - ADAPTIVE_KWARGS - set(own)
    if unknown:
        expected = ", ".join(sorted((ADAPTIVE_KWARGS - {"minimum", "maximum"}) | set(own)))
        raise TypeError(
            f"unknown argument(s) for policy {policy_class.__name__}: "
            f"{', '.join(sorted(unknown))} (expected some of {expected})"
        )
    policy_class.check_params(**{k: v for k, v in kwargs.items() if k in own})
