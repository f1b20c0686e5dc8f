"""How local worker processes start: from distributed's fork server, for the clusters
elastic_nb starts only.

A spawned worker imports Python, numpy and distributed from scratch (0.5 s of CPU each:
8 workers take 4 s to join on 2 cores); a fork of a server that imported them once takes
0.06 s. Elastic scaling lives on that latency.

distributed picks the start method from ``distributed.worker.multiprocessing-method`` each
time a Nanny creates a worker process (``distributed.utils.get_mp_context``, called in
``WorkerProcess.start``): at launch, at every adaptive scale-up and at every restart of a
killed worker. Setting the key around the launch alone would miss the later ones, and
setting it for good would change every other cluster of the process. So the Nannies of an
elastic_nb cluster (:class:`StartMethodNanny`) hold the value only while they create their
worker process (:func:`temporary_config`) and give the user's value back right after.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import logging
import multiprocessing
import os
import threading

import dask.config
from distributed import Nanny

from .._validation import check_choice

KEY = "distributed.worker.multiprocessing-method"

#: What every elastic_nb worker imports sooner or later (dask.array alone is 0.4 s of CPU),
#: imported once in the fork server instead of once per worker.
WORKER_PRELOAD = (
    "dask.array",
    "elastic_nb.engine",
    "elastic_nb.linear",
    "elastic_nb.families",
    "elastic_nb.datasets",
)

_held_lock = threading.Lock()
_held: dict = {}  # key -> [value, holders, the dask.config.set that put it there]


@contextlib.contextmanager
def temporary_config(key, value):
    """Hold one dask config value while at least one caller is inside.

    Callers may overlap (several Nannies start their workers at once on one event loop,
    each suspended inside): the first one in sets ``value``, the last one out restores what
    was there before — unless someone changed the key meanwhile, whose value then stays.
    An overlapping caller that asks for another value gets the one already held.
    """
    with _held_lock:
        held = _held.get(key)
        if held is None:
            held = _held[key] = [value, 0, dask.config.set({key: value})]
        held[1] += 1
    try:
        yield held[0]
    finally:
        with _held_lock:
            held[1] -= 1
            if held[1] == 0:
                del _held[key]
                if dask.config.get(key, None) == held[0]:
                    held[2].__exit__(None, None, None)


def _shipped_default():
    """distributed's own default for :data:`KEY` (``"spawn"``)."""
    return dask.config.get(KEY, None, config=dask.config.merge(*dask.config.defaults))


def resolve_start_method(start_method="auto"):
    """The start method local workers get, or None to leave it to dask's config.

    Parameters
    ----------
    start_method : "auto", None, "forkserver", "spawn" or "fork"
        ``"auto"``: the fork server where the platform has one, unless the user configured
        ``distributed.worker.multiprocessing-method`` themselves (their value wins); None:
        whatever dask's config says; a method name: that one.

    Raises
    ------
    ValueError
        For a method this platform does not have.
    """
    if start_method is None:
        return None
    methods = multiprocessing.get_all_start_methods()
    check_choice("start_method", start_method, ("auto", None, *methods))
    if start_method != "auto":
        return start_method
    if "forkserver" not in methods or dask.config.get(KEY, None) != _shipped_default():
        return None
    return "forkserver"


@functools.cache  # once per process: it counts only before the fork server starts
def _preload_forkserver():
    """Have the fork server import :data:`WORKER_PRELOAD` besides distributed's own list.

    Called with :data:`KEY` held at ``"forkserver"``: distributed sets its list the first
    time it makes a fork-server context, and ours, a superset, replaces it.
    """
    from distributed.utils import get_mp_context
    from distributed.versions import optional_packages, required_packages

    get_mp_context().set_forkserver_preload(
        ["distributed", *required_packages, *optional_packages, *WORKER_PRELOAD]
    )


#: Bytes glibc keeps at the top of a worker's heap when it trims it (``MALLOC_TOP_PAD_``).
HEAP_TOP_PAD = 32 * 2**20


