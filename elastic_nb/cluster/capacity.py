"""Checks a local launch must pass before any process starts.

A worker that cannot live in its memory limit is killed by its nanny as soon as it starts,
and restarted forever; a port in use fails deep inside the scheduler's start. Both are
refused here, with the argument named, before anything runs.
"""

from __future__ import annotations

import errno
import socket

from dask.system import CPU_COUNT
from dask.utils import parse_bytes
from distributed.system import MEMORY_LIMIT

from .._validation import check_int

#: Below this a worker process (Python, numpy, distributed: ~120 MB resident) would be
#: killed by its nanny as soon as it starts, and restarted forever.
MIN_WORKER_MEMORY = 256 * 2**20


def check_memory_limit(value):
    """Return ``value`` if it is a memory limit distributed understands, else raise.

    Parameters
    ----------
    value : "auto", None, int, float or str
        ``"auto"`` (distributed's share of the machine), a byte count, or a size such as
        ``"2GiB"``.

    Raises
    ------
    TypeError
        For anything but those.
    ValueError
        For a size that does not parse, is not positive or is not finite.
    """
    if value == "auto" or value is None:
        return value
    if isinstance(value, str):
        try:
            nbytes = parse_bytes(value)
        except (ValueError, OverflowError) as err:  # "1e400" overflows inside parse_bytes
            raise ValueError(
                f"memory_limit must be 'auto', a byte count or a size like '2GiB', got {value!r}"
            ) from err
    elif isinstance(value, (int, float)) and not isinstance(value, bool):
        nbytes = value
    else:
        raise TypeError(f"memory_limit must be 'auto', bytes or a size string, got {value!r}")
    if not 0 < nbytes < float("inf"):
        raise ValueError(f"memory_limit must be > 0 and finite, got {value!r}")
    return value


def worker_memory(memory_limit, threads_per_worker):
    """Bytes one local worker may use: distributed's own rule for ``"auto"``."""
    if memory_limit in ("auto", None):
        return MEMORY_LIMIT * min(1, threads_per_worker / CPU_COUNT)
    return parse_bytes(memory_limit) if isinstance(memory_limit, str) else memory_limit


def check_local_capacity(maximum, threads_per_worker=1, memory_limit="auto"):
    """Refuse a local cluster this machine cannot hold, before any process starts.

    Parameters
    ----------
    maximum : int
        Workers the cluster may grow to.
    threads_per_worker : int
        Threads of each worker (``"auto"`` memory is shared out per thread).
    memory_limit : "auto", None, int or str
        Each worker's limit, already checked by :func:`check_memory_limit`.

    Raises
    ------
    ValueError
        If a worker would get less than :data:`MIN_WORKER_MEMORY`, a worker is promised more
        than the machine (or container) has, or ``maximum`` workers with an explicit
        ``memory_limit`` do not fit in it together. CPUs may be oversubscribed, as in
        distributed.
    """
    per_worker = worker_memory(memory_limit, threads_per_worker)
    total = f"{MEMORY_LIMIT / 2**30:.1f} GiB"
    if per_worker < MIN_WORKER_MEMORY:
        raise ValueError(
            f"memory_limit must be at least {MIN_WORKER_MEMORY // 2**20} MiB per worker "
            f"(a worker process needs that much to start), got {memory_limit!r}"
        )
    if per_worker > MEMORY_LIMIT:
        raise ValueError(
            f"memory_limit {memory_limit!r} is more than this machine's memory ({total})"
        )
    floor = per_worker if memory_limit not in ("auto", None) else MIN_WORKER_MEMORY
    if maximum * floor > MEMORY_LIMIT:
        most = int(MEMORY_LIMIT // floor)
        raise ValueError(
            f"maximum must be at most {most} on this machine: {maximum} workers of "
            f"{floor / 2**30:.2f} GiB need more than its {total}"
        )


def check_port(name, host, port):
    """Return ``port`` if it is free on ``host`` (0: any port), else raise.

    Raises
    ------
    TypeError, ValueError
        If ``port`` is not an integer in [0, 65535].
    OSError
        With ``errno.EADDRINUSE``, naming ``name``, if the port is taken.
    """
    port = check_int(name, port, minimum=0)
    if port > 65535:
        raise ValueError(f"{name} must be <= 65535, got {port}")
    if port:
        with socket.socket() as probe:
            try:
                probe.bind((host, port))
            except OSError as err:
                raise OSError(
                    errno.EADDRINUSE,
                    f"{name} {port} on {host} is already in use (another cluster?); "
                    f"pass {name}=0 to pick a free port",
                ) from err
    return port
