"""Process checks and browser settings shared by the tests."""

import os
import threading
import time
from html.parser import HTMLParser

import psutil

#: multiprocessing's helpers: one each per interpreter, started with its first worker process
#: (local workers are forked from the fork server) and ended by the interpreter itself at
#: exit. Not something a test leaves behind.
INTERPRETER_HELPERS = ("multiprocessing.resource_tracker", "multiprocessing.forkserver")


def _cmdline(process):
    try:
        return " ".join(process.cmdline())
    except psutil.Error:
        return ""


def is_interpreter_helper(process):
    """One of an interpreter's own helpers. A worker forked from the fork server carries the
    server's command line, but its parent is the fork server."""
    try:
        parent = process.parent()
    except psutil.Error:
        return False
    return (
        any(h in _cmdline(process) for h in INTERPRETER_HELPERS)
        and parent is not None
        and "multiprocessing.forkserver" not in _cmdline(parent)
    )


def descendants():
    """Live processes started (directly or not) by this test run."""
    return [
        p
        for p in psutil.Process().children(recursive=True)
        if p.is_running() and not is_interpreter_helper(p)
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


#: Debian's Chromium: Playwright cannot download its own browser here.
CHROMIUM = os.environ.get("CHROMIUM", "/usr/bin/chromium")
#: Playwright adds --headless and a fresh profile; these keep Chromium off the (closed)
#: network and quiet.
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-dev-shm-usage",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]


class _Tables(HTMLParser):
    """Rows of every <table>, by the table's class."""

    def __init__(self):
        super().__init__()
        self.tables, self._rows, self._cell = {}, None, None

    def handle_starttag(self, tag, attrs):
        if tag == "table":
            self._rows = self.tables.setdefault(dict(attrs).get("class", ""), [])
        elif tag == "tr" and self._rows is not None:
            self._rows.append([])
        elif tag in ("td", "th") and self._rows is not None:
            self._cell = []

    def handle_data(self, data):
        if self._cell is not None:
            self._cell.append(data)

    def handle_endtag(self, tag):
        if tag in ("td", "th") and self._cell is not None:
            self._rows[-1].append("".join(self._cell))
            self._cell = None
        elif tag == "table":
            self._rows = None


def read_tables(html):
    parser = _Tables()
    parser.feed(html)
    return parser.tables


def async_test(fn, timeout=60):
    """Run an ``async def`` test in a thread of its own with a fresh event loop.

    distributed's ``gen_test`` runs it in the main thread, which fails with "cannot be
    called from a running event loop" once Playwright's sync API (the browser tests in the
    same session) has left its loop marked as running there.
    """
    import asyncio
    import functools
    import threading

    @functools.wraps(fn)
    def run(*args, **kwargs):
        outcome = {}

        def target():
            try:
                asyncio.run(asyncio.wait_for(fn(*args, **kwargs), timeout))
            except BaseException as error:  # handed to the test's thread below
                outcome["error"] = error

        thread = threading.Thread(target=target, name=f"async-test-{fn.__name__}")
        thread.start()
        thread.join()
        if "error" in outcome:
            raise outcome["error"]

    return run


class Peak:
    """The largest value ``measure()`` returned while the block ran, polled in a thread
    every ``every`` seconds (a cluster's width, the jobs in a queue)."""

    def __init__(self, measure, every=0.25):
        self.measure, self.every, self.most = measure, every, 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._poll, daemon=True)

    def _poll(self):
        while not self._stop.is_set():
            self.most = max(self.most, self.measure())
            self._stop.wait(self.every)

    def __enter__(self):
        self._thread.start()
        return self

    def __exit__(self, *exc):
        self._stop.set()
        self._thread.join()
