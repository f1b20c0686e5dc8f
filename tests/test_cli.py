"""`elastic-nb demo`, run the way a user runs it: as a separate process."""

import json
import re
import subprocess
import sys

import pytest
from helpers import read_tables


def run_demo(*args, timeout=180):
    return subprocess.run(
        [sys.executable, "-m", "elastic_nb", "demo", *args],
        capture_output=True,
        text=True,
        timeout=timeout,
    )


@pytest.mark.slow
def test_demo_stops_at_convergence_and_reports_the_run(tmp_path):
    result = run_demo(
        "--rows", "200000", "--cols", "8", "--chunk-rows", "20000", "--out", str(tmp_path)
    )  # fmt: skip
    assert result.returncode == 0, result.stderr[-3000:]
    assert "Traceback" not in result.stderr and "closed" not in result.stderr
    converged = re.search(r"gd converged after (\d+) iterations \(tol 1e-06\)", result.stdout)
    assert converged, result.stdout
    n_iter = int(converged.group(1))
    assert n_iter < 100  # the default --iterations: it stopped on tol, not on the cap
    events = [json.loads(line) for line in (tmp_path / "events.jsonl").read_text().splitlines()]
    samples = [e for e in events if e["kind"] == "sample"]
    assert samples and max(e["workers"] for e in samples) > 0
    losses = [e["loss"] for e in events if e["kind"] == "iteration" and e["run"] == "gd"]
    assert len(losses) == n_iter and losses[-1] < losses[0] / 10

    html = (tmp_path / "report.html").read_text()
    assert "enb-workers-figure" in html and "enb-loss-figure" in html
    tables = read_tables(html)
    cluster = dict(tables["enb-summary enb-cluster-summary"][1:])
    assert cluster["policy"] == "TrainingPolicy"
    assert (cluster["minimum"], cluster["maximum"]) == ("1", "2")
    assert float(cluster["worker-seconds"]) > 0 and float(cluster["wall seconds"]) > 0
    header, *runs = tables["enb-summary enb-runs"]
    runs = {row[header.index("run")]: dict(zip(header, row, strict=True)) for row in runs}
    assert runs["exact"]["solver"] == "normal" and "200000 x 8" in runs["exact"]["data"]
    gd = runs["gd"]
    assert gd["status"] == "converged" and int(gd["iterations"]) == n_iter
    assert float(gd["final loss"]) == pytest.approx(losses[-1], rel=1e-5)
    assert float(gd["max |coef - exact|"]) < 1e-3
    header, *decisions = tables["enb-decisions"]
    assert header == ["time", "action", "target", "reason"]
    actions = [row[1] for row in decisions]
    assert {"adapt", "lease", "lease-end"} <= set(actions)
    assert all(row[3] for row in decisions)  # every decision says why


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
