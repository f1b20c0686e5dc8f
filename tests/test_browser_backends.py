"""The panel's deployment backends in a real JupyterLab, driven in headless Chromium.

Choose SLURM (a real one-node SLURM: the session's ``slurm`` fixture) or dask-gateway (a
real gateway server: ``gateway``) in the panel's backend menu, type the backend's fields,
click Launch and Train: the workers plot *in the browser* shows a first worker, then 2
for the run, the fit finishes, and Stop cluster leaves no job in squeue and no cluster on
the gateway. The server starts after the backend, so its kernel inherits ``SLURM_CONF``.

    python -m pytest tests/test_browser_backends.py -q -s
"""

import getpass
import json
import re

import pytest
from browser import MARKS, jupyter_server, require_chromium, run_new_cell, wait_until, watch_page
from playwright.sync_api import expect
from services import squeue_jobs
from services import wait_until as wait_for
from test_browser import _print_panel, browser_workers, open_notebook, run_menu

pytestmark = [*MARKS, pytest.mark.timeout(400)]

#: What tests/test_backend_slurm.py and test_backend_gateway.py fit: enough tasks per
#: iteration that the training policy takes 2 workers for the run.
PANEL = (
    "from elastic_nb import ControlPanel\n\n"
    "panel = ControlPanel(minimum=0, maximum=2, rows=40_000, features=4, chunk_rows=5_000, "
    "iterations={iterations})\n"
    "panel"
)

#: Fields each backend shows once chosen, by CSS name: (label, default).
SLURM_SHOWN = {"threads": ("cores/job", "1"), "memory": ("memory/job", "2GiB")}
GATEWAY_SHOWN = {"address": ("gateway", ""), "cluster-options": ("options", "")}


def notebook(path, iterations):
    """A one-cell notebook that shows a panel for ``iterations`` of gradient descent."""
    cell = {
        "cell_type": "code",
        "execution_count": None,
        "id": "panel",
        "metadata": {},
        "outputs": [],
        "source": PANEL.format(iterations=iterations),
    }
    kernel = {"display_name": "Python 3", "language": "python", "name": "python3"}
    content = {"cells": [cell], "metadata": {"kernelspec": kernel}, "nbformat": 4}
    path.write_text(json.dumps({**content, "nbformat_minor": 5}))
    return path


@pytest.fixture
def slurm_lab(slurm, tmp_path_factory):
    """JupyterLab started after SLURM: the server, its kernel and the jobs' workers inherit
    the ``SLURM_CONF`` the ``slurm`` fixture set."""
    tmp = tmp_path_factory.mktemp("lab-slurm")
    with jupyter_server("jupyterlab", tmp, {"slurm.ipynb": notebook(tmp / "s.ipynb", 20)}) as lab:
        yield lab


@pytest.fixture
def gateway_lab(gateway, tmp_path_factory):
    tmp = tmp_path_factory.mktemp("lab-gateway")
    with jupyter_server("jupyterlab", tmp, {"gateway.ipynb": notebook(tmp / "g.ipynb", 15)}) as lab:
        yield lab


def gateway_clusters(gateway):
    """The clusters the kernel's user has on the gateway: the panel logs in with
    dask-gateway's default basic auth, as the current user."""
    return gateway.list_clusters(getpass.getuser())


def test_a_slurm_cluster_launched_from_the_panel_grows_for_the_run(request):
    require_chromium()  # before the fixtures: nothing starts in vain
    lab, page = request.getfixturevalue("slurm_lab"), request.getfixturevalue("page")
    conf = request.getfixturevalue("slurm")
    fields = {"memory": "1GiB", "queue": "debug", "walltime": "00:10:00"}
    try:
        _drive(page, lab, "slurm.ipynb", "SLURM", SLURM_SHOWN, fields, 20)
        out = run_new_cell(page, "import os; print('conf:', os.environ['SLURM_CONF'])", "conf:")
        assert out.strip() == f"conf: {conf}"  # the kernel's own SLURM is the fixture's
    except BaseException:
        _print_panel(page, lab)
        raise
    wait_for(lambda: not squeue_jobs(), 60, "jobs left in squeue after Stop cluster")


def test_a_gateway_cluster_launched_from_the_panel_grows_for_the_run(request):
    require_chromium()
    lab, page = request.getfixturevalue("gateway_lab"), request.getfixturevalue("page")
    gateway = request.getfixturevalue("gateway")
    fields = {"address": gateway.address, "proxy-address": gateway.proxy_address}
    try:
        _drive(page, lab, "gateway.ipynb", "dask-gateway", GATEWAY_SHOWN, fields, 15)
    except BaseException:
        _print_panel(page, lab)
        raise
    wait_for(lambda: not gateway_clusters(gateway), 30, "a gateway cluster outlived the panel")


def _drive(page, lab, name, backend, shown, fields, iterations):
    """Choose ``backend``, wait for the fields it ``shown`` ({CSS name: (label, default)}),
    type ``fields`` ({CSS name: value}), then Launch, Train, watch the workers rise to 2,
    and Stop cluster."""
    problems = watch_page(page, lab.base)
    open_notebook(page, lab, name)
    page.locator(".jp-Notebook .jp-CodeCell").first.locator(".jp-InputPrompt").click()
    run_menu(page, "Run Selected Cell and Do not Advance")
    launch, message = page.locator(".enb-launch"), page.locator(".enb-message")
    panel_error = message.locator(".enb-error")
    expect(launch).to_be_visible(timeout=90_000)

    page.locator(".enb-backend select").select_option(label=backend)  # the menu's label
    for css, (label, default) in shown.items():  # the kernel shows the backend's fields
        expect(page.locator(f".enb-{css}")).to_contain_text(label, timeout=10_000)
        expect(page.locator(f".enb-{css} input")).to_have_value(default)
    for css, value in fields.items():
        page.locator(f".enb-{css} input").fill(value)

    launch.click()
    expect(message.get_by_text("cluster running at").or_(panel_error).first).to_be_visible(
        timeout=90_000
    )
    assert panel_error.count() == 0, panel_error.first.text_content()
    wait_until(page, lambda: browser_workers(page), "no worker samples in the browser", 30)

    page.locator(".enb-train").click()
    for width in (1, 2):  # a first worker, then the second the run takes
        wait_until(
            page,
            lambda width=width: panel_error.count() or max(browser_workers(page)) >= width,
            f"the workers plot never showed {width} running worker(s) during the fit",
            timeout=120,
        )
        assert panel_error.count() == 0, panel_error.first.text_content()
    expect(message).to_contain_text(
        re.compile(rf"run-1 finished after {iterations} iterations"), timeout=180_000
    )
    assert panel_error.count() == 0, panel_error.first.text_content()

    page.locator(".enb-shutdown").click()
    expect(message).to_contain_text("cluster stopped", timeout=60_000)
    expect(page.locator(".enb-workers")).to_have_text("workers: 0")
    assert not problems, problems
