"""A real Jupyter server (JupyterLab or Notebook 7) on loopback, and helpers to drive its
page in headless Chromium through Playwright.

Adapted from the recipe in /work/shared/recipes/jupyterlab-browser-test.md.
"""

import contextlib
import json
import os
import re
import shutil
import socket
import subprocess
import sys
import time
import urllib.request
import uuid
from pathlib import Path
from typing import NamedTuple

import psutil
import pytest
from helpers import CHROMIUM, is_interpreter_helper
from playwright.sync_api import expect

REPO = Path(__file__).resolve().parent.parent
IN_CI = bool(os.environ.get("CI"))

#: Browser tests are slow, and skipped without Chromium, except in CI (CI set), where a
#: missing browser is a failure (see require_chromium).
MARKS = [
    pytest.mark.slow,
    pytest.mark.skipif(
        not Path(CHROMIUM).exists() and not IN_CI, reason=f"no {CHROMIUM} (and CI is not set)"
    ),
]


def require_chromium():
    if not Path(CHROMIUM).exists():
        pytest.fail(f"{CHROMIUM} is missing and CI is set: run `apt-get install -y chromium`")


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def api(url, token, method="GET"):
    req = urllib.request.Request(url, method=method, headers={"Authorization": f"token {token}"})
    with urllib.request.urlopen(req, timeout=5) as resp:
        return resp.status


def descendants(pid):
    try:
        return psutil.Process(pid).children(recursive=True)
    except psutil.NoSuchProcess:
        return []


class Server(NamedTuple):
    base: str  # http://127.0.0.1:<port>
    token: str
    pid: int  # the server's; the kernels and the Dask workers are its descendants
    log: Path  # server output, the kernels' stderr included
    root: Path  # the folder it serves


def _quiet_settings(settings):
    """No "Would you like to receive official Jupyter news?" toast over the page, and every
    cell rendered (JupyterLab 4 leaves cells out of view empty, prompts and outputs too)."""
    for extension, plugin, values in [
        ("apputils-extension", "notification", {"fetchNews": "false", "checkForUpdates": False}),
        ("notebook-extension", "tracker", {"windowingMode": "none"}),
    ]:
        folder = settings / "@jupyterlab" / extension
        folder.mkdir(parents=True, exist_ok=True)
        (folder / f"{plugin}.jupyterlab-settings").write_text(json.dumps(values))


@contextlib.contextmanager
def jupyter_server(app, tmp, notebooks):
    """Run ``python -m <app>`` (``jupyterlab`` or ``notebook``) on 127.0.0.1, serving copies
    of ``notebooks`` ({name in the server: source path}); yields a Server."""
    root = tmp / "root"  # copies, so autosave never touches the repo's notebooks
    root.mkdir()
    for name, source in notebooks.items():
        shutil.copy(source, root / name)
    if app == "jupyterlab":  # Notebook 7 fails on settings of plugins it does not load
        _quiet_settings(tmp / "settings")
    port, token = free_port(), uuid.uuid4().hex
    env = {
        **os.environ,
        "JUPYTER_CONFIG_DIR": str(tmp / "config"),
        "JUPYTER_RUNTIME_DIR": str(tmp / "runtime"),
        "JUPYTERLAB_SETTINGS_DIR": str(tmp / "settings"),
        "JUPYTERLAB_WORKSPACES_DIR": str(tmp / "workspaces"),
    }
    log = open(tmp / "server.log", "w")  # noqa: SIM115 (closed in the finally below)
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            app,
            "--no-browser",
            "--allow-root",
            "--ServerApp.ip=127.0.0.1",
            f"--ServerApp.port={port}",
            "--ServerApp.port_retries=0",
            f"--IdentityProvider.token={token}",
            f"--ServerApp.root_dir={root}",
        ],  # fmt: skip
        cwd=root,
        env=env,
        stdout=log,
        stderr=subprocess.STDOUT,
        start_new_session=True,  # Ctrl-C on pytest must not reach the server; teardown stops it
    )
    base = f"http://127.0.0.1:{port}"
    try:
        _wait_for_server(proc, base, token, tmp / "server.log")
        yield Server(base, token, proc.pid, tmp / "server.log", root)
    finally:
        _stop_server(proc, base, token)
        log.close()


def _wait_for_server(proc, base, token, log, timeout=60):
    deadline = time.monotonic() + timeout
    while True:
        if proc.poll() is not None:
            raise RuntimeError(f"the Jupyter server exited:\n{log.read_text()[-3000:]}")
        try:
            if api(f"{base}/api/status", token) == 200:
                return
        except OSError:
            pass
        if time.monotonic() > deadline:
            raise TimeoutError(f"the Jupyter server did not answer within {timeout} s")
        time.sleep(0.25)


