from elastic_nb import Monitor
from elastic_nb.plots import LivePlots, write_report


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


def test_report_is_standalone_and_has_both_plots(tmp_path):
    monitor = Monitor()
    monitor.events.append({"kind": "sample", "time": 0.0, "workers": 1})
    monitor.training_callback("gd")({"iteration": 1, "loss": 1.0, "elapsed": 0.1})
    html = write_report(monitor, tmp_path / "report.html").read_text()
    assert "enb-workers-figure" in html and "enb-loss-figure" in html
    assert "cdn.bokeh.org" not in html  # BokehJS inlined: works offline


def test_scale_events_throughput_and_memory_follow_the_events():
    monitor = Monitor()
    plots = LivePlots(monitor)
    monitor.events.append(
        {"kind": "sample", "time": 0.0, "workers": 1, "per_worker": [["a", 2**20, 0]]}
    )
    monitor.record("scale", action="adapt", reason="work for 2 workers")
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
    plots.refresh()
    assert plots.scale_source.data["reason"] == ["work for 2 workers"]
    assert plots.scale_source.data["workers"] == [1]
    assert plots.throughput_source.data["rows_per_second"] == [2000.0]  # across refreshes
    assert plots.memory_source.data == {
        "worker": ["a", "b"],
        "memory_mib": [3.0, 1.0],
        "data_mib": [1.0, 0.0],
    }
    assert list(plots.memory_figure.x_range.factors) == ["a", "b"]
