"""notebooks/01-quickstart.ipynb in a real JupyterLab, driven in headless Chromium.

1. Run the first cell only, then click Launch and Train: the workers plot's data *in the
   browser* rises to 2 running workers during the fit and falls back to the minimum within
   the policy's cooldown after it; the page lists the decisions and their reasons; the
   kernel answers other cells meanwhile; kernel and browser hold the same loss points. A
   screenshot of the panel mid-training goes to the test's temporary folder, or, with
   ELASTIC_NB_SCREENSHOT=docs/panel.png, over the README's screenshot.
2. Run All: once every cell has run the panel is still on the page with the run in its
   loss plot, says the cluster is stopped, no output holds a traceback or a log line, and
   Launch then Train work again; no Dask process outlives the kernel.

    python -m pytest tests/test_browser.py -q -s
"""

import contextlib
import os
import re
import time
from pathlib import Path

import pytest
from browser import (
    MARKS,
    REPO,
    dask_workers,
    jupyter_server,
    require_chromium,
    run_new_cell,
    source_column,
    source_length,
    stable_source_length,
    wait_until,
    watch_kernel_connection,
    watch_page,
)
from playwright.sync_api import expect

QUICKSTART = REPO / "notebooks" / "01-quickstart.ipynb"
#: Where to save the panel's screenshot (e.g. docs/panel.png to refresh the README's).
SCREENSHOT = os.environ.get("ELASTIC_NB_SCREENSHOT")
#: The training policy's default cooldown; the release after a run must come within it.
COOLDOWN = 10.0

pytestmark = MARKS