def _stop_server(proc, base, token):
    """Graceful: the server stops its kernels; then only our own PIDs if needed."""
    children = descendants(proc.pid)  # kernels, and Dask workers if a test failed early
    try:
        api(f"{base}/api/shutdown", token, method="POST")
        proc.wait(timeout=20)
    except Exception:
        proc.terminate()
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
    _, alive = psutil.wait_procs(children, timeout=15)
    for p in alive:  # only processes this server started
        p.kill()


def watch_page(page, base):
    """A list that collects page errors, console errors and requests off our server."""
    problems = []

    def problem(kind, text):
        print(f"{kind}: {text}")
        problems.append(f"{kind}: {text}")

    page.on("pageerror", lambda exc: problem("page error", exc))
    page.on("console", lambda msg: msg.type == "error" and problem("console error", msg.text))
    # No internet here: fail fast on anything that is not our server (e.g. a CDN).
    page.route(
        re.compile(rf"^(?!{re.escape(base)}/)"),
        lambda route: (problem("blocked request", route.request.url), route.abort()),
    )
    return problems


def source_column(page, name, column):
    """The values of ``column`` in the BokehJS ColumnDataSource called ``name``."""
    return page.evaluate(
        """([name, column]) => Bokeh.documents.flatMap(doc => [...doc.all_models])
            .filter(m => m.name === name).map(m => Array.from(m.data[column] ?? []))""",
        [name, column],
    )


def wait_until(page, condition, message, timeout=60):
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            pytest.fail(message)
        page.wait_for_timeout(100)  # not time.sleep: Playwright events run during its own calls


def watch_kernel_connection(page):
    """Returns a list that gets an item once the notebook's kernel websocket answers kernel_info.

    The kernel status "Idle" can show before the notebook's session has its kernel;
    a Run command in that gap opens a "Select Kernel" dialog and runs nothing.
    """
    ready = []

    def on_frame(data):
        if b"kernel_info_reply" in (data if isinstance(data, bytes) else data.encode()):
            ready.append(True)

    def on_websocket(ws):
        if "/api/kernels/" in ws.url:
            ws.on("framereceived", on_frame)

    page.on("websocket", on_websocket)
    return ready


def source_lengths(page, name):
    """Row counts of the BokehJS ColumnDataSources called `name` in the page."""
    return page.evaluate(
        """name => Bokeh.documents.flatMap(doc => [...doc.all_models])
            .filter(m => m.name === name).map(m => m.get_length())""",
        name,
    )


def source_length(page, name):
    lengths = source_lengths(page, name)
    assert len(lengths) == 1, f"expected one BokehJS source {name!r}, found {lengths}"
    return lengths[0]


def stable_source_length(page, name, quiet=1.5, timeout=30):
    """Length of a BokehJS source once it has not changed for `quiet` seconds."""
    last, since = source_length(page, name), time.monotonic()
    deadline = since + timeout
    while time.monotonic() - since < quiet:
        if time.monotonic() > deadline:
            pytest.fail(f"BokehJS source {name!r} kept growing for {timeout} s")
        page.wait_for_timeout(200)
        now = source_length(page, name)
        if now != last:
            last, since = now, time.monotonic()
    return last


def run_new_cell(page, code, expected, timeout=30):
    """Append a code cell at the end of the notebook, run it and return its output text.

    Waits until the output matches the regex `expected` (an error output fails the
    expectation and pytest shows its text).
    """
    cells = page.locator(".jp-Notebook .jp-Cell")
    count = cells.count()
    cells.last.locator(".jp-InputPrompt").click()  # select the last cell (command mode)
    page.keyboard.press("Escape")
    page.keyboard.press("b")  # new cell below, still in command mode ...
    expect(cells).to_have_count(count + 1)
    page.keyboard.press("Enter")  # ... so enter edit mode before typing (recipe pitfall 7)
    page.keyboard.insert_text(code)  # no key events: no auto-closed brackets or quotes
    page.keyboard.press("Control+Enter")  # run in place, no extra empty cell
    output = cells.nth(count).locator(".jp-OutputArea-output")
    expect(output.first).to_contain_text(re.compile(expected), timeout=timeout * 1000)
    return output.first.inner_text()


def dask_workers(server_pid):
    """Dask worker processes of our server: the kernel's multiprocessing children (forked
    from its fork server, or spawned), not the interpreter's own helpers."""
    found = []
    for p in descendants(server_pid):
        try:
            if "multiprocessing" in " ".join(p.cmdline()) and not is_interpreter_helper(p):
                found.append(p)
        except psutil.NoSuchProcess:
            pass
    return found
