"""Elasticity benchmark: one iterative workload under each scaling policy, side by side.

Each run starts its own local cluster (worker processes, 127.0.0.1) and runs K iterations of
C chunk tasks with a client pause P between iterations, or a real gradient-descent fit, under

- ``fixed``: ``maximum`` workers started before the run (the speed reference),
- ``default``: distributed's ``Adaptive`` (minimum 1),
- ``default-wait10``: the same with ``wait_count=10``,
- ``training``: elastic_nb's training policy, the run holding a lease,
- ``predictive``: elastic_nb's predictive policy.

Per run it records (exactly, from a scheduler plugin's worker arrivals and departures) wall
time from the first submission to the last result, worker-seconds over that span, worker
starts and stops, flaps (an iteration that starts with fewer workers than the previous one
ended with), the time from the first submission to the run's peak width, and how long the
cluster took to fall back to its minimum after the run. Ratios are against ``fixed`` in the
same invocation. Results go to ``benchmarks/results/elasticity.json``; ``--svg`` also draws
workers over time per policy.

    python benchmarks/elasticity.py --quick
    python benchmarks/elasticity.py --workloads light --pauses 3 --policies fixed,training
    python benchmarks/elasticity.py            # the full grid (about two hours on 2 cores)
    python benchmarks/elasticity.py --backend slurm --workloads light --pauses 3 \
        --policies fixed,training --maximum 4 --quick    # the same on SLURM jobs
    python benchmarks/elasticity.py --latency   # worker start latency per backend

``--backend slurm`` runs every worker as a real ``sbatch`` job (dask-jobqueue) on the one-node
SLURM the tests use, started here if it is not running (``benchmarks/backends.py``).

The light and heavy workloads are ``time.sleep`` tasks (they need no CPU, so 8 workers on a
2-core machine behave like 8 real ones); the numpy workload is real arithmetic and therefore
CPU-bound: on a 2-core machine more than 2 workers only share the same 2 cores.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import time
from pathlib import Path

import dask.config
import numpy as np
from backends import BACKENDS, open_cluster, running, worker_start_latency
from distributed.diagnostics.plugin import SchedulerPlugin

from elastic_nb.datasets import make_regression

POLICIES = ("fixed", "default", "default-wait10", "training", "predictive")
WORKLOADS = {
    # name: iterations, chunk tasks per iteration, seconds per task (sleep)
    "light": {"iterations": 30, "tasks": 16, "seconds": 0.3},
    "heavy": {"iterations": 15, "tasks": 40, "seconds": 1.0},
    # real numpy gradient descent on a (rows × 100) float64 array in 32 chunks
    "numpy": {"iterations": 30, "tasks": 32, "rows": 1_000_000, "cols": 100},
}
QUICK = {
    "light": {"iterations": 10},
    "heavy": {"iterations": 4},
    "numpy": {"iterations": 10, "rows": 400_000},
}


def nap(i, seconds):
    time.sleep(seconds)
    return i


class WorkerLog(SchedulerPlugin):
    """Every worker arrival and departure with its time: the exact worker count over time."""

    name = "benchmark-worker-log"

    def __init__(self, scheduler):
        self.events = [(time.time(), len(scheduler.workers))]
        self.scheduler = scheduler

    def add_worker(self, scheduler, worker):
        self.events.append((time.time(), len(scheduler.workers)))

    def remove_worker(self, scheduler, worker, **kwargs):
        self.events.append((time.time(), len(scheduler.workers)))


def count_at(events, t):
    n = events[0][1]
    for when, count in events:
        if when > t:
            break
        n = count
    return n


def integral(events, start, end):
    total, level, t_prev = 0.0, count_at(events, start), start
    for when, count in events:
        if start < when < end:
            total += level * (when - t_prev)
            level, t_prev = count, when
    return total + level * (end - t_prev)


def wait_until(condition, timeout, every=0.05):
    deadline = time.monotonic() + timeout
    while not condition() and time.monotonic() < deadline:
        time.sleep(every)
    return condition()


def start_cluster(policy, maximum, backend="local", service=None):
    if policy == "fixed":
        cluster = open_cluster(backend, maximum, maximum, "default", service or {})
        cluster.scale(maximum)
        cluster.wait_for_workers(maximum, timeout=120)
        return cluster
    name = "default" if policy.startswith("default") else policy
    cluster = open_cluster(backend, 1, maximum, name, service or {})
    if policy == "default-wait10":
        cluster.adapt(policy="default", wait_count=10)
    cluster.wait_for_workers(1, timeout=120)
    return cluster


def run_one(workload, pause, policy, maximum, spec, slowdown=1.1, backend="local", service=None):
    cluster = start_cluster(policy, maximum, backend, service)
    try:
        scheduler = cluster.cluster.scheduler
        log = WorkerLog(scheduler)
        cluster.cluster.sync(_add_plugin, scheduler, log)
        client = cluster.client
        decisions = []
        cluster.subscribe(
            lambda action, **d: (
                decisions.append((time.time(), action, d.get("target"), d.get("reason", "")))
                if action in ("target", "scale-up", "scale-down")
                else None
            )
        )
        width = lambda: len(scheduler.workers)  # noqa: E731  (in-process scheduler)

        data = None
        if workload == "numpy":
            X, y, _ = make_regression(
                spec["rows"], spec["cols"], chunks=-(-spec["rows"] // spec["tasks"]), noise=0.1
            )
            X, y = client.persist([X, y])
            client.wait_for_workers(1)
            from distributed import wait

            wait([X, y])
            data = (X, y, np.zeros(spec["cols"]))
        # let an adaptive cluster settle back to its minimum before the clock starts
        if policy != "fixed":
            wait_until(lambda: width() == cluster.minimum, timeout=60)
            time.sleep(1.0)

        lease = None
        if policy == "training":
            lease = cluster.training(iterations=spec["iterations"], slowdown=slowdown)
        iterations = []
        t0 = time.time()
        for k in range(spec["iterations"]):
            start_workers = width()
            t_start = time.time()
            if data is None:
                client.gather(
                    client.map(nap, range(spec["tasks"]), seconds=spec["seconds"], pure=False)
                )
            else:
                X, y, w = data
                grad = X.T @ (X @ w - y) / X.shape[0]
                data = (X, y, w - 0.5 * client.compute(grad).result())
            iterations.append(
                {
                    "start_workers": start_workers,
                    "end_workers": width(),
                    "seconds": round(time.time() - t_start, 4),
                }
            )
            if lease is not None:
                lease.step()
            if pause and k < spec["iterations"] - 1:
                time.sleep(pause)
        t_end = time.time()
        if lease is not None:
            lease.close()
        released = wait_until(lambda: width() <= max(cluster.minimum, 1), timeout=60)
        t_released = time.time()
        events = list(log.events)
    finally:
        cluster.close()

    run_events = [(t, n) for t, n in events if t0 <= t <= t_released]
    peak = max([count_at(events, t0)] + [n for t, n in events if t0 <= t <= t_end])
    reach = next((t - t0 for t, n in [(t0, count_at(events, t0)), *run_events] if n >= peak), None)
    flaps = sum(
        1
        for a, b in zip(iterations, iterations[1:], strict=False)
        if b["start_workers"] < a["end_workers"]
    )
    return {
        "backend": backend,
        "workload": workload,
        "pause": pause,
        "policy": policy,
        "wall": round(t_end - t0, 3),
        "worker_seconds": round(integral(events, t0, t_end), 2),
        "worker_starts": _count(events, t0, t_released, up=True),
        "worker_stops": _count(events, t0, t_released, up=False),
        "flaps": flaps,
        "peak_workers": peak,
        "seconds_to_peak": None if reach is None else round(reach, 3),
        "release_seconds": round(t_released - t_end, 3) if released else None,
        "iterations": iterations,
        "timeline": [[0.0, count_at(events, t0)]]
        + [[round(t - t0, 3), n] for t, n in events if t0 < t <= t_released],
        "decisions": [[round(t - t0, 3), a, n, why] for t, a, n, why in decisions if t >= t0],
    }


def _count(events, lo, hi, up):
    """Arrivals (up) or departures between lo and hi, from the successive counts."""
    n = 0
    prev = count_at(events, lo)
    for t, count in events:
        if lo < t <= hi:
            if up and count > prev:
                n += count - prev
            if not up and count < prev:
                n += prev - count
            prev = count
    return n


async def _add_plugin(scheduler, plugin):
    scheduler.add_plugin(plugin)


def summarize(runs):
    """Ratios against the fixed-maximum run of the same workload and pause."""
    key = lambda r: (r.get("backend", "local"), r["workload"], r["pause"])  # noqa: E731
    fixed = {key(r): r for r in runs if r["policy"] == "fixed"}
    for r in runs:
        ref = fixed.get(key(r))
        if ref:
            r["wall_ratio"] = round(r["wall"] / ref["wall"], 3)
            r["cost_ratio"] = round(r["worker_seconds"] / ref["worker_seconds"], 3)
    return runs


def check_targets(r, maximum):
    """The issue's targets for the training policy in one cell (None for other policies)."""
    if r["policy"] != "training" or "wall_ratio" not in r:
        return None
    cost_limit = 0.6 if (r["workload"] == "light" and r["pause"] == 3) else 1.0
    return {
        "wall<=1.15x": r["wall_ratio"] <= 1.15,
        f"cost<={cost_limit}x": r["cost_ratio"] <= cost_limit,
        "flaps==0": r["flaps"] == 0,
        "starts<=2*max": r["worker_starts"] <= 2 * maximum,
    }