@pytest.fixture(scope="module")
def lab(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("lab")
    notebooks = {"buttons.ipynb": QUICKSTART, "run-all.ipynb": QUICKSTART}
    with jupyter_server("jupyterlab", tmp, notebooks) as server:
        yield server


def open_notebook(page, lab, name):
    kernel_ready = watch_kernel_connection(page)
    # a workspace of its own, reset: no tab of an earlier test's notebook is restored
    workspace = Path(name).stem
    page.goto(f"{lab.base}/lab/workspaces/{workspace}/tree/{name}?token={lab.token}&reset")
    wait_until(page, lambda: kernel_ready, "the notebook's kernel did not connect")


def run_menu(page, item):
    page.get_by_role("menuitem", name="Run", exact=True).click()
    page.get_by_role("menuitem", name=re.compile(rf"^{item}\b")).click()


def browser_workers(page):
    """The `workers` column of the workers plot's source, as BokehJS holds it."""
    columns = source_column(page, "enb-workers-source", "workers")
    assert len(columns) == 1, f"expected one workers source in the page, found {len(columns)}"
    return columns[0]


def _print_panel(page, lab):
    for name in ("message", "status", "decisions"):
        with contextlib.suppress(Exception):
            print(f"---- panel {name}:", page.locator(f".enb-{name}").inner_text(timeout=1000))
    print(f"---- server log (tail):\n{lab.log.read_text()[-4000:]}")


def test_the_cluster_grows_for_a_run_and_shrinks_after_it(request, tmp_path):
    require_chromium()  # before the fixtures: nothing starts in vain
    lab, page = request.getfixturevalue("lab"), request.getfixturevalue("page")
    try:
        _drive_buttons(page, lab, Path(SCREENSHOT or tmp_path / "panel.png"))
    except BaseException:  # pytest shows this output with the failure
        _print_panel(page, lab)
        raise


def _drive_buttons(page, lab, screenshot):
    problems = watch_page(page, lab.base)
    open_notebook(page, lab, "buttons.ipynb")
    panel_cell = page.locator(".jp-Notebook .jp-CodeCell", has_text="ControlPanel(")
    panel_cell.locator(".jp-InputPrompt").click()
    run_menu(page, "Run Selected Cell and Do not Advance")  # the first cell, no other
    launch, train = page.locator(".enb-launch"), page.locator(".enb-train")
    expect(launch).to_be_visible(timeout=90_000)
    prompts = page.locator(".jp-Notebook .jp-CodeCell .jp-InputPrompt").all_inner_texts()
    assert re.fullmatch(r"\[\d+\]:", prompts[0].strip()) and all(
        p.strip() == "[ ]:" for p in prompts[1:]
    ), prompts

    message, decisions = page.locator(".enb-message"), page.locator(".enb-decisions")
    panel_error = message.locator(".enb-error")
    launch.click()
    expect(message.get_by_text("cluster running at").or_(panel_error).first).to_be_visible(
        timeout=60_000
    )
    assert panel_error.count() == 0, panel_error.first.text_content()
    expect(page.locator(".enb-policy select")).to_have_value("training")
    wait_until(page, lambda: browser_workers(page), "no worker samples in the browser", 30)
    assert browser_workers(page)[-1] == 1  # the minimum, before training

    train.click()
    wait_until(
        page,
        lambda: panel_error.count() or max(browser_workers(page)) >= 2,
        "the workers plot never showed 2 running workers during the fit",
        timeout=60,
    )
    assert panel_error.count() == 0, panel_error.first.text_content()
    expect(page.locator(".enb-stop")).to_be_enabled()  # still training: it rose for the run
    wait_until(page, lambda: source_length(page, "enb-loss-source") >= 5, "no loss points", 60)
    _screenshot(page, panel_cell, screenshot)
    run_new_cell(page, 'print("answer:", 6*7)', r"answer: 42")  # the kernel is free
    expect(page.locator(".enb-stop")).to_be_enabled()

    expect(message).to_contain_text(
        re.compile(r"run-1 finished after \d+ iterations"), timeout=120_000
    )
    ended = time.monotonic()
    wait_until(
        page,
        lambda: browser_workers(page)[-1] == 1,
        "the cluster did not fall back to the minimum after the fit",
        timeout=COOLDOWN + 5,
    )
    assert time.monotonic() - ended <= COOLDOWN + 1.0  # a sample interval of slack
    expect(decisions).to_contain_text("scale-up")
    expect(decisions).to_contain_text("scale-down")
    expect(decisions).to_contain_text("the training run ended: release the workers")

    browser_points = stable_source_length(page, "enb-loss-source")
    out = run_new_cell(
        page,
        "print('kernel points:', len(panel.plots.loss_source.data['loss']), panel.model.n_iter_)",
        r"kernel points: \d+ \d+",
    )
    kernel_points, n_iter = map(int, re.findall(r"\d+", out)[:2])
    assert kernel_points == browser_points == n_iter

    page.locator(".enb-shutdown").click()
    expect(message).to_contain_text("cluster stopped", timeout=60_000)
    wait_until(page, lambda: not dask_workers(lab.pid), "workers outlived Stop cluster", 30)
    expect(page.locator(".enb-panel")).to_be_visible()
    assert not problems, problems


def _screenshot(page, panel_cell, path):
    """The panel mid-training, its plots and decisions in view (the README's picture)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tab = page.locator(".jp-SideBar.jp-mod-left .lm-TabBar-tab.lm-mod-current")
    if tab.count():
        tab.click()  # collapse the file browser: more room for the notebook
    page.set_viewport_size({"width": 1280, "height": 1900})
    panel_cell.evaluate("el => el.scrollIntoView({block: 'start'})")
    page.wait_for_timeout(800)  # let the canvases repaint after the resize and scroll
    page.screenshot(path=path)
    page.set_viewport_size({"width": 1280, "height": 1000})
    assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_run_all_leaves_a_live_panel(request):
    require_chromium()
    lab, page = request.getfixturevalue("lab"), request.getfixturevalue("page")
    try:
        _run_all(page, lab)
    except BaseException:
        _print_panel(page, lab)
        prompts = page.locator(".jp-Notebook .jp-CodeCell .jp-InputPrompt").all_inner_texts()
        print("---- prompts:", prompts)
        page.screenshot(path=Path(request.config.rootpath) / "test-results" / "run-all.png")
        raise


def _run_all(page, lab):
    problems = watch_page(page, lab.base)
    open_notebook(page, lab, "run-all.ipynb")
    run_menu(page, "Run All Cells")
    prompts = page.locator(".jp-Notebook .jp-CodeCell .jp-InputPrompt")
    wait_until(
        page,
        lambda: all(re.fullmatch(r"\[\d+\]:", p.strip()) for p in prompts.all_inner_texts()),
        "not every cell ran",
        timeout=180,
    )
    outputs = page.locator(".jp-OutputArea-output")
    assert outputs.filter(has_text="Traceback").count() == 0
    stderr = page.locator(".jp-OutputArea-output[data-mime-type='application/vnd.jupyter.stderr']")
    assert stderr.count() == 0, stderr.all_inner_texts()

    panel = page.locator(".enb-panel")
    expect(panel).to_be_visible()
    expect(page.locator(".enb-status")).to_contain_text("cluster stopped")
    expect(page.locator(".enb-launch")).to_be_enabled()
    assert stable_source_length(page, "enb-loss-source") > 0  # the run stays in the plot

    page.locator(".enb-launch").click()
    message = page.locator(".enb-message")
    expect(message).to_contain_text("cluster running at", timeout=60_000)
    page.locator(".enb-train").click()
    wait_until(page, lambda: source_length(page, "enb-loss-source") >= 3, "no new run", 60)
    page.locator(".enb-stop").click()
    expect(message).to_contain_text(re.compile(r"run-\d stopped after"), timeout=60_000)
    assert not problems, problems

    kernels = page.evaluate(
        "async token => (await (await fetch('/api/kernels?token=' + token)).json())",
        lab.token,
    )
    for kernel in kernels:  # the user closes the notebook's kernel: its workers go too
        page.evaluate(
            "async ([id, token]) => fetch(`/api/kernels/${id}?token=${token}`, {method: 'DELETE'})",
            [kernel["id"], lab.token],
        )
    wait_until(page, lambda: not dask_workers(lab.pid), "workers outlived the kernel", 30)
