"""One owner for the panel's UI state: only the updater thread changes widgets and bokeh
models; errors of a fit reach the caller; shutdown returns even while a fit hangs.

Every widget trait change (``Widget.notify_change``) and every bokeh model change
(``DocumentCallbackManager.notify_change``: property sets and streams) is recorded with its
thread and the first frame outside the libraries; a change whose frame is in elastic_nb
and whose thread is not the updater fails the test.
"""

import sys
import sysconfig
import threading
import time
from pathlib import Path

import dask.array as da
import ipywidgets
import numpy as np
import pytest
from bokeh.document.callbacks import DocumentCallbackManager
from IPython.core.interactiveshell import InteractiveShell

import elastic_nb
from elastic_nb.ui.updater import THREAD_NAME

PACKAGE = str(Path(elastic_nb.__file__).parent)
LIBRARIES = tuple({sysconfig.get_paths()["purelib"], sysconfig.get_paths()["stdlib"]})


def _changed_by():
    """The file of the first frame outside the libraries: who made this change."""
    frame = sys._getframe(2)
    while frame is not None:
        path = frame.f_code.co_filename
        if not path.startswith(LIBRARIES) and not path.startswith("<"):
            return path
        frame = frame.f_back
    return None


@pytest.fixture
def changes(monkeypatch):
    """(thread name, what, file) of every widget and bokeh change while the test runs."""
    seen = []
    widget_change, bokeh_change = (
        ipywidgets.Widget.notify_change,
        DocumentCallbackManager.notify_change,
    )

    def on_widget(self, change):
        seen.append((threading.current_thread().name, f"{type(self).__name__}.{change['name']}",
                     _changed_by()))  # fmt: skip
        return widget_change(self, change)

    def on_bokeh(self, model, attr, *args, **kwargs):
        seen.append((threading.current_thread().name, f"{type(model).__name__}.{attr}",
                     _changed_by()))  # fmt: skip
        return bokeh_change(self, model, attr, *args, **kwargs)

    monkeypatch.setattr(ipywidgets.Widget, "notify_change", on_widget)
    monkeypatch.setattr(DocumentCallbackManager, "notify_change", on_bokeh)
    return seen


def _ours(changes):
    return [c for c in changes if c[2] is not None and c[2].startswith(PACKAGE)]


@pytest.mark.slow
def test_only_the_updater_changes_widgets_and_plots(panel, changes):
    panel.launch()
    panel.iterations.value = 10_000  # the user's own change: not elastic_nb's
    panel.train()
    deadline = time.monotonic() + 60
    while panel.trainer.done < 3:
        assert time.monotonic() < deadline, panel.notice
        time.sleep(0.05)
    panel.pause()
    time.sleep(0.5)
    panel.resume()
    panel.stop()
    panel.wait(60)
    panel.shutdown()
    ours = _ours(changes)
    assert {what.split(".")[0] for _, what, _ in ours} >= {"Button", "ColumnDataSource", "HTML"}
    elsewhere = sorted({(thread, what) for thread, what, _ in ours if thread != THREAD_NAME})
    assert elsewhere == [], f"changed outside the updater: {elsewhere}"
    users = [c for c in changes if c[1] == "BoundedIntText.value" and c not in ours]
    assert users and users[0][0] == "MainThread"  # the recorder tells the two apart


@pytest.mark.slow
def test_plots_stay_live_while_a_cell_blocks_in_train(panel):
    panel.launch()
    panel.rows.value, panel.iterations.value = 200_000, 60
    lengths = []
    stop = threading.Event()

    def watch():  # what the browser would receive, read while the caller blocks
        while not stop.is_set():
            lengths.append(len(panel.plots.loss_source.data["loss"]))
            time.sleep(0.02)

    watcher = threading.Thread(target=watch)
    watcher.start()
    try:
        model = panel.train(wait=True)
    finally:
        stop.set()
        watcher.join()
    assert model.n_iter_ == 60
    assert any(0 < n < 60 for n in lengths), "no rows reached the plot until the fit ended"
    assert len(panel.plots.loss_source.data["loss"]) == 60


@pytest.fixture
def shell():
    """A real IPython shell, whose namespace the panel's "notebook variables" read."""
    shell = InteractiveShell.instance()
    yield shell
    InteractiveShell.clear_instance()


@pytest.mark.slow
def test_a_failing_fit_raises_in_the_caller_and_leaves_the_cluster_usable(panel, shell):
    X = da.from_array(np.full((2_000, 3), np.nan), chunks=500)
    shell.user_ns.update(X=X, y=da.zeros(2_000, chunks=500))
    panel.launch()
    panel.dataset.value = "notebook variables"
    with pytest.raises(ValueError, match="NaN|non-finite|infinity"):
        panel.train(wait=True)
    assert "enb-error" in panel.message.value and "Traceback" in panel.message.value
    assert panel.trainer.outcome == "failed" and not panel.training
    with pytest.raises(ValueError):
        panel.run("train")  # run() raises what the fit raised, too
    panel.dataset.value = "synthetic"
    model = panel.train(wait=True)  # the cluster is still usable
    assert model.n_iter_ == 10


def _sleep_then(block, seconds):
    time.sleep(seconds)
    return block


@pytest.mark.slow
def test_shutdown_returns_within_its_timeout_while_a_fit_hangs(panel, shell):
    X = da.ones((4_000, 3), chunks=1_000).map_blocks(_sleep_then, 600, meta=np.empty((0, 0)))
    shell.user_ns.update(X=X, y=da.ones(4_000, chunks=1_000))
    panel.launch()
    panel.dataset.value = "notebook variables"
    panel.train()
    time.sleep(1.0)
    assert panel.training  # waiting for chunks that take 10 minutes
    started = time.monotonic()
    panel.shutdown(timeout=10)
    assert time.monotonic() - started < 12
    assert panel.cluster is None and "cluster stopped" in panel.message.value
