"""Lifecycle hygiene: a launch that cannot work fails clearly and starts nothing; a cluster
elastic_nb started is shut down however its owner goes away (close, garbage collection,
interpreter exit), and one it only connected to never is."""

import gc
import socket
import subprocess
import sys
import textwrap
import weakref

import psutil
import pytest
from distributed import LocalCluster
from distributed.system import MEMORY_LIMIT
from helpers import assert_no_new_worker_processes, is_interpreter_helper, worker_pids

from elastic_nb import ElasticCluster
from elastic_nb.cluster import MIN_WORKER_MEMORY, check_local_capacity


@pytest.fixture
def taken_port():
    with socket.socket() as holder:
        holder.bind(("127.0.0.1", 0))
        holder.listen()
        yield holder.getsockname()[1]


@pytest.mark.parametrize("which", ["scheduler_port", "dashboard_port"])
def test_a_port_in_use_is_named_and_nothing_starts(taken_port, which):
    before = worker_pids()
    with pytest.raises(OSError, match=rf"{which} {taken_port} on 127.0.0.1 is already in use"):
        ElasticCluster(minimum=1, maximum=1, **{which: taken_port})
    assert worker_pids() == before


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"memory_limit": "1kB"}, "memory_limit must be at least 256 MiB per worker"),
        ({"memory_limit": "100 TiB"}, "is more than this machine's memory"),
        ({"maximum": 10**6}, "maximum must be at most"),
        ({"maximum": 1000, "memory_limit": "1GiB"}, "maximum must be at most"),
        ({"scheduler_port": 70_000}, "scheduler_port must be <= 65535"),
        ({"dashboard_port": -1}, "dashboard_port must be >= 0"),
    ],
)
def test_a_launch_the_machine_cannot_hold_is_refused_before_anything_starts(kwargs, match):
    before = worker_pids()
    with pytest.raises(ValueError, match=match):
        ElasticCluster(**{"minimum": 1, **kwargs})
    assert worker_pids() == before


def test_capacity_rules_follow_the_machine():
    check_local_capacity(4, 1, MIN_WORKER_MEMORY)  # the smallest worker that can start
    with pytest.raises(ValueError, match="at least 256 MiB"):
        check_local_capacity(1, 1, MIN_WORKER_MEMORY - 1)
    most = int(MEMORY_LIMIT // MIN_WORKER_MEMORY)  # what this machine's memory holds
    check_local_capacity(most, 1, MIN_WORKER_MEMORY)
    with pytest.raises(ValueError, match=f"maximum must be at most {most} on this machine"):
        check_local_capacity(most + 1, 1, MIN_WORKER_MEMORY)
    with pytest.raises(ValueError, match="more than this machine's memory"):
        check_local_capacity(1, 1, int(MEMORY_LIMIT) + 1)


def test_a_running_cluster_refuses_an_impossible_width_and_stays_usable(cluster):
    with pytest.raises(ValueError, match="maximum must be at most"):
        cluster.scale(10**6)
    with pytest.raises(ValueError, match="maximum must be at most"):
        cluster.adapt(maximum=10**6)
    assert cluster.client.submit(sum, [1, 2]).result(timeout=30) == 3


def _owned_cluster_pids():
    before = worker_pids()
    cluster = ElasticCluster(minimum=1, maximum=1, policy="training")
    cluster.wait_for_workers(1)
    started = worker_pids() - before
    assert started
    return cluster, before


def test_garbage_collection_closes_a_cluster_elastic_nb_started():
    cluster, before = _owned_cluster_pids()
    collected = weakref.ref(cluster)
    del cluster
    gc.collect()
    assert collected() is None  # nothing (policy, lease book, loop) keeps it alive
    assert_no_new_worker_processes(before, timeout=30)


def test_collection_inside_the_event_loop_does_not_hang_it():
    """The last reference can drop on the client's own IO-loop thread (a callback holding
    it); closing must then be scheduled, not waited for there."""
    cluster, before = _owned_cluster_pids()
    holder = [cluster]
    loop = cluster.client.loop
    del cluster
    loop.add_callback(holder.clear)
    assert_no_new_worker_processes(before, timeout=30)


def test_garbage_collection_never_closes_a_cluster_it_only_connected_to():
    with LocalCluster(
        n_workers=1, processes=True, host="127.0.0.1", dashboard_address="127.0.0.1:0"
    ) as local:
        connected = ElasticCluster(address=local.scheduler_address)
        client = connected.client
        del connected
        gc.collect()
        assert client.status == "closed"  # its own client is closed ...
        assert local.status.name == "running"  # ... the cluster it observed is not
        assert len(local.scheduler_info["workers"]) == 1


EXIT_WITHOUT_CLOSING = textwrap.dedent(
    """
    from elastic_nb import ElasticCluster

    if __name__ == "__main__":
        cluster = ElasticCluster(minimum=2, maximum=2, policy="training")
        cluster.wait_for_workers(2)
        print("ready", flush=True)
        # no close(): the interpreter exits with the cluster running
    """
)


def test_interpreter_exit_closes_a_cluster_nobody_closed(tmp_path):
    script = tmp_path / "leave_it_running.py"
    script.write_text(EXIT_WITHOUT_CLOSING)
    process = psutil.Popen([sys.executable, str(script)], stdout=subprocess.PIPE, text=True)
    assert process.stdout.readline().strip() == "ready"
    workers = [p for p in process.children(recursive=True) if not is_interpreter_helper(p)]
    assert len(workers) >= 2
    assert process.wait(timeout=60) == 0
    _, alive = psutil.wait_procs(workers, timeout=30)
    assert [p for p in alive if p.status() != psutil.STATUS_ZOMBIE] == []
