"""Process checks shared by the tests."""

import time

import psutil

#: multiprocessing's helper: one per interpreter, started with the first worker process and
#: ended by the interpreter itself at exit. Not something a test leaves behind.
INTERPRETER_HELPERS = ("multiprocessing.resource_tracker",)


def _cmdline(process):
    try:
        return " ".join(process.cmdline())
    except psutil.Error:
        return ""


def descendants():
    """Live processes started (directly or not) by this test run."""
    return [
        p
        for p in psutil.Process().children(recursive=True)
        if p.is_running() and not any(h in _cmdline(p) for h in INTERPRETER_HELPERS)
    ]


def worker_processes():
    """Descendant processes of this test run that are Dask worker processes."""
    found = []
    for p in descendants():
        cmdline = _cmdline(p)
        if "multiprocessing" in cmdline or "distributed" in cmdline:
            found.append(p)
    return found


def worker_pids():
    return {p.pid for p in worker_processes()}


def assert_no_new_worker_processes(before: set, timeout=15):
    """Every worker process started since ``before`` (a set of pids) has exited."""
    deadline = time.monotonic() + timeout
    while worker_pids() - before and time.monotonic() < deadline:
        time.sleep(0.1)
    assert worker_pids() - before == set()
