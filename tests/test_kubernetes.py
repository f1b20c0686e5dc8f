"""The DaskCluster manifest, checked offline: against the CRD schema dask-kubernetes ships,
against the commands the installed distributed provides (run for real), and with no
Kubernetes cluster reachable, a fast clear error."""

import copy
import gc
import json
import shutil
import socket
import subprocess
import sys
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from importlib import metadata
from pathlib import Path

import dask
import psutil
import pytest
import yaml

pytest.importorskip("dask_kubernetes", reason="the k8s extra: pip install 'elastic-nb[k8s]'")
pytest.importorskip("jsonschema", reason="the k8s extra: pip install 'elastic-nb[k8s]'")

from elastic_nb.cluster.kubernetes import (  # noqa: E402
    DEFAULT_RESOURCES,
    kubernetes_spec,
    open_kube_cluster,
    to_yaml,
    validate_spec,
)


def containers(manifest):
    return [
        *manifest["spec"]["scheduler"]["spec"]["containers"],
        *manifest["spec"]["worker"]["spec"]["containers"],
    ]


def worker_container(manifest):
    return manifest["spec"]["worker"]["spec"]["containers"][0]


# ------------------------------------------------------------------ building
def test_the_default_spec_validates_and_pins_the_notebooks_versions():
    manifest = kubernetes_spec()
    validate_spec(manifest)
    assert manifest["kind"] == "DaskCluster"
    assert manifest["metadata"] == {"name": "elastic-nb", "namespace": "default"}
    assert manifest["spec"]["worker"]["replicas"] == 0
    python = f"py{sys.version_info[0]}.{sys.version_info[1]}"
    for container in containers(manifest):
        assert container["image"] == f"ghcr.io/dask/dask:{dask.__version__}-{python}"
        assert container["resources"] == DEFAULT_RESOURCES
        assert "env" not in container  # None values are dropped, as Kubernetes does


def test_requests_limits_namespace_image_and_env_land_on_every_container():
    requests, limits = {"cpu": "500m", "memory": "1Gi"}, {"cpu": 3, "memory": "6Gi"}
    manifest = kubernetes_spec(
        "fit-7",
        image="registry.example/ml:1.2",
        namespace="ml-team",
        n_workers=3,
        requests=requests,
        limits=limits,
        threads_per_worker=2,
        env={"EXTRA_PIP_PACKAGES": "elastic-nb"},
    )
    validate_spec(manifest)
    assert manifest["metadata"] == {"name": "fit-7", "namespace": "ml-team"}
    assert manifest["spec"]["worker"]["replicas"] == 3
    for container in containers(manifest):
        assert container["image"] == "registry.example/ml:1.2"
        assert container["resources"] == {"requests": requests, "limits": {**limits, "cpu": "3"}}
        assert container["env"] == [{"name": "EXTRA_PIP_PACKAGES", "value": "elastic-nb"}]
    args = worker_container(manifest)["args"]
    assert args[args.index("--nthreads") + 1] == "2"
    # separate objects: changing one container's resources leaves the other's alone
    scheduler, worker = containers(manifest)
    assert scheduler["resources"] is not worker["resources"]


def test_empty_requests_and_limits_mean_none():
    for container in containers(kubernetes_spec(requests={}, limits={})):
        assert "resources" not in container
    (worker,) = kubernetes_spec(requests={}, limits={"memory": "1Gi"})["spec"]["worker"]["spec"][
        "containers"
    ]
    assert worker["resources"] == {"limits": {"memory": "1Gi"}}


@pytest.mark.parametrize(
    "kwargs, error, match",
    [
        ({"image": 3}, TypeError, "image"),
        ({"image": "a b"}, ValueError, "image"),
        ({"n_workers": -1}, ValueError, "n_workers"),
        ({"n_workers": True}, TypeError, "n_workers"),
        ({"threads_per_worker": 0}, ValueError, "threads_per_worker"),
        ({"requests": ["cpu", "1"]}, TypeError, "requests"),
        ({"requests": {"memory": "2GB"}}, ValueError, r"requests\['memory'\]"),
        ({"limits": {"cpu": 2.5}}, TypeError, "limits"),
        ({"limits": {"memory": "-4Gi"}}, ValueError, r"limits\['memory'\]"),
        ({"requests": {"memory": "8Gi"}}, ValueError, r"requests\['memory'\].*exceeds"),
        ({"requests": {"cpu": "2001m"}}, ValueError, r"requests\['cpu'\].*exceeds"),
        ({"namespace": "ML_team"}, ValueError, "namespace"),
        ({"name": "Fit 7"}, ValueError, "name"),
        ({"name": "x" * 54}, ValueError, "name"),
        ({"env": {"THREADS": 1}}, TypeError, "env"),
    ],
)
def test_bad_arguments_name_the_argument(kwargs, error, match):
    with pytest.raises(error, match=match):
        kubernetes_spec(**kwargs)


