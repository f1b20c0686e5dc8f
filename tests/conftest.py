import psutil
import pytest
from helpers import (
    CHROMIUM,
    CHROMIUM_ARGS,
    assert_no_new_worker_processes,
    descendants,
    worker_pids,
)
from services import gateway_service, release_all, slurm_service

from elastic_nb import ControlPanel, ElasticCluster


def _wait_gone(processes, timeout):
    _, alive = psutil.wait_procs(processes, timeout=timeout)
    return [p for p in alive if p.is_running() and p.status() != psutil.STATUS_ZOMBIE]


@pytest.fixture(scope="session", autouse=True)
def no_orphan_processes():
    """The whole run must leave no process behind: workers, schedulers, servers, browsers.
    The backends the notebooks' hook holds for the session are stopped first (their own
    check fails if a job or a gateway cluster was left)."""
    yield
    left = None
    try:
        release_all()
    except AssertionError as err:
        left = str(err)
    alive = _wait_gone(descendants(), timeout=15)
    if alive:
        described = [f"{p.pid}: {' '.join(p.cmdline()[:6])}" for p in alive]
        for p in alive:
            p.kill()
        pytest.fail(f"processes left running after the tests: {described}")
    if left:
        pytest.fail(left)


@pytest.fixture(scope="module")
def cluster():
    """One real two-worker local cluster (fixed size) shared by a test module."""
    with ElasticCluster(minimum=2, maximum=2) as elastic:
        elastic.scale(2)
        elastic.wait_for_workers(2)
        yield elastic


@pytest.fixture
def panel():
    """A small control panel; closing it must take every worker process it started."""
    before = worker_pids()
    panel = ControlPanel(rows=40_000, chunk_rows=5_000, features=4, iterations=10)
    yield panel
    panel.close()
    assert_no_new_worker_processes(before)


# ------------------------------------------------------------- browser tests
@pytest.fixture(scope="session")
def browser_type_launch_args(browser_type_launch_args):
    """pytest-playwright hook: launch the system Chromium with CHROMIUM_ARGS."""
    return {**browser_type_launch_args, "executable_path": CHROMIUM, "args": CHROMIUM_ARGS}


@pytest.fixture(scope="session")
def browser_context_args(browser_context_args):
    return {**browser_context_args, "viewport": {"width": 1280, "height": 1000}}


# ------------------------------------------------------ real deployment backends
@pytest.fixture(scope="session")
def slurm():
    """A one-node SLURM cluster for the session (skips, with the reason, where it cannot
    run); fails at the end if a test left a job in the queue."""
    with slurm_service() as conf:
        yield conf


@pytest.fixture(scope="session")
def gateway():
    """A dask-gateway server on 127.0.0.1 for the session (skips where dask-gateway is not
    installed); fails at the end if a test left a cluster on it."""
    with gateway_service() as service:
        yield service
