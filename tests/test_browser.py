"""Real-browser test of notebooks/01-quickstart.ipynb: JupyterLab + headless Chromium.

Starts `jupyter lab` on 127.0.0.1 with a copy of the quick-start notebook, runs the cells up
to the ControlPanel, then drives the panel with its buttons the way a user would: Launch,
Train, Stop. It checks the ipywidgets labels, the Bokeh sources inside the page, that the
kernel answers other cells while training runs, that the kernel-side loss source holds
exactly the points the browser shows, and that closing the panel stops the worker
processes. Takes a screenshot of the panel: into the test's temporary folder, or, with
ELASTIC_NB_SCREENSHOT=docs/panel.png, over the README's screenshot.

Adapted from the recipe in /work/shared/recipes/jupyterlab-browser-test.md (fixtures and
helpers copied from it). Needs /usr/bin/chromium (`apt-get install chromium`); it is
skipped without it, except in CI (CI set), where a missing browser is a failure.

    python -m pytest tests/test_browser.py -q -s
"""

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
SOURCE_NOTEBOOK = REPO / "notebooks" / "01-quickstart.ipynb"
NOTEBOOK = SOURCE_NOTEBOOK.name
#: Where to save the panel's screenshot (e.g. docs/panel.png to refresh the README's).
SCREENSHOT = os.environ.get("ELASTIC_NB_SCREENSHOT")
IN_CI = bool(os.environ.get("CI"))
#: Iterations typed into the panel: far more than the test waits for, so training is still
#: running when the test runs another cell (the test clicks Stop afterwards).
ITERATIONS = 2000

pytestmark = [
    pytest.mark.slow,
    # In CI a missing browser must fail (the test checks first), never hide behind a skip.
    pytest.mark.skipif(
        not Path(CHROMIUM).exists() and not IN_CI, reason=f"no {CHROMIUM} (and CI is not set)"
    ),
]


def _free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _api(url, token, method="GET"):
    req = urllib.request.Request(url, method=method, headers={"Authorization": f"token {token}"})
    with urllib.request.urlopen(req, timeout=5) as resp:
        return resp.status


def _descendants(pid):
    try:
        return psutil.Process(pid).children(recursive=True)
    except psutil.NoSuchProcess:
        return []


class Lab(NamedTuple):
    base: str  # http://127.0.0.1:<port>
    token: str
    pid: int  # the server's; the kernel and the Dask workers are its descendants
    log: Path  # server output, the kernel's stderr included


@pytest.fixture(scope="module")
def lab(tmp_path_factory):
    """A throw-away JupyterLab server on loopback; yields a Lab."""
    tmp = tmp_path_factory.mktemp("lab")
    root = tmp / "root"  # a copy, so autosave never touches the repo's notebook
    root.mkdir()
    shutil.copy(SOURCE_NOTEBOOK, root / NOTEBOOK)
    # No "Would you like to receive official Jupyter news?" toast over the page.
    settings = tmp / "settings" / "@jupyterlab" / "apputils-extension"
    settings.mkdir(parents=True)
    (settings / "notification.jupyterlab-settings").write_text(
        json.dumps({"fetchNews": "false", "checkForUpdates": False})
    )

    port, token = _free_port(), uuid.uuid4().hex
    env = {
        **os.environ,
        "JUPYTER_CONFIG_DIR": str(tmp / "config"),
        "JUPYTER_RUNTIME_DIR": str(tmp / "runtime"),
    }
    log = open(tmp / "server.log", "w")  # noqa: SIM115 (closed in the finally below)
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "jupyterlab",
            "--no-browser",
            "--allow-root",
            "--ServerApp.ip=127.0.0.1",
            f"--ServerApp.port={port}",
            "--ServerApp.port_retries=0",
            f"--IdentityProvider.token={token}",
            f"--ServerApp.root_dir={root}",
            f"--LabApp.user_settings_dir={tmp / 'settings'}",
            f"--LabApp.workspaces_dir={tmp / 'workspaces'}",
        ],
        cwd=root,
        env=env,
        stdout=log,
        stderr=subprocess.STDOUT,
        start_new_session=True,  # Ctrl-C on pytest must not reach the server; teardown stops it
    )
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 60
        while True:
            if proc.poll() is not None:
                raise RuntimeError(
                    f"jupyter lab exited:\n{(tmp / 'server.log').read_text()[-3000:]}"
                )
            try:
                if _api(f"{base}/api/status", token) == 200:
                    break
            except OSError:
                pass
            if time.monotonic() > deadline:
                raise TimeoutError("jupyter lab did not answer within 60 s")
            time.sleep(0.25)
        yield Lab(base, token, proc.pid, tmp / "server.log")
    finally:  # graceful: the server stops its kernels; then only our own PIDs if needed
        children = _descendants(proc.pid)  # kernel, and Dask workers if the test failed early
        try:
            _api(f"{base}/api/shutdown", token, method="POST")
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
        log.close()


