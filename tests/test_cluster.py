"""ElasticCluster with real worker processes."""

import time
from urllib.parse import urlparse

import numpy as np
import pytest
from distributed import LocalCluster
from helpers import assert_no_new_worker_processes, worker_pids

from elastic_nb import ElasticCluster, LinearRegression
from elastic_nb.datasets import make_regression


@pytest.mark.parametrize(
    ("kwargs", "error", "match"),
    [
        ({"minimum": 3, "maximum": 1}, ValueError, r"maximum must be >= minimum \(3\), got 1"),
        ({"minimum": -1}, ValueError, "minimum must be >= 0"),
        ({"maximum": 0}, ValueError, "maximum must be >= 1"),
        ({"minimum": "2"}, TypeError, "minimum must be an integer"),
        ({"threads_per_worker": 0}, ValueError, "threads_per_worker must be >= 1"),
        ({"memory_limit": "lots"}, ValueError, "memory_limit must be"),
        ({"memory_limit": -5}, ValueError, "memory_limit must be > 0"),
        ({"policy": "fastest"}, ValueError, "policy must be one of"),
        ({"policy": 3}, TypeError, "policy must be"),
        ({"address": 8786}, TypeError, "address must be"),
        ({"address": "tcp://127.0.0.1:1", "cluster": object()}, ValueError, "either"),
        ({"security": "yes"}, TypeError, "security must be"),
        ({"host": 5}, TypeError, "host must be"),
    ],
)
def test_bad_arguments_fail_before_anything_starts(kwargs, error, match):
    before = worker_pids()
    with pytest.raises(error, match=match):
        ElasticCluster(**kwargs)
    assert worker_pids() == before


def test_local_cluster_binds_to_loopback_and_closes_every_process():
    before = worker_pids()
    with ElasticCluster(minimum=1, maximum=2) as cluster:
        cluster.wait_for_workers(1)
        assert urlparse(cluster.scheduler_address).hostname == "127.0.0.1"
        assert urlparse(cluster.dashboard_link).hostname == "127.0.0.1"
        workers = cluster.client.scheduler_info()["workers"]
        assert workers and all(urlparse(a).hostname == "127.0.0.1" for a in workers)
        assert len(worker_pids() - before) >= 1
        assert cluster.adaptive is not None
    assert cluster.closed
    assert_no_new_worker_processes(before)


def wait_for_width(cluster, n, timeout=60):
    """Until exactly ``n`` workers are connected (a retiring one still counts at first)."""
    deadline = time.monotonic() + timeout
    while len(cluster.client.scheduler_info()["workers"]) != n:
        assert time.monotonic() < deadline, f"never reached {n} workers"
        time.sleep(0.05)


def test_scale_fixes_the_size_and_adapt_resumes(cluster):
    cluster.scale(1)
    assert cluster.adaptive is None
    wait_for_width(cluster, 1)
    cluster.scale(2)
    wait_for_width(cluster, 2)
    actions = [action for action, _ in cluster.decisions]
    assert actions[-2:] == ["scale", "scale"]
    cluster.adapt()
    assert isinstance(cluster.adaptive, cluster.policy)
    assert cluster.decisions[-1][0] == "adapt"
    wait_for_width(cluster, 2)  # the module's cluster adapts between 2 and 2
    cluster.scale(2)  # fixed again, as the other tests expect
    assert cluster.adaptive is None


def test_fit_on_the_cluster_equals_the_local_fit(cluster):
    X, y, _ = make_regression(40_000, 6, chunks=5000, bias=0.5)
    X, y = cluster.client.persist([X, y])
    on_cluster = LinearRegression(solver="gd", max_iter=50).fit(X, y)
    assert on_cluster.history_[-1]["n_workers"] == 2
    X_local, y_local = cluster.client.compute([X, y], sync=True)
    local = LinearRegression(solver="gd", max_iter=50).fit(X_local, y_local)
    np.testing.assert_allclose(on_cluster.coef_, local.coef_, rtol=1e-9)


def test_wrapping_a_cluster_or_an_address_never_closes_it():
    before = worker_pids()
    with LocalCluster(
        n_workers=1, processes=True, host="127.0.0.1", dashboard_address="127.0.0.1:0"
    ) as local:
        wrapped = ElasticCluster(cluster=local, minimum=0, maximum=1)
        wrapped.close()
        connected = ElasticCluster(address=local.scheduler_address)
        assert not connected.can_scale
        with pytest.raises(RuntimeError, match="only observes"):
            connected.scale(2)
        connected.close()
        assert local.status.name == "running"
    assert_no_new_worker_processes(before)


def test_connecting_from_a_thread_that_runs_an_event_loop():
    """A Jupyter kernel's main thread runs an asyncio loop; connecting must still work
    (and fail clearly for a dead address) there."""
    import asyncio
    import threading

    outcome = []

    async def inside_a_running_loop():
        try:
            ElasticCluster(address="tcp://127.0.0.1:9", connect_timeout=2)
        except Exception as err:
            outcome.append(err)

    thread = threading.Thread(target=asyncio.run, args=(inside_a_running_loop(),))
    thread.start()
    thread.join(60)
    assert len(outcome) == 1 and isinstance(outcome[0], ConnectionError), outcome
    assert "could not connect" in str(outcome[0])
