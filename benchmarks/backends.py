"""The deployment backends the elasticity benchmark runs on, and their worker start latency.

A fork of the local fork server takes a fraction of a second, a SLURM job some seconds, a
pod tens of seconds: the training policy has to know, and this measures it. SLURM and the
dask-gateway server are the real ones the tests use (``tests/services.py``), started here if
they are not running already.

    python benchmarks/elasticity.py --latency                  # start latency per backend
    python benchmarks/elasticity.py --backend slurm --workloads light --policies fixed,training
"""

from __future__ import annotations

import contextlib
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

from elastic_nb import ElasticCluster

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))
import services  # noqa: E402  (tests/services.py: the real SLURM and gateway servers)

BACKENDS = ("local", "slurm", "gateway")
#: Each SLURM job: one worker of one thread, as a local worker is.
SLURM_JOB = {"cores": 1, "memory": "1GiB", "walltime": "01:00:00"}


def _slurm_running():
    with contextlib.suppress(OSError):
        return subprocess.run(["sinfo"], capture_output=True, timeout=10).returncode == 0
    return False


@contextlib.contextmanager
def running(backend):
    """The backend's service, started for the benchmark unless it runs already; yields the
    keyword arguments its ``ElasticCluster`` constructor needs."""
    if backend == "local":
        yield {}
    elif backend == "slurm":
        if os.environ.get("SLURM_CONF") and _slurm_running():
            yield {}
        else:
            with services.slurm_service():
                yield {}
    elif backend == "gateway":
        with services.gateway_service() as gateway:
            yield gateway.kwargs()
    else:
        raise ValueError(f"backend must be one of {', '.join(BACKENDS)}, got {backend!r}")


def open_cluster(backend, minimum, maximum, policy, service):
    """An ElasticCluster on ``backend`` (``service``: what :func:`running` yielded)."""
    if backend == "local":
        return ElasticCluster(minimum=minimum, maximum=maximum, policy=policy)
    if backend == "slurm":
        return ElasticCluster.jobqueue("slurm", minimum, maximum, policy=policy, **SLURM_JOB)
    return ElasticCluster.gateway(minimum=minimum, maximum=maximum, policy=policy, **service)


def _seconds_to_width(cluster, n, timeout=120):
    start = time.monotonic()
    cluster.wait_for_width(n, timeout=timeout)
    return time.monotonic() - start


def worker_start_latency(backend, repeats=3):
    """Seconds from ``scale(1)`` to the worker being connected, ``repeats`` times on one
    cluster (back to 0 in between), and their median."""
    with running(backend) as service, open_cluster(backend, 0, 1, "default", service) as c:
        c.scale(0)
        c.wait_for_width(0, timeout=120)
        seconds = []
        for _ in range(repeats):
            c.scale(1)
            seconds.append(round(_seconds_to_width(c, 1), 3))
            c.scale(0)
            _seconds_to_width(c, 0)
    return {"backend": backend, "seconds": seconds, "median": statistics.median(seconds)}
