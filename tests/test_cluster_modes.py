"""The three modes as constructors, no hidden global effects, an exception-safe
resize_workers and a race-free subscribe, with real clusters."""

import copy
import time

import dask.config
import pytest
from distributed import LocalCluster
from helpers import assert_no_new_worker_processes, worker_processes
from test_buffers import check_subscribe_while_deciding

from elastic_nb import ElasticCluster
from elastic_nb.cluster import AddressBackend, LocalBackend, ManagerBackend
from elastic_nb.cluster.forkserver import KEY, resolve_start_method, temporary_config


def poll(condition, timeout=30, what="condition"):
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, f"{what} not reached within {timeout} s"
        time.sleep(0.05)


# -------------------------------------------------------------- no global effects
def test_temporary_config_restores_the_users_value_after_overlapping_holders():
    with dask.config.set({KEY: "spawn"}):
        outer = temporary_config(KEY, "forkserver")
        inner = temporary_config(KEY, "fork")
        assert outer.__enter__() == "forkserver"
        assert inner.__enter__() == "forkserver"  # an overlapping holder gets what is held
        outer.__exit__(None, None, None)  # out of order: the first one leaves first
        assert dask.config.get(KEY) == "forkserver"  # still held by the other
        inner.__exit__(None, None, None)
        assert dask.config.get(KEY) == "spawn"
        with temporary_config(KEY, "forkserver"):
            dask.config.set({KEY: "fork"})  # the user changes it meanwhile: theirs stays
        assert dask.config.get(KEY) == "fork"


def test_the_fork_server_is_a_default_the_user_can_override():
    assert resolve_start_method(None) is None
    assert resolve_start_method("spawn") == "spawn"
    assert resolve_start_method("auto") == "forkserver"
    with dask.config.set({KEY: "fork"}):
        assert resolve_start_method("auto") is None  # the user's configured value wins
    with pytest.raises(ValueError, match="start_method must be one of"):
        resolve_start_method("thread")


def test_a_local_cluster_leaves_the_users_dask_config_as_it_was():
    config, defaults = copy.deepcopy(dask.config.config), copy.deepcopy(dask.config.defaults)
    before = {p.pid for p in worker_processes()}
    cluster = ElasticCluster.local(minimum=1, maximum=2)
    try:
        assert isinstance(cluster.backend, LocalBackend) and cluster.owns_cluster
        cluster.scale(2)  # workers started after the launch too
        cluster.wait_for_workers(2)
        # while the cluster runs its Nannies hold the start method (distributed reads it
        # again during a worker's restart); nothing else of the user's config changes
        assert dask.config.get(KEY) == "forkserver"
        running = copy.deepcopy({k: v for k, v in dask.config.config.items() if k != "scheduler"})
        running["distributed"]["worker"][KEY.split(".")[-1]] = config["distributed"]["worker"][
            KEY.split(".")[-1]
        ]
        assert running == config
        workers = [p for p in worker_processes() if p.pid not in before]
        parents = {" ".join(p.parent().cmdline()) for p in workers if p.parent() is not None}
        assert any("multiprocessing.forkserver" in c for c in parents), parents
    finally:
        cluster.close()
    assert dask.config.config == config and dask.config.defaults == defaults
    assert_no_new_worker_processes(before)


# ------------------------------------------------------------------ constructors
def test_wrap_and_connect_name_their_mode_and_never_close_the_cluster():
    with LocalCluster(n_workers=1, processes=False, dashboard_address=":0") as manager:
        wrapped = ElasticCluster.wrap(manager, minimum=0, maximum=1, policy="training")
        assert isinstance(wrapped.backend, ManagerBackend) and not wrapped.owns_cluster
        assert wrapped.can_scale and wrapped.adaptive is not None
        assert wrapped.threads_per_worker is None  # the manager's business
        with pytest.raises(RuntimeError, match="needs a local cluster"):
            wrapped.resize_workers(threads_per_worker=2)
        wrapped.close()
        observer = ElasticCluster.connect(manager.scheduler_address, timeout=5)
        assert isinstance(observer.backend, AddressBackend) and not observer.can_scale
        assert observer.cluster is None and observer.adaptive is None
        with pytest.raises(RuntimeError, match="only observes"):
            observer.adapt()
        observer.close()
        assert manager.status.name == "running"
    with pytest.raises(TypeError, match="cluster must be a distributed.deploy.Cluster"):
        ElasticCluster.wrap("tcp://127.0.0.1:8786")
    with pytest.raises(TypeError, match="address must be"):
        ElasticCluster.connect(8786)


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"threads_per_worker": 2}, "threads_per_worker configures a cluster elastic_nb starts"),
        ({"memory_limit": "1GiB"}, "memory_limit configures"),
        ({"start_method": None}, "start_method configures"),
        ({"http_api": True}, "http_api=True configures"),
    ],
)
def test_local_only_arguments_are_refused_with_an_address(kwargs, match):
    with pytest.raises(ValueError, match=match):
        ElasticCluster(address="tcp://127.0.0.1:1", **kwargs)