# ------------------------------------------------------------------- helpers
def _wait_until(page, condition, message, timeout=60):
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            pytest.fail(message)
        page.wait_for_timeout(100)  # not time.sleep: Playwright events run during its own calls


def _watch_kernel_connection(page):
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


def _source_lengths(page, name):
    """Row counts of the BokehJS ColumnDataSources called `name` in the page."""
    return page.evaluate(
        """name => Bokeh.documents.flatMap(doc => [...doc.all_models])
            .filter(m => m.name === name).map(m => m.get_length())""",
        name,
    )


def _source_length(page, name):
    lengths = _source_lengths(page, name)
    assert len(lengths) == 1, f"expected one BokehJS source {name!r}, found {lengths}"
    return lengths[0]


def _stable_source_length(page, name, quiet=1.5, timeout=30):
    """Length of a BokehJS source once it has not changed for `quiet` seconds."""
    last, since = _source_length(page, name), time.monotonic()
    deadline = since + timeout
    while time.monotonic() - since < quiet:
        if time.monotonic() > deadline:
            pytest.fail(f"BokehJS source {name!r} kept growing for {timeout} s")
        page.wait_for_timeout(200)
        now = _source_length(page, name)
        if now != last:
            last, since = now, time.monotonic()
    return last


def _run_new_cell(page, code, expected, timeout=30):
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


def _dask_workers(server_pid):
    """Dask worker processes of our server: the kernel's multiprocessing children (forked
    from its fork server, or spawned), not the interpreter's own helpers."""
    found = []
    for p in _descendants(server_pid):
        try:
            if "multiprocessing" in " ".join(p.cmdline()) and not is_interpreter_helper(p):
                found.append(p)
        except psutil.NoSuchProcess:
            pass
    return found


# ------------------------------------------------------------------------ test
def test_quickstart_panel_in_jupyterlab(request, browser_name, tmp_path):
    # Reached without Chromium only in CI (see pytestmark): a failure, not an error or a skip.
    # The fixtures come after this check, so nothing is started in vain.
    if not Path(CHROMIUM).exists():
        pytest.fail(f"{CHROMIUM} is missing and CI is set: run `apt-get install -y chromium`")
    lab, page = request.getfixturevalue("lab"), request.getfixturevalue("page")
    try:
        _drive_quickstart_panel(lab, page, Path(SCREENSHOT or tmp_path / "panel.png"))
    except BaseException:  # pytest shows this output with the failure
        print("---- panel message:", _text_or_none(page.locator(".enb-message")))
        print("---- panel status:", _text_or_none(page.locator(".enb-status")))
        print(f"---- server log (tail):\n{lab.log.read_text()[-4000:]}")
        raise


def _text_or_none(locator):
    try:
        return locator.inner_text(timeout=1000)
    except Exception:
        return None


