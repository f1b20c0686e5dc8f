"""The backends a user can pick by name (the panel's menu, a command line): data, and one
dispatch to the :class:`~elastic_nb.ElasticCluster` constructor of each.

A menu must list every backend, say which ones lack their optional package (and how to
install it) without importing it, and turn what was typed into fields — strings and
ints — into checked constructor arguments. Kept here rather than in the ui so that the
widgets stay a thin view of :data:`BACKENDS` and a CLI could offer the same choices.
"""

from __future__ import annotations

import importlib.util
import json
import re
from dataclasses import dataclass

from .._validation import check_int
from .core import ElasticCluster
from .gateway import INSTALL_HINT as GATEWAY_HINT
from .jobqueue import INSTALL_HINT as HPC_HINT
from .kubernetes import INSTALL_HINT as K8S_HINT
from .kubernetes import kubernetes_spec

#: Seconds a launch waits for a scheduler address or a Kubernetes API server: a panel
#: must say "nothing answers" quickly.
CONNECT_TIMEOUT = 5


@dataclass(frozen=True)
class Field:
    """One value a backend asks for, as a menu shows it and :func:`open_backend` takes it.

    State
    -----
    name : str
        The :func:`open_backend` keyword.
    label : str
        What it is typed under.
    default : str or int
        What it holds until the user types; an int makes it a whole-number field.
    placeholder : str
        Shown in the empty field: what leaving it empty means.
    """

    name: str
    label: str
    default: str | int = ""
    placeholder: str = ""


@dataclass(frozen=True)
class BackendChoice:
    """A backend as a menu offers it.

    State
    -----
    name : str
        What :func:`open_backend` is called with (``"slurm"``).
    label : str
        What a menu shows (``"SLURM"``).
    packages : tuple of str
        The top-level modules it needs (empty: none beyond elastic_nb's own).
    install_hint : str or None
        How to install them.
    fields : tuple of Field
        What it reads, in display order.
    observe_only : bool
        True when elastic_nb can only watch the cluster (no scaling, no policy).
    """

    name: str
    label: str
    packages: tuple[str, ...] = ()
    install_hint: str | None = None
    fields: tuple[Field, ...] = ()
    observe_only: bool = False

    def available(self) -> bool:
        """Whether every package is importable, found without importing it (an import of
        dask-kubernetes takes seconds, and a menu asks for every choice)."""
        return all(importlib.util.find_spec(name) is not None for name in self.packages)

    def menu_label(self, available=None) -> str:
        """The label, saying "not installed" when it is not (``available``: if known)."""
        available = self.available() if available is None else available
        return self.label if available else f"{self.label} — not installed"

    def missing(self) -> str:
        """The sentence for a choice that is not installed."""
        needs = ", ".join(p.replace("_", "-") for p in self.packages)
        return f"{self.label} needs {needs}: {self.install_hint}"


# fmt: off
_JOB_FIELDS = (
    Field("cores", "cores/job", 1), Field("memory", "memory/job", "2GiB"),
    Field("queue", "queue", "", "the default queue"), Field("walltime", "walltime", "01:00:00"),
    Field("account", "account", "", "none"),
)
#: Every backend, in display order.
BACKENDS = (
    BackendChoice("local", "local", fields=(
        Field("threads_per_worker", "threads/worker", 1),
        Field("memory_limit", "memory/worker", "auto"),
    )),
    BackendChoice("scheduler address", "scheduler address", observe_only=True, fields=(
        Field("address", "address", "", "tls://host:8786"),
    )),
    *(BackendChoice(kind, kind.upper(), ("dask_jobqueue",), HPC_HINT, _JOB_FIELDS)
      for kind in ("slurm", "pbs", "sge")),
    BackendChoice("gateway", "dask-gateway", ("dask_gateway",), GATEWAY_HINT, (
        Field("address", "gateway", "", "empty: dask config"),
        Field("proxy_address", "proxy", "", "optional: gateway://host:8786"),
        Field("cluster_options", "options", "", "worker_cores=2, worker_memory=4"),
    )),
    BackendChoice("kubernetes", "Kubernetes", ("dask_kubernetes", "jsonschema"), K8S_HINT, (
        Field("image", "image", "", "the notebook's dask image"),
        Field("namespace", "namespace", "default"),
        Field("requests", "requests", "cpu=1, memory=2Gi", "none"),
        Field("limits", "limits", "cpu=2, memory=4Gi", "none"),
    )),
)
# fmt: on
CHOICES = {choice.name: choice for choice in BACKENDS}


def choice_of(name) -> BackendChoice:
    if name not in CHOICES:
        raise ValueError(f"backend must be one of {', '.join(map(repr, CHOICES))}; got {name!r}")
    return CHOICES[name]


def _whole(name, value, minimum):
    """An int field as typed: an int, or a string of digits."""
    if isinstance(value, str):
        if not re.fullmatch(r"\s*[+-]?\d+\s*", value):
            raise ValueError(f"{name} must be a whole number, got {value!r}")
        value = int(value)
    return check_int(name, value, minimum=minimum)


