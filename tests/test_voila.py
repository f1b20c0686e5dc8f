"""The panel served as an app by Voila, used in a real headless Chromium."""

import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest
from helpers import CHROMIUM
from playwright.sync_api import expect

APP = Path(__file__).parents[1] / "notebooks" / "app.ipynb"

pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(
        not Path(CHROMIUM).exists() and not os.environ.get("CI"),
        reason=f"no {CHROMIUM} (CI installs it, so there this test runs or fails)",
    ),
]


def _free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="module")
def voila(tmp_path_factory):
    root = tmp_path_factory.mktemp("voila")
    shutil.copy(APP, root / APP.name)
    port = _free_port()
    log = (root / "voila.log").open("w")
    env = {
        **os.environ,
        "JUPYTER_CONFIG_DIR": str(root / "config"),
        "JUPYTER_RUNTIME_DIR": str(root / "runtime"),
    }
    server = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "voila",
            APP.name,
            "--no-browser",
            f"--port={port}",
            "--Voila.ip=127.0.0.1",
        ],
        cwd=root,
        env=env,
        stdout=log,
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )
    try:
        deadline = time.monotonic() + 60
        while True:  # wait for the port; a GET would execute the notebook
            assert server.poll() is None, (root / "voila.log").read_text()[-3000:]
            with socket.socket() as probe:
                if probe.connect_ex(("127.0.0.1", port)) == 0:
                    break
            assert time.monotonic() < deadline, "voila did not listen within 60 s"
            time.sleep(0.2)
        yield f"http://127.0.0.1:{port}/"
    finally:
        server.send_signal(signal.SIGTERM)  # voila shuts its kernels down
        try:
            server.wait(timeout=30)
        except subprocess.TimeoutExpired:
            os.killpg(server.pid, signal.SIGKILL)
            server.wait()
        log.close()


def test_voila_serves_a_working_panel(voila, page):
    errors = []
    page.on("pageerror", lambda exc: errors.append(str(exc)))
    page.route(re.compile(rf"^(?!{re.escape(voila)})"), lambda route: route.abort())
    page.goto(voila, timeout=120_000)
    launch = page.locator(".enb-launch")
    expect(launch).to_be_visible(timeout=120_000)
    launch.click()
    expect(page.locator(".enb-workers")).to_have_text(re.compile(r"workers: [1-9]"), timeout=60_000)
    expect(page.locator(".enb-workers-plot canvas").first).to_be_visible()
    page.locator(".enb-shutdown").click()
    expect(page.locator(".enb-message")).to_contain_text("cluster stopped", timeout=60_000)
    assert not errors, errors
