"""The control panel's callbacks, driven from Python with a real cluster."""

import pytest
from helpers import assert_no_new_worker_processes, worker_pids

from elastic_nb import ControlPanel


@pytest.fixture
def panel():
    before = worker_pids()
    panel = ControlPanel(rows=40_000, chunk_rows=5_000, features=4, iterations=10)
    yield panel
    panel.close()
    assert_no_new_worker_processes(before)


def test_every_control_has_its_css_class(panel):
    for name in [
        "launch",
        "shutdown",
        "train",
        "stop",
        "workers",
        "progress",
        "message",
        "status",
        "minimum",
        "maximum",
        "learning-rate",
        "iterations",
        "solver",
    ]:
        widget = getattr(
            panel,
            {
                "launch": "launch_button",
                "shutdown": "shutdown_button",
                "train": "train_button",
                "stop": "stop_button",
                "learning-rate": "learning_rate",
            }.get(name, name),
        )
        assert f"enb-{name}" in widget._dom_classes


def test_minimum_above_maximum_is_a_message_not_a_traceback(panel):
    panel.minimum.value, panel.maximum.value = 3, 1
    panel.launch_button.click()  # must not raise
    assert "maximum must be &gt;= minimum (3), got 1" in panel.message.value
    assert panel.cluster is None and not panel.launch_button.disabled


def test_training_before_launch_is_a_message(panel):
    panel.train_button.click()
    assert "launch a cluster before training" in panel.message.value


@pytest.mark.slow
def test_launch_train_stop_and_bad_learning_rate(panel):
    panel.launch_button.click()
    assert panel.cluster is not None, panel.message.value
    cluster = panel.cluster

    panel.learning_rate.value = "fast"
    panel.train_button.click()
    assert "learning rate must be a number" in panel.message.value
    assert panel.cluster is cluster and not panel.training  # cluster untouched

    panel.learning_rate.value = "auto"
    model = panel.train(wait=True)
    assert model.n_iter_ == 10 and panel.progress.value == 10
    assert "finished after 10 iterations" in panel.message.value

    panel.iterations.value = 10_000
    panel.train()
    panel.stop()
    panel.wait(timeout=60)
    assert not panel.training and panel.model.n_iter_ < 10_000
    assert "stopped" in panel.message.value
    panel.plots.refresh()
    losses = [e["loss"] for e in panel.monitor.of_kind("iteration") if e["run"] == "run-2"]
    assert panel.plots.loss_source.data["loss"] == losses