def with_heap_top_pad(environ):
    """``environ`` (a worker's pre-spawn environment) with ``MALLOC_TOP_PAD_`` set, unless
    the user set it.

    distributed sets ``MALLOC_TRIM_THRESHOLD_=65536`` so that workers give freed memory
    back to the system. Setting it also turns off glibc's adaptive mmap threshold, so every
    temporary array of a chunk kernel over 128 KiB is a fresh ``mmap`` whose pages fault in
    again on every call: the logistic Newton kernel on 12,500 x 32 took 3.4 ms in a worker
    against 1.6 ms in a plain process. Keeping 32 MiB at the heap's top brings it back to
    1.4 ms (1.5 ms at 100,000 rows with 64 MiB; measured with ``MALLOC_TRIM_THRESHOLD_`` set
    as distributed sets it), for at most 32 MiB more resident memory per worker. Workers
    forked from a fork server take the server's environment: one started before
    elastic_nb's first cluster keeps its own.
    """
    user_set = "MALLOC_TOP_PAD_" in environ or "MALLOC_TOP_PAD_" in os.environ
    if "MALLOC_TRIM_THRESHOLD_" not in environ or user_set:
        return environ
    return {**environ, "MALLOC_TOP_PAD_": str(HEAP_TOP_PAD)}


def _cancelled_exit_handler(record) -> bool:
    """Whether ``record`` is distributed's log of a Nanny's own graceful close being
    cancelled as it runs (``_on_worker_exit``, wrapped in ``log_errors``, which logs the
    ``CancelledError`` at ERROR while a retired worker's nanny closes)."""
    exc = record.exc_info[1] if record.exc_info else None
    if not isinstance(exc, asyncio.CancelledError):
        return False
    tb = exc.__traceback__
    while tb is not None:
        if tb.tb_frame.f_code.co_name == "_on_worker_exit":
            return True
        tb = tb.tb_next
    return False


class QuietRetirement(logging.Filter):
    """Drop :func:`_cancelled_exit_handler` records: a normal scale-down would otherwise
    print a traceback into the notebook (distributed 2026.8 logs its own cancellation). Only
    that record is dropped; every other nanny error still reaches the log."""

    def filter(self, record):
        return not _cancelled_exit_handler(record)


def quiet_retirements():
    """Add :class:`QuietRetirement` to distributed's nanny logger, once per process."""
    nanny_logger = logging.getLogger("distributed.nanny")
    if not any(isinstance(f, QuietRetirement) for f in nanny_logger.filters):
        nanny_logger.addFilter(QuietRetirement())


class StartMethodNanny(Nanny):
    """A Nanny that creates its worker process with its own multiprocessing start method.

    Parameters
    ----------
    start_method : str or None
        From :func:`resolve_start_method`; None leaves dask's config alone. The other
        arguments are :class:`distributed.Nanny`'s.

    State
    -----
    start_method : str or None
        Held in dask's config (:func:`temporary_config`) from this Nanny's start to its
        close, so its worker and every restart of it get this method.
    _held : context manager or None
        The hold, while the Nanny runs.
    pre_spawn_env : dict
        distributed's, plus :data:`HEAP_TOP_PAD` (see :func:`with_heap_top_pad`).
    """

    def __init__(self, *args, start_method=None, **kwargs):
        self.start_method = start_method
        self._held = None
        super().__init__(*args, **kwargs)
        self.pre_spawn_env = with_heap_top_pad(self.pre_spawn_env)

    async def start_unsafe(self):
        """Hold the start method from this Nanny's start to its close: distributed reads it
        again (``get_mp_context``) at points of a restart outside ``instantiate``."""
        quiet_retirements()
        if self.start_method is not None:
            self._held = temporary_config(KEY, self.start_method)
            if self._held.__enter__() == "forkserver":
                _preload_forkserver()
        elif dask.config.get(KEY, None) == "forkserver":
            _preload_forkserver()  # the user's own fork server, preloaded as ours is
        return await super().start_unsafe()

    async def close(self, *args, **kwargs):
        try:
            return await super().close(*args, **kwargs)
        finally:
            held, self._held = self._held, None
            if held is not None:
                held.__exit__(None, None, None)