def test_quantities_compare_across_units():
    # 2000m == 2 cpus and 4096Mi == 4Gi: at the limit, not over it
    kubernetes_spec(requests={"cpu": "2000m", "memory": "4096Mi"})
    kubernetes_spec(requests={"memory": "4e9"}, limits={"memory": "4Gi"})  # 4e9 < 4*2**30
    with pytest.raises(ValueError, match="exceeds"):
        kubernetes_spec(requests={"memory": "5e9"}, limits={"memory": "4Gi"})


# ---------------------------------------------------------------- validating
def broken(change):
    manifest = kubernetes_spec()
    change(manifest)
    return manifest


def drop_service(manifest):
    del manifest["spec"]["scheduler"]["service"]


@pytest.mark.parametrize(
    "change, match",
    [
        (lambda m: m["spec"]["worker"].update(replicas="two"), r"\$\.spec\.worker\.replicas"),
        (drop_service, r"\$\.spec\.scheduler: 'service' is a required property"),
        (lambda m: worker_container(m).update(image=7), r"containers\[0\]\.image"),
        (lambda m: m["metadata"].pop("name"), "'name' is a required property"),
        (lambda m: m["metadata"].update(name="Fit_7"), r"\$\.metadata\.name"),
        (lambda m: m.update(kind="DaskJob"), r"\$\.kind"),
    ],
)
def test_a_bad_spec_is_rejected_with_the_fields_path(change, match):
    with pytest.raises(ValueError, match=match):
        validate_spec(broken(change))


def test_none_values_are_dropped_before_validating():
    # make_cluster_spec writes env: None; the schema wants a list, Kubernetes drops nulls
    manifest = broken(lambda m: worker_container(m).update(env=None))
    validate_spec(manifest)
    assert worker_container(manifest)["env"] is None  # the caller's manifest is untouched


def old_worker_command(manifest):
    worker_container(manifest)["args"][:2] = ["dask-worker"]


def old_scheduler_command(manifest):
    manifest["spec"]["scheduler"]["spec"]["containers"][0]["args"][:2] = ["dask-scheduler"]


@pytest.mark.parametrize(
    "change, match",
    [
        (old_worker_command, r"worker\.spec\.containers\[0\] runs `dask-worker "),
        (old_scheduler_command, r"scheduler\.spec\.containers\[0\] runs `dask-scheduler "),
        (lambda m: worker_container(m)["args"].append("--bogus"), "--bogus"),
        (lambda m: worker_container(m)["args"].extend(["--a", "--b"]), "--b"),
        (lambda m: worker_container(m)["args"].__setitem__(-1, "two"), "--nthreads"),
    ],
)
def test_a_command_the_installed_distributed_lacks_is_rejected(change, match):
    with pytest.raises(ValueError, match=match):
        validate_spec(broken(change))


def test_the_commands_of_the_built_spec_run_with_the_installed_distributed():
    """Each container's command line, run here with --help: the executable exists beside
    this interpreter and starts the right subcommand (validate_spec parses the options)."""
    bin_dir = str(Path(sys.executable).parent)
    for container in containers(kubernetes_spec()):
        executable, subcommand, *options = container["args"]
        program = shutil.which(executable, path=bin_dir)
        assert program is not None, f"no {executable!r} beside {sys.executable}"
        run = subprocess.run(
            [program, subcommand, *options, "--help"], capture_output=True, text=True, timeout=120
        )
        assert run.returncode == 0, run.stderr
        assert run.stdout.startswith(f"Usage: {executable} {subcommand} ")
    from packaging.version import Version

    if Version(metadata.version("distributed")) >= Version("2026.6"):
        # what dask-kubernetes writes, and what distributed 2026.6 removed
        assert shutil.which("dask-worker", path=bin_dir) is None


# ------------------------------------------------------------------ printing
def test_to_yaml_round_trips_in_the_order_built_without_anchors():
    manifest = kubernetes_spec(env={"A": "1"})
    text = to_yaml(manifest)
    assert yaml.safe_load(text) == manifest
    assert text.startswith("apiVersion: kubernetes.dask.org/v1\nkind: DaskCluster\n")
    assert "&id" not in text and "*id" not in text
    shared = copy.deepcopy(manifest)  # one resources dict in both containers, as built
    resources = containers(shared)[0]["resources"]
    containers(shared)[1]["resources"] = resources
    assert "&id" not in to_yaml(shared)


# ------------------------------------------------------------------- opening
def kube_cluster_instances():
    from dask_kubernetes.operator import KubeCluster

    return list(KubeCluster._instances)


@pytest.mark.timeout(60)
def test_no_kubeconfig_is_a_clear_error_at_once(monkeypatch, tmp_path):
    monkeypatch.setenv("KUBECONFIG", str(tmp_path / "missing-kubeconfig"))
    monkeypatch.delenv("KUBERNETES_SERVICE_HOST", raising=False)  # nor an in-cluster one
    before = kube_cluster_instances()
    start = time.monotonic()
    with pytest.raises(ConnectionError, match="no Kubernetes cluster reachable.*credentials"):
        open_kube_cluster(kubernetes_spec(), timeout=5)
    assert time.monotonic() - start < 5
    assert kube_cluster_instances() == before  # nothing was created