def start_latency(r):
    """Seconds from the first scale-up decision to the first worker arriving after it."""
    ups = [t for t, action, *_ in r.get("decisions", []) if action == "scale-up"]
    if not ups:
        return None
    arrivals = [
        t for (t, n), (_, m) in zip(r["timeline"][1:], r["timeline"], strict=False) if n > m
    ]
    after = [t for t in arrivals if t >= ups[0]]
    return round(after[0] - ups[0], 1) if after else None


def table(runs):
    lines = [
        "| backend | workload | pause | policy | wall s | worker-s | wall × fixed | cost × fixed "
        "| starts / stops | flaps | peak (s to peak) | worker start s | release s |",
        "|---|---|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for r in runs:
        lines.append(
            f"| {r.get('backend', 'local')} | {r['workload']} | {r['pause']:g} | {r['policy']} "
            f"| {r['wall']:.1f} "
            f"| {r['worker_seconds']:.0f} | {r.get('wall_ratio', float('nan')):.2f} "
            f"| {r.get('cost_ratio', float('nan')):.2f} | {r['worker_starts']} / "
            f"{r['worker_stops']} | {r['flaps']} | {r['peak_workers']} "
            f"({r['seconds_to_peak']}) | {start_latency(r)} | {r['release_seconds']} |"
        )
    return "\n".join(lines)


COLORS = {
    "fixed": "#444444",
    "default": "#d62728",
    "default-wait10": "#ff7f0e",
    "training": "#2ca02c",
    "predictive": "#1f77b4",
}


def svg(runs, workload, pause, maximum, path):
    """Workers over time per policy for one cell, as a small standalone SVG."""
    cell = [r for r in runs if r["workload"] == workload and r["pause"] == pause]
    if not cell:
        return None
    width, height, pad = 640, 240, 40
    t_max = max(max(r["wall"], r["timeline"][-1][0] if r["timeline"] else 0) for r in cell)
    sx = lambda t: pad + (width - 2 * pad) * max(t, 0) / t_max  # noqa: E731
    sy = lambda n: height - pad - (height - 2 * pad) * n / maximum  # noqa: E731
    parts = [
        f'<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}" '
        'font-family="sans-serif" font-size="11">',
        f'<rect width="{width}" height="{height}" fill="white"/>',
        f'<text x="{pad}" y="16">workers over time — {workload} tasks, pause {pause:g} s</text>',
        f'<line x1="{pad}" y1="{sy(0)}" x2="{width - pad}" y2="{sy(0)}" stroke="#999"/>',
        f'<line x1="{pad}" y1="{sy(0)}" x2="{pad}" y2="{sy(maximum)}" stroke="#999"/>',
        f'<text x="{pad - 14}" y="{sy(maximum) + 4}">{maximum}</text>',
        f'<text x="{pad - 14}" y="{sy(0) + 4}">0</text>',
        f'<text x="{width - pad - 30}" y="{height - 12}">{t_max:.0f} s</text>',
    ]
    for i, r in enumerate(cell):
        points, n_prev = [], None
        for t, n in r["timeline"]:
            t = max(t, 0.0)
            if n_prev is not None:
                points.append(f"{sx(t):.1f},{sy(n_prev):.1f}")
            points.append(f"{sx(t):.1f},{sy(n):.1f}")
            n_prev = n
        points.append(f"{sx(r['wall']):.1f},{sy(n_prev):.1f}")
        color = COLORS.get(r["policy"], "black")
        parts.append(
            f'<polyline fill="none" stroke="{color}" stroke-width="2" points="{" ".join(points)}"/>'
        )
        parts.append(
            f'<text x="{width - pad - 120}" y="{30 + 13 * i}" fill="{color}">{r["policy"]} '
            f"({r['wall']:.0f} s, {r['worker_seconds']:.0f} w·s)</text>"
        )
    parts.append("</svg>")
    Path(path).write_text("\n".join(parts))
    return path


def render(out: Path, merge: list, draw: bool):
    """The table of saved runs (ratios as measured: against the fixed run of their own
    invocation) and, with ``draw``, one plot per cell with every policy of every file."""
    order = lambda r: (  # noqa: E731
        list(WORKLOADS).index(r["workload"]),
        r["pause"],
        POLICIES.index(r["policy"]),
    )
    saved = [json.loads(path.read_text()) for path in [out, *merge]]
    print(table(sorted(saved[0]["runs"], key=order)))
    for path, result in zip(merge, saved[1:], strict=True):
        print(f"\n{path}:\n{table(sorted(result['runs'], key=order))}")
    if not draw:
        return
    drawn = {}
    for result in saved:
        for r in result["runs"]:
            drawn.setdefault((r["workload"], r["pause"], r["policy"]), r)
    runs, maximum = sorted(drawn.values(), key=order), saved[0]["maximum"]
    for workload, pause in sorted({(r["workload"], r["pause"]) for r in runs}, key=str):
        svg(runs, workload, pause, maximum, out.parent / f"workers-{workload}-{pause:g}.svg")


def _cell(r):
    return (r.get("backend", "local"), r["workload"], r["pause"], r["policy"])


def measure(args, workloads, pauses, policies, service, out, earlier):
    """Every (workload, pause, policy) on ``args.backend``; the file is rewritten after
    each run, so an interrupted grid keeps what it measured. Long because it is the loop
    and the file it writes, in one place."""
    runs, started, load_before = [], time.time(), os.getloadavg()

    for workload in workloads:
        spec = {**WORKLOADS[workload], **(QUICK[workload] if args.quick else {})}
        for pause in pauses:
            for policy in policies:
                t = time.time()
                r = run_one(
                    workload,
                    pause,
                    policy,
                    args.maximum,
                    spec,
                    args.slowdown,
                    args.backend,
                    service,
                )
                r["spec"], r["slowdown"] = spec, args.slowdown
                runs.append(r)
                summarize(runs)
                print(
                    f"{workload:6s} pause {pause:g} {policy:15s} wall {r['wall']:7.1f} s "
                    f"({r.get('wall_ratio', 1):.2f}×) cost {r['worker_seconds']:7.0f} w·s "
                    f"({r.get('cost_ratio', 1):.2f}×) starts {r['worker_starts']:3d} "
                    f"flaps {r['flaps']} [{time.time() - t:.0f} s]",
                    flush=True,
                )
                target = check_targets(r, args.maximum)
                if target:
                    print("        training targets:", target, flush=True)
                result = {
                    "benchmark": "elasticity",
                    "backend": args.backend,
                    "maximum": args.maximum,
                    "quick": args.quick,
                    "start_method": args.start_method,
                    "machine": {
                        "cpus": os.cpu_count(),
                        "python": sys.version.split()[0],
                        "platform": platform.platform(),
                        "loadavg_before": load_before,
                        "loadavg_after": os.getloadavg(),
                    },
                    "seconds": round(time.time() - started, 1),
                    "runs": [e for e in earlier if _cell(e) not in {_cell(r) for r in runs}] + runs,
                    "targets": [
                        {"workload": r["workload"], "pause": r["pause"], **tg}
                        for r in runs
                        if (tg := check_targets(r, args.maximum))
                    ],
                }
                out.write_text(json.dumps(result, indent=1))
    return runs


def measure_latency(path):
    """Worker start latency of every backend, into ``path``."""
    rows = []
    for backend in BACKENDS:
        rows.append(worker_start_latency(backend))
        print(f"{backend:8s} start latency {rows[-1]['median']:.2f} s {rows[-1]['seconds']}")
    result = {
        "benchmark": "backend start latency",
        "machine": {"cpus": os.cpu_count(), "loadavg": os.getloadavg()},
        "backends": rows,
    }
    path.write_text(json.dumps(result, indent=1))
    print(f"wrote {path}")


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--workloads", default="light,heavy,numpy")
    parser.add_argument("--pauses", default="0,1,3")
    parser.add_argument("--policies", default=",".join(POLICIES))
    parser.add_argument("--maximum", type=int, default=8)
    parser.add_argument("--backend", choices=BACKENDS[:2], default="local")
    parser.add_argument(
        "--latency",
        action="store_true",
        help="measure only the worker start latency of every backend (3 starts each), into "
        "results/backend-latency.json",
    )
    parser.add_argument(
        "--slowdown", type=float, default=1.1, help="the training lease's pace preference"
    )
    parser.add_argument("--quick", action="store_true", help="fewer iterations, pauses 0 and 3")
    parser.add_argument("--out", default=str(Path(__file__).parent / "results" / "elasticity.json"))
    parser.add_argument("--svg", action="store_true", help="also write workers-over-time SVGs")
    parser.add_argument(
        "--append",
        action="store_true",
        help="keep the runs already in --out (same workload, pause and policy are replaced), "
        "so the grid can be measured in parts",
    )
    parser.add_argument(
        "--start-method",
        choices=("spawn", "forkserver"),
        default="forkserver",
        help="how worker processes start (distributed.worker.multiprocessing-method); "
        "forkserver (what ElasticCluster uses where it can) forks them from a preloaded "
        "process, spawn (distributed's default) starts each from scratch",
    )
    parser.add_argument(
        "--table",
        action="store_true",
        help="measure nothing: print the table of the runs in --out (and --merge), and with "
        "--svg draw them",
    )
    parser.add_argument(
        "--merge",
        nargs="*",
        default=[],
        help="with --table: result files measured separately, drawn in the same plots (a "
        "policy measured in several files is drawn from the first)",
    )
    args = parser.parse_args(argv)
    if args.latency:
        measure_latency(Path(args.out).parent / "backend-latency.json")
        return
    if args.table:
        render(Path(args.out), [Path(m) for m in args.merge], args.svg)
        return

    workloads = [w for w in args.workloads.split(",") if w]
    policies = [p for p in args.policies.split(",") if p]
    pauses = [float(p) for p in args.pauses.split(",") if p]
    if args.quick and args.pauses == "0,1,3":
        pauses = [0.0, 3.0]
    for w in workloads:
        if w not in WORKLOADS:
            parser.error(f"--workloads: unknown {w!r}; choose from {', '.join(WORKLOADS)}")
    for p in policies:
        if p not in POLICIES:
            parser.error(f"--policies: unknown {p!r}; choose from {', '.join(POLICIES)}")
    if "fixed" not in policies:
        policies.insert(0, "fixed")  # the reference is always measured in the same run
    if args.maximum < 2:
        parser.error("--maximum must be >= 2")

    dask.config.set({"distributed.worker.multiprocessing-method": args.start_method})
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    earlier = []
    if args.append and out.exists():
        earlier = json.loads(out.read_text()).get("runs", [])
    with running(args.backend) as service:
        runs = measure(args, workloads, pauses, policies, service, out, earlier)
    print(table(runs))
    if args.svg:
        for workload in workloads:
            for pause in pauses:
                svg(
                    runs,
                    workload,
                    pause,
                    args.maximum,
                    out.parent / f"workers-{workload}-{pause:g}.svg",
                )
    print(f"wrote {out}")


if __name__ == "__main__":
    main()
