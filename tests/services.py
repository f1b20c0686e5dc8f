"""Real deployment backends for the tests, started on this machine and stopped after.

- SLURM: Debian's ``slurmctld``, ``slurmd`` and ``munge`` on one node
  (``services/slurm-up.sh``), so dask-jobqueue submits real ``sbatch`` jobs.
- dask-gateway: a real ``dask-gateway-server`` (``services/gateway_config.py``: local
  processes, everything on 127.0.0.1), with its proxy and TLS schedulers.

Each is a context manager that skips (``pytest.skip``, with the reason) where the machine
cannot run it, and that fails if the tests left a job or a gateway cluster behind.
"""

from __future__ import annotations

import contextlib
import getpass
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from dataclasses import dataclass
from pathlib import Path

import pytest

SERVICES = Path(__file__).resolve().parent / "services"
SBIN = ("/usr/sbin", "/usr/local/sbin")
SLURM_PROGRAMS = ("slurmctld", "slurmd", "munged", "sbatch", "squeue")


#: Set (by .ci/run) where every backend must run: a missing one fails instead of skipping.
REQUIRED = "ELASTIC_NB_REQUIRE_BACKENDS"


def skip_unless_required(reason):
    """Skip with ``reason``, or fail with it where the backends are required (CI)."""
    if os.environ.get(REQUIRED):
        pytest.fail(f"{reason} (and {REQUIRED} is set)")
    pytest.skip(reason)


def _which(program):
    return shutil.which(program, path=os.pathsep.join([os.environ.get("PATH", ""), *SBIN]))


def slurm_missing() -> str | None:
    """Why SLURM cannot run here, or None."""
    if os.geteuid() != 0:
        return "the one-node SLURM cluster runs its daemons as root"
    missing = [p for p in SLURM_PROGRAMS if _which(p) is None]
    if missing:
        return (
            f"SLURM is not installed ({', '.join(missing)}: "
            "apt-get install slurmctld slurmd slurm-client munge)"
        )
    with contextlib.suppress(ImportError):
        import dask_jobqueue  # noqa: F401

        return None
    return 'dask-jobqueue is not installed (pip install "elastic-nb[hpc]")'


def squeue_jobs() -> list[str]:
    """Job ids in the queue now (any state, COMPLETING included)."""
    out = subprocess.run(
        ["squeue", "-h", "-o", "%i"], capture_output=True, text=True, check=True, timeout=20
    ).stdout
    return out.split()


def wait_until(predicate, timeout, what):
    """Poll ``predicate`` until true; AssertionError naming ``what`` after ``timeout`` s."""
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError(f"{what} within {timeout:g} s")
        time.sleep(0.25)


_RUNNING = {}  # name -> value: one instance of each service per test process
#: Services held for the whole session by a hook that cannot use fixtures (the notebooks').
SESSION = contextlib.ExitStack()


def hold(service):
    """Enter ``service`` (a context manager) until :func:`release_all`."""
    return SESSION.enter_context(service)


def release_all():
    """Stop the services :func:`hold` entered (idempotent). Called by the session's
    process check before it looks for orphans, and by the notebooks' hook at the end."""
    SESSION.close()


@contextlib.contextmanager
def shared(name, start):
    """The running service ``name``, or one started with the context manager ``start()``.

    The notebooks' hooks and the tests' fixtures share one SLURM (its ports are fixed) and one
    gateway. The first user owns it and stops it; the others are done before it is (the
    notebooks start theirs at collection and stop it when the session ends, after every
    fixture)."""
    if name in _RUNNING:
        yield _RUNNING[name]
        return
    with start() as value:
        _RUNNING[name] = value
        try:
            yield value
        finally:
            del _RUNNING[name]


def slurm_service():
    """A running one-node SLURM cluster (shared, see :func:`shared`)."""
    return shared("slurm", _slurm)


def gateway_service():
    """A running dask-gateway server (shared, see :func:`shared`)."""
    return shared("gateway", _gateway)


