"""Adaptive scaling policies: subclasses of :class:`distributed.deploy.Adaptive`.

distributed runs the adaptive loop (recommendations, wait counts, retiring workers
gracefully); a policy here only changes *how many* workers it asks for, by overriding
``target()`` and, where needed, ``workers_to_close()``.
"""

from __future__ import annotations

from distributed.deploy import Adaptive

from ._validation import check_choice

#: Policy names accepted by :class:`elastic_nb.ElasticCluster` and the panel.
POLICIES: dict[str, type[Adaptive]] = {"default": Adaptive}


def resolve_policy(policy) -> type[Adaptive]:
    """Map a policy name or an ``Adaptive`` subclass to the class to instantiate."""
    if isinstance(policy, type) and issubclass(policy, Adaptive):
        return policy
    if not isinstance(policy, str):
        raise TypeError(
            f"policy must be a name ({', '.join(POLICIES)}) or a subclass of "
            f"distributed.deploy.Adaptive, got {policy!r}"
        )
    return POLICIES[check_choice("policy", policy, tuple(POLICIES))]
