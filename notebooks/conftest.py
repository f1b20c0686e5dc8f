"""nbval runs the notebooks as tests; ``06-beyond-one-machine`` needs real backends.

When that notebook is collected, a one-node SLURM cluster and a dask-gateway server are
started (``tests/services.py``) before its kernel starts, so the kernel inherits
``SLURM_CONF`` and the gateway's address (as dask config, ``DASK_GATEWAY__ADDRESS``: the way
JupyterHub deployments configure it) and no cell skips. Where a backend cannot run here, its
cell says so and skips; where ``ELASTIC_NB_REQUIRE_BACKENDS`` is set (CI), that is an error.
Both are stopped when the session ends, and a job or gateway cluster left behind fails it.
"""

import os
import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))
from services import (  # noqa: E402  (tests/ is not a package)
    REQUIRED,
    gateway_missing,
    gateway_service,
    hold,
    release_all,
    slurm_missing,
    slurm_service,
)

NEEDS_BACKENDS = "06-beyond-one-machine"


def _start(missing, service):
    reason = missing()
    if reason is None:
        return hold(service())
    if os.environ.get(REQUIRED):
        raise pytest.UsageError(f"{NEEDS_BACKENDS} needs it: {reason} ({REQUIRED} is set)")
    return None


def pytest_collection_modifyitems(session, config, items):
    if not any(NEEDS_BACKENDS in str(item.path) for item in items):
        return
    _start(slurm_missing, slurm_service)
    gateway = _start(gateway_missing, gateway_service)
    if gateway is not None:
        os.environ["DASK_GATEWAY__ADDRESS"] = gateway.address
        os.environ["DASK_GATEWAY__PROXY_ADDRESS"] = gateway.proxy_address
        os.environ["DASK_GATEWAY__AUTH__TYPE"] = "basic"


def pytest_sessionfinish(session, exitstatus):
    """Stop the services (if the tests' process check has not already): a job or a gateway
    cluster left behind, or a service that failed to stop, fails the session."""
    try:
        release_all()
    except Exception as err:
        session.exitstatus = pytest.ExitCode.TESTS_FAILED
        print(f"\n{NEEDS_BACKENDS}: stopping the backends failed: {err!r}", file=sys.stderr)
