"""A Dask cluster on Kubernetes as a manifest checked before anything is deployed.

One responsibility: the ``DaskCluster`` resource that the Dask Kubernetes operator turns
into a scheduler pod and worker pods. :func:`kubernetes_spec` builds it through
``dask_kubernetes.operator.make_cluster_spec``, :func:`validate_spec` checks it offline,
:func:`to_yaml` prints it for ``kubectl apply``, and :func:`open_kube_cluster` deploys
it as a ``KubeCluster``, the manager an :class:`~elastic_nb.ElasticCluster` then scales.

The offline checks exist because a bad manifest fails late on a real cluster: the API
server rejects it, or its pods crash-loop while ``KubeCluster`` waits out its resource
timeout. ``dask-kubernetes`` and ``jsonschema`` are the ``k8s`` extra, imported only here.
"""

from __future__ import annotations

import asyncio
import functools
import importlib
import re
import shlex
import sys
from collections.abc import Mapping
from concurrent.futures import ThreadPoolExecutor
from concurrent.futures import TimeoutError as FutureTimeout
from decimal import Decimal
from importlib import metadata
from pathlib import Path

import dask
import yaml
from distributed import Client

from .._validation import check_float, check_int
from .backends import Backend

INSTALL_HINT = 'pip install "elastic-nb[k8s]"'
#: Seconds a worker pod is assumed to take to start (image pull, scheduling), until measured.
POD_STARTUP = 30.0
#: The image of this interpreter's dask and Python: the client pickles functions for the
#: workers, so they must run the notebook's versions, not dask-kubernetes's ``:latest``.
DEFAULT_IMAGE = (
    f"ghcr.io/dask/dask:{dask.__version__}-py{sys.version_info[0]}.{sys.version_info[1]}"
)
DEFAULT_RESOURCES = {
    "requests": {"cpu": "1", "memory": "2Gi"},
    "limits": {"cpu": "2", "memory": "4Gi"},
}
#: dask-kubernetes 2026.3 writes ``dask-scheduler`` and ``dask-worker``, console scripts
#: that distributed 2026.6 removed; the ``dask`` CLI's subcommands exist since 2022.10.
SCHEDULER_COMMAND = ("dask", "scheduler")
WORKER_COMMAND = ("dask", "worker")
#: The CRD the operator's Helm chart installs, every ``$ref`` resolved (the one in
#: ``customresources/`` refers to a schema package that is not installed).
CRD_PATH = "operator/deployment/helm/dask-kubernetes-operator/crds/daskcluster.yaml"
_DNS_LABEL = re.compile(r"^[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?$")
#: A Kubernetes resource quantity: a number, then a binary, decimal or exponent suffix.
_QUANTITY = re.compile(r"^(\d+(?:\.\d*)?|\.\d+)([KMGTPE]i|[numkMGTPE]|[eE][+-]?\d+)?$")
_SCALE = {"": 1, "n": Decimal("1e-9"), "u": Decimal("1e-6"), "m": Decimal("1e-3")}
_SCALE.update({s: Decimal(1000) ** (i + 1) for i, s in enumerate("kMGTPE")})
_SCALE.update({f"{s}i": Decimal(1024) ** (i + 1) for i, s in enumerate("KMGTPE")})


def _require(module: str):
    """Import ``module``, or raise ImportError with the install hint: Kubernetes support
    is an optional extra, so its absence must say how to get it."""
    try:
        return importlib.import_module(module)
    except ImportError as error:
        raise ImportError(f"{module} is needed for Kubernetes clusters: {INSTALL_HINT}") from error


def _amount(quantity: str) -> Decimal:
    """The number a (matching) quantity stands for, to compare a request with its limit."""
    number, suffix = _QUANTITY.match(quantity).groups()
    scale = _SCALE.get(suffix or "")
    return Decimal(number + suffix) if scale is None else Decimal(number) * scale


