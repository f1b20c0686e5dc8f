import json
import time

import pytest

from elastic_nb import Monitor


def timeline(monitor, points):
    """Put samples (time, workers) into a monitor without a cluster."""
    for t, workers in points:
        monitor.events.append({"kind": "sample", "time": t, "workers": workers})


def test_worker_seconds_integrates_a_known_timeline():
    monitor = Monitor()
    timeline(monitor, [(0.0, 1), (2.0, 3), (5.0, 2), (6.0, 0), (10.0, 1)])
    assert monitor.worker_seconds() == pytest.approx(1 * 2 + 3 * 3 + 2 * 1 + 0 * 4)
    assert monitor.worker_seconds(start=1.0, end=3.0) == pytest.approx(1 * 1 + 3 * 1)
    assert monitor.worker_seconds(end=12.0) == pytest.approx(13 + 1 * 2)
    assert Monitor().worker_seconds() == 0.0


def test_callbacks_record_iterations_with_the_current_worker_count():
    monitor = Monitor()
    timeline(monitor, [(0.0, 2)])
    seen = []
    monitor.subscribe(seen.append)
    callback = monitor.training_callback("fit-a")
    callback({"iteration": 1, "loss": 3.0, "elapsed": 0.1})
    monitor.run_status("fit-a", "finished")
    (iteration,) = monitor.of_kind("iteration")
    assert iteration["run"] == "fit-a" and iteration["workers"] == 2 and iteration["loss"] == 3.0
    assert [e["kind"] for e in seen] == ["iteration", "run"]


def test_jsonl_round_trip_and_csv(tmp_path):
    monitor = Monitor()
    timeline(monitor, [(0.0, 1), (1.5, 2)])
    monitor.record("scale", action="adapt", minimum=1, maximum=2, reason="test")
    monitor.training_callback()({"iteration": 1, "loss": 0.5, "elapsed": 0.2})
    path = monitor.to_jsonl(tmp_path / "events.jsonl")
    header = json.loads(path.read_text().splitlines()[0])
    assert header == {"kind": "header", "start_time": monitor.start_time}
    reloaded = Monitor.read_jsonl(path)
    assert reloaded.events == monitor.events and reloaded.start_time == monitor.start_time
    assert reloaded.worker_seconds() == monitor.worker_seconds()
    csv_text = monitor.to_csv(tmp_path / "samples.csv").read_text().splitlines()
    assert csv_text[0] == "kind,time,workers" and len(csv_text) == 3
    with pytest.raises(RuntimeError, match="no cluster"):
        reloaded.start()


def test_bad_interval():
    with pytest.raises(ValueError, match="interval must be > 0"):
        Monitor(interval=0)


def test_sampling_a_real_cluster(cluster):
    monitor = Monitor(cluster, interval=0.1).start()
    thread = monitor._thread
    try:
        sample = monitor.sample()
        assert sample["workers"] == 2 and sample["threads"] == 2 and sample["memory"] > 0
        assert len(sample["per_worker"]) == 2
        scale_actions = [e["action"] for e in monitor.of_kind("scale")]
        assert scale_actions[:1] == ["adapt"]  # decisions made before the monitor existed
        deadline = time.monotonic() + 30
        while len(monitor.of_kind("sample")) < 4 and time.monotonic() < deadline:
            time.sleep(0.05)
        assert len(monitor.of_kind("sample")) >= 4  # the thread samples on its own
    finally:
        monitor.stop()
    assert not thread.is_alive() and not monitor.running
    count = len(monitor.of_kind("sample"))
    time.sleep(5 * monitor.interval)
    assert len(monitor.of_kind("sample")) == count  # stopped means stopped
