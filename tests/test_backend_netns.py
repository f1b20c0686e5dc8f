"""Two "hosts" on one machine: Linux network namespaces joined by a veth pair.

The scheduler listens on 10.231.0.1 in namespace A, its worker runs in namespace B at
10.231.0.2 and reaches it over the veth link, and the notebook side (a Python process in
namespace A) connects with ``ElasticCluster.connect`` and fits. Nothing here can reach any
other address: the namespaces have no route out. Root only (skipped otherwise).
"""

import contextlib
import os
import shutil
import signal
import subprocess
import sys
import textwrap
import time
import uuid

import pytest

pytestmark = [
    pytest.mark.skipif(
        os.geteuid() != 0 or shutil.which("ip") is None,
        reason="network namespaces need root and iproute2's ip",
    ),
    pytest.mark.timeout(180),
]

SCHEDULER, WORKER = "10.231.0.1", "10.231.0.2"


def ip(*args):
    subprocess.run(["ip", *args], check=True, capture_output=True, timeout=20)


@contextlib.contextmanager
def two_hosts():
    """Namespaces A and B, linked by a veth pair, deleted afterwards (their processes too)."""
    tag = uuid.uuid4().hex[:6]
    a, b = f"enbA{tag}", f"enbB{tag}"
    ip("netns", "add", a)
    ip("netns", "add", b)
    try:
        ip("link", "add", f"va{tag}", "type", "veth", "peer", "name", f"vb{tag}")
        ip("link", "set", f"va{tag}", "netns", a)
        ip("link", "set", f"vb{tag}", "netns", b)
        ip("-n", a, "addr", "add", f"{SCHEDULER}/24", "dev", f"va{tag}")
        ip("-n", b, "addr", "add", f"{WORKER}/24", "dev", f"vb{tag}")
        for ns, dev in ((a, f"va{tag}"), (b, f"vb{tag}")):
            ip("-n", ns, "link", "set", dev, "up")
            ip("-n", ns, "link", "set", "lo", "up")
        yield a, b
    finally:
        for ns in (a, b):
            pids = subprocess.run(["ip", "netns", "pids", ns], capture_output=True, text=True)
            for pid in pids.stdout.split():
                with contextlib.suppress(ProcessLookupError):
                    os.kill(int(pid), signal.SIGKILL)
            subprocess.run(["ip", "netns", "del", ns], capture_output=True)


def in_namespace(ns, *argv, **kwargs):
    return subprocess.Popen(["ip", "netns", "exec", ns, sys.executable, *argv], **kwargs)


CLIENT = textwrap.dedent(
    f"""
    from elastic_nb import ElasticCluster, LinearRegression
    from elastic_nb.datasets import make_regression

    with ElasticCluster.connect("tcp://{SCHEDULER}:8786", timeout=20) as cluster:
        cluster.wait_for_workers(1, timeout=60)
        workers = cluster.client.scheduler_info(n_workers=-1)["workers"].values()
        hosts = sorted(w["host"] for w in workers)
        X, y, _ = make_regression(20_000, 4, chunks=5_000)
        model = LinearRegression(solver="normal").fit(X, y)
        print("hosts", *hosts)
        print("r2", round(model.score(X, y), 4))
    """
)


def test_a_client_on_one_host_fits_on_a_worker_on_another(tmp_path):
    with two_hosts() as (a, b):
        scheduler = in_namespace(
            a, "-m", "distributed.cli.dask_scheduler", "--host", SCHEDULER, "--port", "8786",
            "--dashboard-address", f"{SCHEDULER}:0", stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )  # fmt: skip
        worker = in_namespace(
            b, "-m", "distributed.cli.dask_worker", f"tcp://{SCHEDULER}:8786", "--host",
            WORKER, "--nthreads", "1", "--no-nanny", "--no-dashboard",
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
        )  # fmt: skip
        try:
            started = time.monotonic()
            client = subprocess.run(
                ["ip", "netns", "exec", a, sys.executable, "-c", CLIENT],
                capture_output=True, text=True, timeout=120, cwd=tmp_path,
            )  # fmt: skip
            assert client.returncode == 0, client.stderr[-3000:]
            assert f"hosts {WORKER}" in client.stdout, client.stdout
            assert "r2 0.99" in client.stdout or "r2 1.0" in client.stdout, client.stdout
            assert time.monotonic() - started < 120
        finally:
            for process in (worker, scheduler):
                process.kill()
                process.wait(10)


def test_a_worker_on_the_other_host_cannot_be_reached_from_outside_the_namespaces():
    """The namespaces are closed: from the test's own namespace, the scheduler's address
    answers nothing (so the test above really went over the veth link)."""
    with two_hosts() as (a, _b):
        scheduler = in_namespace(
            a, "-m", "distributed.cli.dask_scheduler", "--host", SCHEDULER, "--port", "8786",
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
        )  # fmt: skip
        try:
            from elastic_nb import ElasticCluster

            time.sleep(2)
            with pytest.raises(ConnectionError, match=SCHEDULER):
                ElasticCluster.connect(f"tcp://{SCHEDULER}:8786", timeout=2)
        finally:
            scheduler.kill()
            scheduler.wait(10)