def _check_resources(requests, limits) -> dict | None:
    """The container ``resources`` (None if empty), each request at most its limit: the
    API server refuses such a pod, which the operator only logs while KubeCluster waits."""
    checked = {}
    for kind, given in (("requests", requests), ("limits", limits)):
        given = DEFAULT_RESOURCES[kind] if given is None else given
        if not isinstance(given, Mapping):
            raise TypeError(f"{kind} must be a mapping like {DEFAULT_RESOURCES[kind]}: {given!r}")
        checked[kind] = {}
        for key, value in given.items():
            if not isinstance(key, str) or type(value) not in (str, int):
                raise TypeError(f"{kind} must map names to quantities, got {key!r}: {value!r}")
            if not _QUANTITY.match(str(value)):
                example = "'2', '500m' or '4Gi'"
                raise ValueError(f"{kind}[{key!r}] must be a quantity like {example}: {value!r}")
            checked[kind][key] = str(value)
    for key, request in checked["requests"].items():
        limit = checked["limits"].get(key, request)
        if _amount(request) > _amount(limit):
            raise ValueError(
                f"requests[{key!r}] ({request}) exceeds limits[{key!r}] ({limit}): "
                "Kubernetes refuses such a pod"
            )
    return {kind: given for kind, given in checked.items() if given} or None


def _check_names(name, image, namespace, env) -> None:
    """Raise TypeError/ValueError for a name, image, namespace or env Kubernetes refuses."""
    constants = _require("dask_kubernetes.constants")
    for label, value, rule, most in (
        ("name", name, constants.VALID_CLUSTER_NAME, constants.MAX_CLUSTER_NAME_LEN),
        ("namespace", namespace, _DNS_LABEL, 63),
    ):
        if not isinstance(value, str):
            raise TypeError(f"{label} must be a string, got {value!r}")
        if not rule.match(value):
            raise ValueError(
                f"{label} must be at most {most} lowercase letters, digits or '-' (a DNS "
                f"label), got {value!r}"
            )
    if not isinstance(image, str):
        raise TypeError(f"image must be a string, got {image!r}")
    if image.split() != [image]:
        raise ValueError(f"image must be an image reference like {DEFAULT_IMAGE!r}: {image!r}")
    if env is not None and not (
        isinstance(env, Mapping) and all(isinstance(x, str) for kv in env.items() for x in kv)
    ):
        raise TypeError(f"env must be a mapping of strings to strings, got {env!r}")


def _drop_none(value):
    """A copy of ``value`` without None in its mappings, at every depth, as the API server
    stores it; fresh containers throughout, as make_cluster_spec gives the scheduler and
    the worker one shared resources dict (YAML would print an anchor and an alias)."""
    if isinstance(value, Mapping):
        return {key: _drop_none(item) for key, item in value.items() if item is not None}
    if isinstance(value, (list, tuple)):
        return [_drop_none(item) for item in value]
    return value


def kubernetes_spec(
    name="elastic-nb",
    *,
    image=None,
    namespace="default",
    n_workers=0,
    requests=None,
    limits=None,
    threads_per_worker=1,
    env=None,
) -> dict:
    """Build the ``DaskCluster`` manifest of a scheduler and ``n_workers`` workers.

    Parameters
    ----------
    name : str
        The DaskCluster's name; its pods and services are named after it.
    image : str, optional
        Image of every container; default :data:`DEFAULT_IMAGE`. It must hold what the
        tasks import (elastic_nb too: the dask images install ``EXTRA_PIP_PACKAGES``).
    namespace : str
        Where the resource goes (``metadata.namespace``).
    n_workers : int
        Workers to start with; an ElasticCluster scales from there.
    requests, limits : mapping, optional
        Resources of every container, as in a Deployment; default
        :data:`DEFAULT_RESOURCES`, ``{}`` for none. A worker's memory limit is its
        container's (distributed reads the cgroup).
    threads_per_worker : int
        ``--nthreads`` of each worker.
    env : mapping of str to str, optional
        Environment variables of every container.

    Returns
    -------
    dict
        The manifest, without None values; :func:`to_yaml` prints it.
    """
    operator = _require("dask_kubernetes.operator")
    image = DEFAULT_IMAGE if image is None else image
    _check_names(name, image, namespace, env)
    n_workers = check_int("n_workers", n_workers, minimum=0)
    threads = check_int("threads_per_worker", threads_per_worker, minimum=1)
    resources = _check_resources(requests, limits)
    manifest = operator.make_cluster_spec(
        name,
        image=image,
        n_workers=n_workers,
        resources=resources,
        env=None if env is None else dict(env),
        worker_command=" ".join(WORKER_COMMAND),
    )
    manifest = _drop_none(manifest)
    manifest["metadata"]["namespace"] = namespace
    (scheduler,) = manifest["spec"]["scheduler"]["spec"]["containers"]
    options = next(i for i, arg in enumerate(scheduler["args"]) if arg.startswith("-"))
    scheduler["args"] = [*SCHEDULER_COMMAND, *scheduler["args"][options:]]
    (worker,) = manifest["spec"]["worker"]["spec"]["containers"]
    worker["args"] += ["--nthreads", str(threads)]
    return manifest


