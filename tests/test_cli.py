"""`elastic-nb demo`, run the way a user runs it: as a separate process."""

import json
import subprocess
import sys

import pytest


def run_demo(*args, timeout=180):
    return subprocess.run(
        [sys.executable, "-m", "elastic_nb", "demo", *args],
        capture_output=True,
        text=True,
        timeout=timeout,
    )


@pytest.mark.slow
def test_demo_writes_report_and_event_stream(tmp_path):
    result = run_demo(
        "--rows",
        "200000",
        "--cols",
        "8",
        "--chunk-rows",
        "20000",
        "--iterations",
        "15",
        "--out",
        str(tmp_path),
    )
    assert result.returncode == 0, result.stderr[-3000:]
    assert "gd iter   15" in result.stdout
    html = (tmp_path / "report.html").read_text()
    assert "enb-workers-figure" in html and "enb-loss-figure" in html
    events = [json.loads(line) for line in (tmp_path / "events.jsonl").read_text().splitlines()]
    samples = [e for e in events if e["kind"] == "sample"]
    assert samples and max(e["workers"] for e in samples) > 0
    losses = [e["loss"] for e in events if e["kind"] == "iteration" and e["run"] == "gd"]
    assert len(losses) == 15 and losses[-1] < losses[0] / 10


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--rows", "-3"], "expected a number >= 1"),
        (["--rows", "ten"], "expected a whole number"),
        (["--minimum", "-1"], "expected a number >= 0"),
        (["--rows", "10", "--chunk-rows", "20"], "--chunk-rows (20) must be <= --rows (10)"),
        (["--minimum", "3", "--maximum", "1"], "--maximum (1) must be >= --minimum (3)"),
        (["--solver", "magic"], "invalid choice"),
    ],
)
def test_demo_rejects_bad_options_without_starting_anything(args, message, tmp_path):
    result = run_demo(*args, "--out", str(tmp_path / "out"), timeout=60)
    assert result.returncode == 2
    assert message in result.stderr
    assert "launching" not in result.stdout
