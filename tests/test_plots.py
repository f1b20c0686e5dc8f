from helpers import read_tables

from elastic_nb import Monitor
from elastic_nb.ui.plots import LivePlots
from elastic_nb.ui.report import write_report


def test_live_plots_stream_exactly_the_events():
    monitor = Monitor()
    plots = LivePlots(monitor)
    for t, workers in [(0.0, 1), (0.5, 2)]:
        monitor.events.append(
            {"kind": "sample", "time": t, "workers": workers, "workers_requested": 2}
        )
    first = monitor.training_callback("a")
    for i in range(1, 4):
        first({"iteration": i, "loss": 1.0 / i, "elapsed": 0.1 * i})
    plots.refresh()
    assert plots.workers_source.data["workers"] == [1, 2]
    assert plots.loss_source.data["loss"] == [1.0, 0.5, 1.0 / 3]
    first({"iteration": 4, "loss": 0.2, "elapsed": 0.4})
    plots.refresh()
    assert plots.loss_source.data["iteration"] == [1, 2, 3, 4]  # streamed, not duplicated
    assert plots.loss_time_source.data == plots.loss_source.data
    second = monitor.training_callback("b")
    second({"iteration": 1, "loss": 9.0, "elapsed": 0.1})
    plots.refresh()
    assert plots.loss_source.data["loss"] == [9.0] and plots.loss_source.data["run"] == ["b"]
    assert plots.workers_source.data["workers"] == [1, 2]


def test_following_a_new_monitor_starts_the_plots_afresh():
    old, new = Monitor(), Monitor()
    old.events.append({"kind": "sample", "time": 0.0, "workers": 3})
    old.training_callback("a")({"iteration": 1, "loss": 1.0, "elapsed": 0.1})
    plots = LivePlots(old)
    plots.refresh()
    assert plots.workers_source.data["workers"] == [3]
    plots.follow(new)
    new.events.append({"kind": "sample", "time": 0.0, "workers": 1})
    plots.refresh()
    assert plots.workers_source.data["workers"] == [1]
    assert plots.loss_source.data["loss"] == [] and plots.loss_time_source.data["loss"] == []


def test_time_figures_share_one_axis_and_one_hidden_toolbar():
    plots = LivePlots()
    ranges = {
        id(f.x_range)
        for f in (
            plots.workers_figure,
            plots.loss_time_figure,
            plots.throughput_figure,
            plots.memory_figure,
        )
    }
    assert len(ranges) == 1
    assert plots.time_plots.toolbar.autohide
    assert plots.workers_figure.legend[0] in plots.workers_figure.below  # never on the data


def test_decisions_leases_throughput_and_memory_follow_the_events():
    monitor = Monitor()
    plots = LivePlots(monitor)
    monitor.events.append(
        {"kind": "sample", "time": 0.0, "workers": 1, "per_worker": [["a", 2**20, 0]]}
    )
    monitor.record("scale", action="lease", reason="training run fit started")
    monitor.record("scale", action="scale-up", target=2, reason="work for 2 workers")
    record = monitor.training_callback("fit")
    record({"iteration": 1, "loss": 2.0, "elapsed": 1.0, "rows": 1000})
    plots.refresh()
    record({"iteration": 2, "loss": 1.0, "elapsed": 1.5, "rows": 1000})
    monitor.events.append(
        {
            "kind": "sample",
            "time": 9.0,
            "workers": 2,
            "per_worker": [["a", 3 * 2**20, 2**20], ["b", 2**20, 0]],
        }
    )
    monitor.record("scale", action="lease-end", reason="training run fit ended")
    plots.refresh()
    decisions = plots.decision_source.data
    assert decisions["reason"][:2] == ["training run fit started", "work for 2 workers"]
    assert decisions["workers"] == [1, 1, 2]  # at the running count of the sample before
    assert decisions["marker"][1] == "triangle"
    assert plots.lease_source.data["action"] == ["lease", "lease-end"]
    assert plots.throughput_source.data["rows_per_second"] == [2000.0]  # across refreshes
    memory = plots.memory_source.data
    assert memory["worker"] == ["a", "a", "b"] and memory["memory_mib"] == [1.0, 3.0, 1.0]
    assert memory["time"] == [0.0, 9.0, 9.0]
    assert memory["color"][0] == memory["color"][1]  # one colour per worker


def test_report_is_standalone_with_summary_plots_and_decisions(tmp_path):
    monitor = Monitor()
    monitor.record("scale", action="adapt", minimum=1, maximum=3, policy="TrainingPolicy",
                   reason="adaptive between 1 and 3 workers")  # fmt: skip
    monitor.events.append({"kind": "sample", "time": 0.0, "workers": 1})
    monitor.run_status("gd", "started", model="LinearRegression", solver="gd", data="10 x 2")
    monitor.training_callback("gd")({"iteration": 1, "loss": 1.0, "elapsed": 0.1})
    monitor.record("scale", action="scale-up", target=3, reason="first iteration: 3 tasks")
    monitor.events.append({"kind": "sample", "time": 2.0, "workers": 3})
    monitor.run_status("gd", "finished")
    html = write_report(monitor, tmp_path / "report.html").read_text()
    assert "enb-workers-figure" in html and "enb-loss-figure" in html
    assert "cdn.bokeh.org" not in html  # BokehJS inlined: works offline
    tables = read_tables(html)
    cluster = dict(tables["enb-summary enb-cluster-summary"][1:])
    assert cluster["policy"] == "TrainingPolicy" and cluster["maximum"] == "3"
    assert float(cluster["worker-seconds"]) == 2.0  # 1 worker for 2 s
    runs = tables["enb-summary enb-runs"]
    run = dict(zip(runs[0], runs[1], strict=True))
    assert run["model"] == "LinearRegression" and run["solver"] == "gd"
    assert run["iterations"] == "1" and run["status"] == "finished"
    decisions = tables["enb-decisions"]
    assert decisions[0] == ["time", "action", "target", "reason"]
    assert [row[1] for row in decisions[1:]] == ["adapt", "scale-up"]
    assert decisions[2][2:] == ["3", "first iteration: 3 tasks"]