@functools.lru_cache(maxsize=1)
def _schema() -> dict:
    """The CRD's ``openAPIV3Schema``, and the envelope the API server checks itself
    (apiVersion, kind and a valid ``metadata.name``, which KubeCluster reads)."""
    path = Path(_require("dask_kubernetes").__file__).parent / CRD_PATH
    crd = yaml.load(path.read_text(), Loader=getattr(yaml, "CSafeLoader", yaml.SafeLoader))
    version = next(v for v in crd["spec"]["versions"] if v.get("storage"))
    name = _require("dask_kubernetes.constants").VALID_CLUSTER_NAME.pattern
    meta = {
        "name": {"type": "string", "pattern": name},
        "namespace": {"type": "string", "pattern": _DNS_LABEL.pattern},
    }
    envelope = {
        "required": ["apiVersion", "kind", "metadata"],
        "properties": {
            "apiVersion": {"enum": [f"{crd['spec']['group']}/{version['name']}"]},
            "kind": {"enum": [crd["spec"]["names"]["kind"]]},
            "metadata": {"type": "object", "required": ["name"], "properties": meta},
        },
    }
    return {"allOf": [envelope, version["schema"]["openAPIV3Schema"]]}


def _check_command(where: str, container: Mapping) -> None:
    """Raise ValueError unless ``container`` runs a ``dask`` subcommand that the installed
    distributed provides, with options it parses: an unknown command or option is a pod
    in CrashLoopBackOff, and the default image runs this same distributed."""
    import click  # a dependency of distributed

    argv = [*container.get("command", ()), *container.get("args", ())]
    entry_points = metadata.distribution("distributed").entry_points
    provided = {ep.name: ep for ep in entry_points if ep.group == "dask_cli"}
    if len(argv) < 2 or argv[0] != "dask" or argv[1] not in provided:
        known = ", ".join(f"'dask {name}'" for name in sorted(provided))
        raise ValueError(
            f"{where} runs `{shlex.join(argv)}`, not a command distributed "
            f"{metadata.version('distributed')} provides ({known})"
        )
    command = provided[argv[1]].load()
    try:
        parsed = command.make_context(f"dask {argv[1]}", argv[2:]).params
    except click.ClickException as error:
        raise ValueError(f"{where}: {error.format_message()}") from None
    for param in command.params:  # unknown options land in the positional arguments
        values = parsed.get(param.name)
        values = values if isinstance(values, tuple) else (values,)
        if isinstance(param, click.Argument) and any(str(v).startswith("-") for v in values):
            raise ValueError(f"{where}: no such option of 'dask {argv[1]}': {values[0]}")


def validate_spec(manifest) -> None:
    """Raise ValueError unless ``manifest`` is a DaskCluster the operator would run.

    Checked offline against the CRD schema the installed dask-kubernetes ships (after
    dropping None values, as Kubernetes does), and each scheduler and worker container's
    command against the installed distributed.

    Raises
    ------
    TypeError
        If ``manifest`` is not a mapping.
    ValueError
        Naming the bad field's path (``$.spec.worker.replicas``) and what is wrong.
    """
    if not isinstance(manifest, Mapping):
        raise TypeError(f"manifest must be a mapping (a DaskCluster), got {manifest!r}")
    jsonschema = _require("jsonschema")
    clean = _drop_none(manifest)
    errors = jsonschema.Draft4Validator(_schema()).iter_errors(clean)
    error = jsonschema.exceptions.best_match(errors)
    if error is not None:
        raise ValueError(f"invalid DaskCluster at {error.json_path}: {error.message}")
    for role in ("scheduler", "worker"):
        for i, container in enumerate(clean["spec"][role]["spec"]["containers"]):
            _check_command(f"$.spec.{role}.spec.containers[{i}]", container)


def to_yaml(manifest) -> str:
    """The YAML to ``kubectl apply``: keys in the order built, None values dropped (the
    API server drops them too) and no YAML anchors."""
    return yaml.safe_dump(_drop_none(manifest), sort_keys=False)