def sockets_to(port):
    """This process's TCP connections to ``port`` that garbage collection leaves open."""
    gc.collect()
    process = psutil.Process()
    # net_connections is psutil 6's name; connections, the older one, is psutil 5.9's
    listing = getattr(process, "net_connections", None) or process.connections
    return [c for c in listing("tcp") if c.raddr and c.raddr[1] == port]


def use_kubeconfig(monkeypatch, path, server):
    kubeconfig = {
        "apiVersion": "v1",
        "kind": "Config",
        "clusters": [{"name": "c", "cluster": {"server": server}}],
        "users": [{"name": "u", "user": {"token": "t"}}],
        "contexts": [{"name": "x", "context": {"cluster": "c", "user": "u"}}],
        "current-context": "x",
    }
    path.write_text(yaml.safe_dump(kubeconfig))
    monkeypatch.setenv("KUBECONFIG", str(path))


@pytest.mark.timeout(60)
def test_an_api_server_that_never_answers_times_out_leaving_no_socket(monkeypatch, tmp_path):
    with socket.socket() as silent:  # accepts connections (the backlog), never replies
        silent.bind(("127.0.0.1", 0))
        silent.listen(8)
        port = silent.getsockname()[1]
        use_kubeconfig(monkeypatch, tmp_path / "config", f"https://127.0.0.1:{port}")
        start = time.monotonic()
        with pytest.raises(ConnectionError, match="no answer within 1 s"):
            open_kube_cluster(kubernetes_spec(), timeout=1)
        assert time.monotonic() - start < 10
        assert not sockets_to(port), "the cancelled connection's socket is left open"


class VersionOnly(BaseHTTPRequestHandler):
    """An API server that answers only what kr8s asks first: its version."""

    def do_GET(self):
        body = json.dumps({"major": "1", "minor": "30", "gitVersion": "v1.30.0"}).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args):
        pass


@pytest.mark.timeout(60)
def test_the_probe_passes_when_an_api_server_answers(monkeypatch, tmp_path):
    """The other side of the two tests above: a probe that always failed would pass them."""
    from elastic_nb.cluster.kubernetes import _reach_api_server

    server = ThreadingHTTPServer(("127.0.0.1", 0), VersionOnly)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        use_kubeconfig(monkeypatch, tmp_path / "config", f"http://127.0.0.1:{server.server_port}")
        _reach_api_server(5)
        assert not sockets_to(server.server_port), "the probe's socket is left open"
    finally:
        server.shutdown()
        server.server_close()
        thread.join(10)


def test_a_bad_manifest_is_refused_before_reaching_kubernetes(monkeypatch, tmp_path):
    monkeypatch.setenv("KUBECONFIG", str(tmp_path / "missing-kubeconfig"))
    with pytest.raises(ValueError, match="dask-worker"):
        open_kube_cluster(broken(old_worker_command))
    with pytest.raises(ValueError, match="timeout"):
        open_kube_cluster(kubernetes_spec(), timeout=0)
    with pytest.raises(TypeError, match="manifest"):
        validate_spec("apiVersion: v1")


def test_without_dask_kubernetes_the_error_says_how_to_install(monkeypatch):
    for name in [n for n in sys.modules if n.split(".")[0] == "dask_kubernetes"]:
        monkeypatch.setitem(sys.modules, name, None)
    monkeypatch.setitem(sys.modules, "dask_kubernetes", None)
    with pytest.raises(ImportError, match=r'pip install "elastic-nb\[k8s\]"'):
        kubernetes_spec()


# ------------------------------------------------------- through the ElasticCluster
def test_elastic_cluster_kubernetes_checks_the_manifest_then_fails_clearly_without_a_cluster(
    monkeypatch,
):
    from elastic_nb import ElasticCluster

    monkeypatch.setenv("KUBECONFIG", "/nonexistent/kubeconfig")
    bad = broken(lambda m: m["spec"]["worker"].update(replicas="two"))
    with pytest.raises(ValueError, match=r"spec\.worker\.replicas"):
        ElasticCluster.kubernetes(bad)
    with pytest.raises(ValueError, match="maximum must be >= minimum"):
        ElasticCluster.kubernetes(kubernetes_spec(), minimum=3, maximum=2)
    threads = set(threading.enumerate())
    started = time.monotonic()
    with pytest.raises(ConnectionError, match="no Kubernetes cluster reachable"):
        ElasticCluster.kubernetes(kubernetes_spec(namespace="ml"), 0, 4, timeout=5)
    assert time.monotonic() - started < 10
    time.sleep(0.5)
    assert not [t for t in set(threading.enumerate()) - threads if t.is_alive()]