@contextlib.contextmanager
def _slurm():
    """A running one-node SLURM cluster; ``SLURM_CONF`` set in this process (and so in the
    kernels and workers it starts) while it runs."""
    reason = slurm_missing()
    if reason:
        skip_unless_required(reason)
    directory = tempfile.mkdtemp(prefix="enb-slurm-")
    env = {**os.environ, "PATH": os.pathsep.join([os.environ["PATH"], *SBIN])}
    up = subprocess.run(
        ["bash", str(SERVICES / "slurm-up.sh"), directory],
        capture_output=True, text=True, env=env, timeout=120,
    )  # fmt: skip
    if up.returncode != 0:
        subprocess.run(["bash", str(SERVICES / "slurm-down.sh"), directory], env=env)
        raise RuntimeError(f"SLURM did not start: {up.stderr[-2000:]}")
    old = os.environ.get("SLURM_CONF")
    os.environ["SLURM_CONF"] = str(Path(directory) / "etc" / "slurm.conf")
    try:
        yield os.environ["SLURM_CONF"]
        wait_until(lambda: not squeue_jobs(), 60, "the tests left SLURM jobs: not gone")
    finally:
        subprocess.run(["bash", str(SERVICES / "slurm-down.sh"), directory], env=env, timeout=120)
        if old is None:
            os.environ.pop("SLURM_CONF", None)
        else:
            os.environ["SLURM_CONF"] = old
        shutil.rmtree(directory, ignore_errors=True)


@dataclass(frozen=True)
class GatewayService:
    """Where a running test gateway listens, and how to log in to it."""

    address: str
    proxy_address: str
    user: str = "alice"

    def auth(self):
        from dask_gateway import BasicAuth

        return BasicAuth(self.user, "")

    def kwargs(self):
        """The arguments of ``ElasticCluster.gateway`` / ``dask_gateway.Gateway``."""
        return {"address": self.address, "proxy_address": self.proxy_address, "auth": self.auth()}

    def list_clusters(self, user=None):
        """The running clusters of ``user`` (default: the tests' own user)."""
        from dask_gateway import BasicAuth, Gateway

        from elastic_nb.cluster.gateway import quiet_gateway

        kwargs = self.kwargs()
        if user is not None:
            kwargs["auth"] = BasicAuth(user, "")
        gateway = Gateway(**kwargs)
        try:
            return gateway.list_clusters()
        finally:
            gateway.close()
            quiet_gateway(gateway)

    def any_clusters(self):
        """Whether the tests' user, or this process's user (dask-gateway's default login,
        the panel's and the notebook's), has a cluster running."""
        return any(self.list_clusters(user) for user in {self.user, getpass.getuser()})


def gateway_missing() -> str | None:
    """Why a gateway server cannot run here, or None."""
    try:
        import dask_gateway  # noqa: F401
        import dask_gateway_server  # noqa: F401
    except ImportError:
        return (
            'dask-gateway is not installed (pip install "elastic-nb[gateway]" '
            '"dask-gateway-server[local]")'
        )
    return None


def _free_base_port():
    """A port P with P, P+1 and P+786 free (the gateway's HTTP, API and TLS proxy ports)."""
    for _ in range(50):
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            base = s.getsockname()[1]
        if base + 786 < 65535 and all(_port_free(base + d) for d in (0, 1, 786)):
            return base
    raise RuntimeError("no free ports for the gateway")


def _port_free(port):
    with socket.socket() as s:
        try:
            s.bind(("127.0.0.1", port))
        except OSError:
            return False
    return True


def _healthy(url):
    try:
        with urllib.request.urlopen(url, timeout=2) as response:
            return response.status == 200
    except OSError:
        return False


@contextlib.contextmanager
def _gateway():
    """A running dask-gateway server on 127.0.0.1; fails if a cluster is left on it."""
    reason = gateway_missing()
    if reason:
        skip_unless_required(reason)
    port = _free_base_port()
    directory = tempfile.mkdtemp(prefix="enb-gateway-")
    env = {**os.environ, "ENB_GATEWAY_PORT": str(port), "ENB_GATEWAY_DIR": directory}
    log = open(Path(directory) / "server.log", "wb")  # noqa: SIM115 (closed below)
    server = subprocess.Popen(
        [sys.executable, "-m", "dask_gateway_server", "-f", str(SERVICES / "gateway_config.py")],
        env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True,
    )  # fmt: skip
    service = GatewayService(f"http://127.0.0.1:{port}", f"gateway://127.0.0.1:{port + 786}")
    try:
        wait_until(lambda: _healthy(f"{service.address}/api/health"), 60, "gateway not healthy")
        yield service
        wait_until(lambda: not service.any_clusters(), 30, "gateway clusters left running")
    finally:
        _stop(server)
        log.close()
        shutil.rmtree(directory, ignore_errors=True)


def _stop(process, timeout=30):
    """SIGTERM (the gateway then shuts its clusters down), then SIGKILL the group."""
    with contextlib.suppress(ProcessLookupError):
        process.send_signal(signal.SIGTERM)
    with contextlib.suppress(subprocess.TimeoutExpired):
        process.wait(timeout)
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(process.pid, signal.SIGKILL)
    process.wait(10)