def _probe(timeout: float) -> Exception | None:
    """Why no Kubernetes API server answered within ``timeout`` (None if one did), asked
    from an event loop of this thread's own.

    The timeout is httpx's own, so a silent server's connection is closed by httpcore;
    cancelling the handshake from outside (``wait_for``) left its socket in a reference
    cycle, open until the next garbage collection. ``wait_for`` stays as a backstop.
    """
    kr8s, kr8s_asyncio = _require("kr8s"), _require("kr8s.asyncio")

    async def probe():
        api = kr8s_asyncio.Api(bypass_factory=True)  # kr8s's documented way past its cache
        api.timeout = timeout
        await asyncio.wait_for(api, timeout + 5)

    try:
        asyncio.run(probe())
    except (TimeoutError, asyncio.TimeoutError, kr8s.APITimeoutError):
        return TimeoutError(f"no answer within {timeout:g} s")
    except Exception as error:
        return error
    return None


def _reach_api_server(timeout: float) -> None:
    """Raise ConnectionError unless a Kubernetes API server answers within ``timeout``.

    KubeCluster would fail with kr8s's "Unable to find valid credentials" or an httpx
    error, or wait without end on a server that never answers. The probe runs in a
    thread of its own, as a notebook's event loop is already running in this one.
    """
    pool = ThreadPoolExecutor(1, thread_name_prefix="elastic-nb-kube-probe")
    try:
        failure = pool.submit(_probe, timeout).result(timeout + 10)
    except FutureTimeout:
        failure = TimeoutError(f"no answer within {timeout:g} s")
    finally:
        pool.shutdown(wait=False)
    if failure is not None:
        raise ConnectionError(
            f"no Kubernetes cluster reachable ({type(failure).__name__}: {failure}); check "
            "KUBECONFIG and `kubectl cluster-info`"
        ) from failure


def open_kube_cluster(manifest, *, timeout=10, **kwargs):
    """Deploy ``manifest`` as a ``dask_kubernetes.operator.KubeCluster``.

    The manifest is validated and the API server reached first, so a bad manifest or no
    reachable Kubernetes fails within ``timeout`` seconds, before anything is created.

    Parameters
    ----------
    manifest : dict
        A DaskCluster, e.g. from :func:`kubernetes_spec`; its namespace is used.
    timeout : float
        Seconds to wait for the API server.
    **kwargs
        More ``KubeCluster`` arguments (``resource_timeout``, ``shutdown_on_close``...).

    Raises
    ------
    ConnectionError
        If no Kubernetes cluster is reachable (no kubeconfig, or no answer).
    """
    timeout = check_float("timeout", timeout, positive=True)
    operator = _require("dask_kubernetes.operator")
    validate_spec(manifest)
    _reach_api_server(timeout)
    worker = manifest["spec"]["worker"]["spec"]["containers"][0]
    # what KubeCluster.add_worker_group uses for a new group, instead of its config's
    options = {"image": worker["image"], "worker_command": " ".join(WORKER_COMMAND), **kwargs}
    return operator.KubeCluster(
        custom_cluster_spec=_drop_none(manifest),
        namespace=manifest["metadata"].get("namespace"),
        **options,
    )


class KubernetesBackend(Backend):
    """A DaskCluster on Kubernetes that elastic_nb deploys, owns and deletes on close.

    Parameters
    ----------
    manifest : dict
        A DaskCluster (from :func:`kubernetes_spec`), validated now, before anything starts.
    timeout : float
        Seconds to wait for the API server.

    State
    -----
    manifest : dict
        What is deployed; :meth:`to_yaml` shows it.
    timeout : float
    manager : dask_kubernetes.operator.KubeCluster or None
        Set by :meth:`open`: a ``distributed.deploy.Cluster`` (the policy attaches to it,
        and measures its scheduler, in a pod, through the remote recorder).
    """

    owns = True
    startup_estimate = POD_STARTUP

    def __init__(self, manifest, timeout=10):
        validate_spec(manifest)
        super().__init__(None)
        self.manifest, self.timeout = manifest, check_float("timeout", timeout, positive=True)

    def open(self, n_workers) -> Client:
        self.manager = open_kube_cluster(self.manifest, timeout=self.timeout)
        self.client = Client(self.manager)
        return self.client

    def to_yaml(self) -> str:
        return to_yaml(self.manifest)