def _text(name, value):
    """A text field as typed, stripped; "" for nothing typed."""
    if value is None:
        return ""
    if not isinstance(value, str):
        raise TypeError(f"{name} must be text, got {value!r}")
    return value.strip()


def parse_mapping(name, value, numbers=False) -> dict:
    """``"cpu=1, memory=2Gi"`` (or a JSON object) as a dict; ``numbers`` turns values that
    are JSON numbers or booleans into them. "" is ``{}``."""
    text = _text(name, value)
    if text.startswith("{"):
        try:
            parsed = json.loads(text)
        except json.JSONDecodeError as err:
            raise ValueError(f"{name} is not a JSON object ({err.msg}): {text!r}") from None
        if not isinstance(parsed, dict):
            raise ValueError(f"{name} must be a JSON object, got {text!r}")
        return parsed
    mapping = {}
    for item in filter(None, (part.strip() for part in text.split(","))):
        key, sep, raw = (s.strip() for s in item.partition("="))
        if not sep or not re.fullmatch(r"[A-Za-z_][\w.\-/]*", key) or not raw:
            raise ValueError(f"{name} must be key=value pairs like 'cpu=1, memory=2Gi': {text!r}")
        if numbers and re.fullmatch(r"-?\d+(\.\d*)?([eE][+-]?\d+)?|true|false", raw):
            raw = json.loads(raw)
        mapping[key] = raw
    return mapping


def kubernetes_manifest(minimum=0, *, image="", namespace="default", requests="", limits=""):
    """The DaskCluster the Kubernetes choice deploys, from its fields as typed: its
    workers start at ``minimum``; "" for ``image`` is the notebook's dask image."""
    return kubernetes_spec(
        image=_text("image", image) or None,
        namespace=_text("namespace", namespace) or "default",
        n_workers=_whole("minimum", minimum, 0),
        requests=parse_mapping("requests", requests),
        limits=parse_mapping("limits", limits),
    )


def open_backend(name, minimum, maximum, policy="training", **fields) -> ElasticCluster:
    """Open the backend ``name`` of :data:`BACKENDS` with its fields as typed.

    Parameters
    ----------
    name : str
        A :class:`BackendChoice` name.
    minimum, maximum : int or str
        The adaptive range (ignored by an observe-only choice).
    policy : str
        The scaling policy.
    **fields
        The choice's :class:`Field` values (strings or ints); omitted ones take their
        defaults.

    Raises
    ------
    ImportError
        With the install hint, if the choice's packages are missing.
    ValueError, TypeError
        Naming the field, for an unknown field or a bad value, before anything starts.
    """
    choice = choice_of(name)
    known = {field.name: field.default for field in choice.fields}
    unknown = sorted(set(fields) - set(known))
    if unknown:
        raise TypeError(f"{choice.label} has no field {unknown[0]!r} (fields: {', '.join(known)})")
    if not choice.available():
        raise ImportError(choice.missing())
    values = {**known, **fields}
    if choice.observe_only:
        address = _text("address", values["address"])
        if not address:
            raise ValueError("enter the scheduler's address, e.g. tcp://10.0.0.5:8786")
        return ElasticCluster.connect(address, timeout=CONNECT_TIMEOUT)
    scaling = {"minimum": _whole("minimum", minimum, 0), "maximum": _whole("maximum", maximum, 1)}
    return _OPENERS[name](name, scaling, policy, values)


def _local(name, scaling, policy, values):
    return ElasticCluster.local(
        **scaling,
        threads_per_worker=_whole("threads_per_worker", values["threads_per_worker"], 1),
        memory_limit=_text("memory_limit", values["memory_limit"]) or "auto",
        policy=policy,
    )


def _jobqueue(kind, scaling, policy, values):
    optional = {key: _text(key, values[key]) or None for key in ("queue", "account")}
    return ElasticCluster.jobqueue(
        kind,
        **scaling,
        cores=_whole("cores", values["cores"], 1),
        memory=_text("memory", values["memory"]),
        walltime=_text("walltime", values["walltime"]),
        policy=policy,
        **optional,
    )


def _gateway(name, scaling, policy, values):
    return ElasticCluster.gateway(
        _text("address", values["address"]) or None,
        **scaling,
        proxy_address=_text("proxy_address", values["proxy_address"]) or None,
        cluster_options=parse_mapping("cluster_options", values["cluster_options"], True) or None,
        policy=policy,
    )


def _kubernetes(name, scaling, policy, values):
    manifest = kubernetes_manifest(scaling["minimum"], **values)
    return ElasticCluster.kubernetes(manifest, **scaling, policy=policy, timeout=CONNECT_TIMEOUT)


#: The constructor call of each choice that elastic_nb scales.
_OPENERS = {
    "local": _local,
    **dict.fromkeys(("slurm", "pbs", "sge"), _jobqueue),
    "gateway": _gateway,
    "kubernetes": _kubernetes,
}
