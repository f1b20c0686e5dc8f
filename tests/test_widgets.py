"""The control panel's callbacks, driven from Python with a real cluster."""

import time

import pytest

from elastic_nb import MLPClassifier
from elastic_nb.ui.training import panel_data


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


def test_an_unreachable_scheduler_is_a_message_within_the_timeout(panel):
    panel.backend.value = "scheduler address"
    panel.address.value = "tcp://127.0.0.1:9"  # discard port: nothing listens
    started = time.monotonic()
    panel.launch_button.click()
    assert time.monotonic() - started < 20
    assert "⚠" in panel.message.value and "Traceback" not in panel.message.value.split("<pre>")[0]
    assert panel.cluster is None and not panel.launch_button.disabled
    panel.address.value = ""
    panel.launch_button.click()
    assert "enter the scheduler&#x27;s address" in panel.message.value


def test_run_replays_clicks_and_rejects_unknown_ones(panel):
    with pytest.raises(ValueError, match="unknown click 'fly'"):
        panel.run("fly", "launch")
    assert "unknown click" in panel.message.value
    assert panel.cluster is None  # the replay stopped at the bad click
    panel.run("launch")
    cluster = panel.cluster
    assert cluster is not None and panel.workers.value.startswith("workers:")
    panel.run("shutdown")
    assert panel.cluster is None and cluster.closed
    assert panel.message.value == "cluster stopped"


@pytest.mark.slow
def test_pause_resume_stop_and_model_choices(panel):
    panel.run("launch")
    panel.model_choice.value = "MLP classifier"
    panel.refresh()  # the updater follows the model with its solvers
    assert panel.solver.options == ("adam", "sgd")
    panel.dataset.value, panel.rows.value, panel.chunk_rows.value = "XOR", 4000, 1000
    panel.iterations.value = 100_000
    panel.train()
    deadline = time.monotonic() + 60
    while panel.progress.value < 2:
        assert time.monotonic() < deadline, panel.message.value
        time.sleep(0.05)
    panel.pause()
    time.sleep(0.5)  # let the iteration in flight finish
    held = panel.progress.value
    time.sleep(1.0)
    assert panel.progress.value == held and panel.training  # paused: no iterations
    assert "ETA" in panel.eta.value
    panel.resume()
    while panel.progress.value <= held:
        assert time.monotonic() < deadline, panel.message.value
        time.sleep(0.05)
    panel.pause()
    panel.stop()  # a paused fit must still stop
    panel.wait(timeout=60)
    assert not panel.training and "stopped" in panel.message.value
    assert isinstance(panel.model, MLPClassifier)
    assert panel.eta.value == f"{panel.model.n_iter_}/100000"  # no stale ETA after Stop


def test_notebook_variables_must_exist(panel):
    panel.dataset.value = "notebook variables"
    panel.variables.value = "features only"
    with pytest.raises(ValueError, match="two names"):
        panel_data(panel)


@pytest.mark.slow
def test_train_holds_a_lease_and_a_new_policy_readapts_the_cluster(panel):
    assert panel.policy.value == "training"  # the default: it knows a fit is running
    panel.run("launch", "train")
    leases = [
        (e["action"], e.get("lease"))
        for e in panel.monitor.of_kind("scale")
        if e["action"] in ("lease", "lease-end")
    ]
    assert leases == [("lease", "run-1"), ("lease-end", "run-1")]
    assert not panel.cluster.leases.active()  # given back when the fit ended
    panel.policy.value = "default"
    assert type(panel.cluster.adaptive).__name__ == "DefaultPolicy"
    assert panel.refresh().message.value == "adapting with the default policy"
    adapts = [e for e in panel.monitor.of_kind("scale") if e["action"] == "adapt"]
    assert adapts[-1]["policy"] == "DefaultPolicy"
