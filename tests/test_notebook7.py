"""The quick-start panel in Jupyter Notebook 7 (not JupyterLab), in headless Chromium:
Launch, Train and Stop work as they do in JupyterLab."""

import re

import pytest
from browser import (
    MARKS,
    REPO,
    dask_workers,
    jupyter_server,
    require_chromium,
    source_length,
    wait_until,
    watch_kernel_connection,
    watch_page,
)
from playwright.sync_api import expect

pytestmark = MARKS


@pytest.fixture(scope="module")
def notebook7(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("nb7")
    quickstart = {"quickstart.ipynb": REPO / "notebooks" / "01-quickstart.ipynb"}
    with jupyter_server("notebook", tmp, quickstart) as server:
        yield server


def test_launch_train_stop_in_notebook_7(request):
    require_chromium()
    server, page = request.getfixturevalue("notebook7"), request.getfixturevalue("page")
    problems = watch_page(page, server.base)
    # Notebook 7's own file browser, where no elastic_nb code runs: an error it raises there
    # too (seen: "Cannot read properties of undefined (reading 'schema')" while its settings
    # load) is Notebook's, not the panel's
    page.goto(f"{server.base}/tree?token={server.token}")
    page.wait_for_timeout(3000)
    its_own, problems[:] = set(problems), []
    kernel_ready = watch_kernel_connection(page)
    page.goto(f"{server.base}/notebooks/quickstart.ipynb?token={server.token}")
    wait_until(page, lambda: kernel_ready, "the notebook's kernel did not connect")
    expect(page.locator("#main-panel .jp-Notebook")).to_be_visible()  # Notebook 7's shell

    panel_cell = page.locator(".jp-Notebook .jp-CodeCell", has_text="ControlPanel(")
    panel_cell.locator(".jp-InputArea-editor").click()  # edit mode in the first cell
    page.keyboard.press("Control+Enter")  # run it in place, and no other cell
    launch, message = page.locator(".enb-launch"), page.locator(".enb-message")
    expect(launch).to_be_visible(timeout=90_000)

    launch.click()
    expect(message).to_contain_text("cluster running at", timeout=60_000)
    expect(page.locator(".enb-workers")).to_have_text(re.compile(r"workers: [1-9]"), timeout=30_000)
    page.locator(".enb-train").click()
    wait_until(page, lambda: source_length(page, "enb-loss-source") >= 3, "no loss points", 90)
    expect(page.locator(".enb-stop")).to_be_enabled()
    page.locator(".enb-stop").click()
    expect(message).to_contain_text(
        re.compile(r"run-1 stopped after \d+ iterations"), timeout=60_000
    )
    expect(page.locator(".enb-train")).to_be_enabled()

    page.locator(".enb-shutdown").click()
    expect(message).to_contain_text("cluster stopped", timeout=60_000)
    wait_until(page, lambda: not dask_workers(server.pid), "workers outlived Stop cluster", 30)
    assert [p for p in problems if p not in its_own] == [], problems