def _drive_quickstart_panel(lab, page, screenshot):
    base, token, server_pid = lab.base, lab.token, lab.pid
    problems = []  # printed as they happen (pytest shows them on failure), asserted at the end

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
    kernel_ready = _watch_kernel_connection(page)
    t0 = time.monotonic()

    def step(name):
        print(f"[{time.monotonic() - t0:6.1f} s] {name}")

    page.goto(f"{base}/lab/tree/{NOTEBOOK}?token={token}")
    _wait_until(page, lambda: kernel_ready, "the notebook's kernel did not connect")
    step("kernel connected")

    # 1. Run the cells up to and including the panel cell, and no further: the later
    #    cells would launch and train from code, and this test uses the buttons.
    panel_cell = page.locator(".jp-Notebook .jp-CodeCell", has_text="ControlPanel(")
    expect(panel_cell).to_have_count(1)
    panel_cell.locator(".jp-InputPrompt").click()  # select it (command mode)
    # JupyterLab 4's Run menu has no "selected and all above": run the cells above, then it.
    # Both go through the Run menu (no keyboard focus to get wrong); the kernel queues them.
    for item in ("Run All Above Selected Cell", "Run Selected Cell and Do not Advance"):
        page.get_by_role("menuitem", name="Run", exact=True).click()
        page.get_by_role("menuitem", name=re.compile(rf"^{item}\b")).click()

    launch = page.locator(".enb-launch")
    traceback = page.locator(".jp-OutputArea-output", has_text="Traceback (most recent call last)")
    dialog = page.locator(".jp-Dialog")
    expect(launch.or_(traceback).or_(dialog).first).to_be_visible(timeout=90_000)
    assert dialog.count() == 0, f"JupyterLab dialog: {dialog.first.inner_text()}"
    assert traceback.count() == 0, traceback.first.inner_text()
    step("panel shown")

    # The panel cell and every code cell above it ran; none below it did.
    expect(panel_cell.locator(".jp-InputPrompt")).to_have_text(re.compile(r"\[\d+\]:"))
    code_cells = page.locator(".jp-Notebook .jp-CodeCell")
    texts = code_cells.all_inner_texts()
    prompts = [p.strip() for p in code_cells.locator(".jp-InputPrompt").all_inner_texts()]
    at = next(i for i, text in enumerate(texts) if "ControlPanel(" in text)
    assert all(re.fullmatch(r"\[\d+\]:", p) for p in prompts[: at + 1]), prompts
    assert len(prompts) > at + 1 and all(p == "[ ]:" for p in prompts[at + 1 :]), prompts

    shutdown = page.locator(".enb-shutdown")
    train = page.locator(".enb-train")
    stop = page.locator(".enb-stop")
    workers = page.locator(".enb-workers")
    message = page.locator(".enb-message")
    progress_bar = page.locator(".enb-progress .progress-bar")
    expect(launch).to_have_text("Launch")
    expect(launch).to_be_enabled()
    expect(shutdown).to_have_text("Stop cluster")
    expect(shutdown).to_be_disabled()
    expect(train).to_have_text("Train")
    expect(train).to_be_disabled()
    expect(stop).to_have_text("Stop")
    expect(workers).to_have_text("workers: 0")

    # 2. Launch: the adaptive cluster starts, the labels and the workers plot follow.
    # A panel error (<details class="enb-error">, traceback folded) fails at once, with its text.
    panel_error = message.locator(".enb-error")

    def no_panel_error():
        assert panel_error.count() == 0, f"panel error: {panel_error.first.text_content()}"

    launch.click()
    expect(message.get_by_text("cluster running at").or_(panel_error).first).to_be_visible(
        timeout=60_000
    )
    no_panel_error()
    expect(workers).to_have_text(re.compile(r"workers: [1-9]\d*"), timeout=60_000)
    expect(launch).to_be_disabled()
    expect(shutdown).to_be_enabled()
    expect(train).to_be_enabled()
    expect(page.locator(".enb-workers-plot .enb-workers-figure canvas").first).to_be_visible()
    expect(page.locator(".enb-loss-plot .enb-loss-figure canvas").first).to_be_visible()
    _wait_until(
        page,
        lambda: _source_length(page, "enb-workers-source") >= 2,
        "the workers plot got no samples in the browser",
        timeout=30,
    )
    assert len(_dask_workers(server_pid)) >= 1, "the panel reports workers, but none run"
    step("cluster up: " + workers.inner_text())

    # 3. Train for many iterations (the field syncs to the kernel on Enter).
    iterations = page.locator(".enb-iterations input")
    iterations.fill(str(ITERATIONS))
    iterations.press("Enter")
    train.click()
    _wait_until(
        page,
        lambda: panel_error.count() or _source_length(page, "enb-loss-source") >= 3,
        "the loss plot got fewer than 3 points in the browser",
        timeout=120,
    )
    no_panel_error()
    expect(message).to_contain_text("training run-1")
    expect(stop).to_be_enabled()
    _wait_until(
        page,
        lambda: progress_bar.evaluate("el => parseFloat(el.style.width) || 0") > 0,
        "the progress bar did not move",
        timeout=30,
    )
    expect(page.locator(".enb-status")).to_contain_text("loss:")
    step(f"training: {_source_length(page, 'enb-loss-source')} loss points in the browser")

    # 4. The kernel runs other cells while the fit runs in its background thread.
    started = time.monotonic()
    _run_new_cell(page, 'print("answer:", 6*7)', r"answer: 42")
    step(f"other cell answered in {time.monotonic() - started:.1f} s")
    expect(stop).to_be_enabled()  # so the fit was still running when the cell answered
    assert "finished" not in message.inner_text()

    # 5. Stop ends the fit after the current iteration.
    stop.click()
    expect(message).to_contain_text(
        re.compile(r"run-1 stopped after \d+ iterations"), timeout=60_000
    )
    no_panel_error()
    n_iter = int(re.search(r"stopped after (\d+) iterations", message.inner_text()).group(1))
    assert 3 <= n_iter < ITERATIONS
    expect(stop).to_be_disabled()
    expect(train).to_be_enabled()
    step(f"stopped after {n_iter} iterations")

    # 6. Kernel-side data equal browser-side data: the panel drops jupyter_bokeh's echo of
    #    streamed rows, which would otherwise double the kernel-side source. (Here the kernel
    #    is idle when the echoes arrive; the `loss_source.data = ...` echo applied late, while a
    #    cell runs, is another matter, which this button-driven test does not exercise.)
    browser_points = _stable_source_length(page, "enb-loss-source")
    out = _run_new_cell(
        page,
        "print('kernel points:', len(panel.plots.loss_source.data['loss']),"
        " panel.model.n_iter_, len(panel.monitor.of_kind('iteration')))",
        r"kernel points: \d+ \d+ \d+",
    )
    kernel_points, model_iter, events = map(int, re.findall(r"\d+", out)[:3])
    assert kernel_points == browser_points == model_iter == events == n_iter, (
        f"kernel source {kernel_points}, browser source {browser_points}, "
        f"model {model_iter}, monitor {events}, message {n_iter}"
    )
    step(f"kernel and browser both hold {browser_points} loss points")

    # 7. A screenshot (the README's): the panel with both plots holding data.
    screenshot.parent.mkdir(parents=True, exist_ok=True)
    file_browser_tab = page.locator(".jp-SideBar.jp-mod-left .lm-TabBar-tab.lm-mod-current")
    if file_browser_tab.count():
        file_browser_tab.click()  # collapse the file browser: more room for the notebook
    panel_cell.evaluate("el => el.scrollIntoView({block: 'start'})")  # its code, then the panel
    page.set_viewport_size({"width": 1280, "height": 1750})  # the whole panel, plots too
    panel_cell.evaluate("el => el.scrollIntoView({block: 'start'})")
    page.wait_for_timeout(800)  # let the canvases repaint after the resize and scroll
    page.screenshot(path=screenshot, full_page=True)
    assert screenshot.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"

    # 8. Closing the panel closes the cluster and its worker processes.
    _run_new_cell(
        page, "panel.close(); print('cluster after close:', panel.cluster)", r"after close: None"
    )
    _wait_until(
        page,
        lambda: not _dask_workers(server_pid),
        "Dask worker processes still run after panel.close()",
        timeout=30,
    )
    expect(page.locator(".enb-panel")).to_have_count(0)  # the widget is closed too
    step("panel closed")
    assert not problems, problems