# --------------------------------------------------------------- resize, subscribe
def test_a_resize_that_times_out_restores_adaptive_scaling():
    """Spawned workers (not forked: a fresh interpreter, 1 s or so) cannot join within the
    0.1 s distributed's wait_for_workers polls at."""
    before = {p.pid for p in worker_processes()}
    with ElasticCluster(minimum=1, maximum=2, start_method="spawn") as cluster:
        cluster.wait_for_workers(1)
        policy = type(cluster.adaptive)
        with pytest.raises(TimeoutError):
            cluster.resize_workers(threads_per_worker=2, timeout=0.01)
        assert isinstance(cluster.adaptive, policy)  # adapting again
        assert cluster.threads_per_worker == 1  # the old resources stay
        actions = [action for action, _ in cluster.decisions]
        assert actions[-2:] == ["resize-failed", "adapt"]
        # the new worker is dropped; the cluster is back at its adaptive minimum
        poll(lambda: cluster.width == 1, timeout=60, what="one worker")
        nthreads = {w["nthreads"] for w in cluster.client.scheduler_info()["workers"].values()}
        assert nthreads == {1}
        assert cluster.client.submit(sum, [1, 2]).result(timeout=30) == 3
    assert_no_new_worker_processes(before)


def test_subscribing_to_a_cluster_while_it_decides_loses_and_repeats_none():
    with (
        LocalCluster(n_workers=0, processes=False, dashboard_address=":0") as manager,
        ElasticCluster.wrap(manager, minimum=0, maximum=1) as cluster,
    ):
        listeners = check_subscribe_while_deciding(
            lambda i: cluster._announce("target", i=i, reason="test"), cluster.subscribe
        )
        logged = [d["i"] for action, d in cluster.decisions if action == "target"]
        assert sorted(logged) == list(range(600))
        for seen in listeners:
            assert seen == logged


PRELOAD_CHECK = """
import dask
{configure}
from elastic_nb import ElasticCluster

def loaded():
    import sys
    return "elastic_nb.engine" in sys.modules

with ElasticCluster(minimum=1, maximum=1) as cluster:
    cluster.wait_for_workers(1)
    print(sorted(cluster.client.run(loaded).values()))
"""


@pytest.mark.parametrize("configure", ["", f"dask.config.set({{{KEY!r}: 'forkserver'}})"])
def test_workers_come_from_a_preloaded_fork_server(configure):
    """Whether elastic_nb picks the fork server or the user configured it themselves,
    workers are forked with the kernels already imported (else each imports them, about
    a second of CPU per worker start). A fresh interpreter: the fork server and its
    preload list are once per process."""
    import subprocess
    import sys

    script = PRELOAD_CHECK.format(configure=configure)
    done = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, timeout=120
    )
    assert done.returncode == 0, done.stderr[-2000:]
    assert done.stdout.strip().splitlines()[-1] == "[True]", done.stdout


def _record_of(function_name, error):
    """A log record with the traceback of ``error`` raised in a function of that name."""
    import logging
    import sys

    namespace = {}
    exec(f"def {function_name}(e):\n    raise e", namespace)
    try:
        namespace[function_name](error)
    except BaseException:
        exc_info = sys.exc_info()
    return logging.LogRecord("distributed.nanny", logging.ERROR, __file__, 1, "", (), exc_info)


def test_only_the_nannys_cancelled_graceful_close_is_kept_out_of_the_notebook():
    import asyncio

    from elastic_nb.cluster.forkserver import QuietRetirement

    quiet = QuietRetirement()
    assert not quiet.filter(_record_of("_on_worker_exit", asyncio.CancelledError()))
    assert quiet.filter(_record_of("_on_worker_exit", RuntimeError("real failure")))
    assert quiet.filter(_record_of("instantiate", asyncio.CancelledError()))


def test_workers_keep_a_heap_top_pad_beside_distributeds_trim_threshold(monkeypatch):
    """distributed's MALLOC_TRIM_THRESHOLD_ alone makes every large temporary a fresh mmap
    (chunk kernels 2x slower); elastic_nb's workers also get MALLOC_TOP_PAD_, unless the
    user set it."""
    import os

    from elastic_nb.cluster.forkserver import HEAP_TOP_PAD, with_heap_top_pad

    monkeypatch.delenv("MALLOC_TOP_PAD_", raising=False)
    trimmed = {"MALLOC_TRIM_THRESHOLD_": "65536"}
    assert with_heap_top_pad(trimmed)["MALLOC_TOP_PAD_"] == str(HEAP_TOP_PAD)
    assert with_heap_top_pad({"OMP_NUM_THREADS": "1"}) == {"OMP_NUM_THREADS": "1"}
    assert with_heap_top_pad({**trimmed, "MALLOC_TOP_PAD_": "0"})["MALLOC_TOP_PAD_"] == "0"
    monkeypatch.setenv("MALLOC_TOP_PAD_", "1024")
    assert "MALLOC_TOP_PAD_" not in with_heap_top_pad(trimmed)
    monkeypatch.delenv("MALLOC_TOP_PAD_")
    with ElasticCluster.local(1, 1, start_method="spawn") as cluster:
        cluster.wait_for_workers(1)
        pads = cluster.client.run(lambda: os.environ.get("MALLOC_TOP_PAD_"))
    assert list(pads.values()) == [str(HEAP_TOP_PAD)]
