"""Where one small iteration's time goes: the timeline of a two-task round trip (issue 14).

The tiny problem's iteration is one task per worker and a gather; its cost is distributed's
own round trip, not arithmetic. This script times each step of that round trip, in the
scheduler's and the workers' own transition hooks (one clock: all processes are on this
machine), for distributed's batched-send intervals as they ship (client 10 ms, scheduler
to worker 5 ms, worker 2 ms) and with all of them at 0, as ``elastic_nb.cluster.prompt``
sets them on the clusters elastic_nb starts.

Run from the repository root (about 20 seconds)::

    python benchmarks/latency.py            # writes benchmarks/results/latency.json
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import time
from collections import defaultdict
from pathlib import Path

import numpy as np
from distributed import Client, LocalCluster, wait
from distributed.diagnostics.plugin import SchedulerPlugin, WorkerPlugin

from elastic_nb.cluster.prompt import make_prompt

DEFAULT_OUT = Path(__file__).resolve().parent / "results" / "latency.json"
PREFIX = "roundtrip-"


def _small_task(block, iteration):
    return block.sum() + iteration


class _SchedulerTimes(SchedulerPlugin):
    """When each of this script's tasks changes state in the scheduler."""

    name = "latency-scheduler-times"

    def __init__(self):
        self.times = defaultdict(dict)

    def transition(self, key, start, finish, *args, **kwargs):
        if isinstance(key, str) and key.startswith(PREFIX):
            self.times[key][f"scheduler {start} > {finish}"] = time.time()


class _WorkerTimes(WorkerPlugin):
    """When each of this script's tasks changes state in a worker."""

    name = "latency-worker-times"

    def setup(self, worker):
        self.times = defaultdict(dict)

    def transition(self, key, start, finish, **kwargs):
        if isinstance(key, str) and key.startswith(PREFIX):
            self.times[key][f"worker {start} > {finish}"] = time.time()


def _scheduler_times(dask_scheduler=None):
    return dict(dask_scheduler.plugins[_SchedulerTimes.name].times)


def _worker_times(dask_worker=None):
    return dict(dask_worker.plugins[_WorkerTimes.name].times)


def timeline(client, blocks, workers, label, iterations, warmup=20) -> dict:
    """Median milliseconds from submission to each step, over ``iterations`` round trips."""
    marks = {}
    for it in range(iterations):
        keys = [f"{PREFIX}{label}-{it}-{j}" for j in range(len(blocks))]
        began = time.time()
        futures = [
            client.submit(_small_task, b, it, workers=[w], key=k)
            for b, w, k in zip(blocks, workers, keys, strict=True)
        ]
        submitted = time.time()
        wait(futures)
        finished = time.time()
        client.gather(futures)
        marks[it] = (keys, began, submitted, finished, time.time())
        del futures
    events = client.run_on_scheduler(_scheduler_times)
    for per_worker in client.run(_worker_times).values():
        for key, steps in per_worker.items():
            events.setdefault(key, {}).update(steps)
    steps = defaultdict(list)
    for keys, began, submitted, finished, gathered in list(marks.values())[warmup:]:
        for key in keys:
            own = dict(events.get(key, {}))
            own.update(
                {
                    "client submitted": submitted,
                    "client saw finished": finished,
                    "client gathered": gathered,
                }
            )
            for step, at in own.items():
                steps[step].append((at - began) * 1e3)
    medians = {step: statistics.median(v) for step, v in steps.items()}
    return dict(sorted(medians.items(), key=lambda kv: kv[1]))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--iterations", type=int, default=300)
    parser.add_argument("--out", type=Path, default=DEFAULT_OUT)
    args = parser.parse_args()
    load_start = os.getloadavg()
    with (
        LocalCluster(n_workers=2, threads_per_worker=1, dashboard_address=None) as cluster,
        Client(cluster) as client,
    ):
        client.register_plugin(_SchedulerTimes())
        client.register_plugin(_WorkerTimes())
        workers = sorted(client.scheduler_info()["workers"])
        blocks = [client.submit(np.ones, 1000, workers=[w], pure=False) for w in workers]
        wait(blocks)
        shipped = timeline(client, blocks, workers, "shipped", args.iterations)
        make_prompt(client)  # what the clusters elastic_nb starts get
        zero = timeline(client, blocks, workers, "zero", args.iterations)
    report = {
        "benchmark": "benchmarks/latency.py (issue 14)",
        "what": "two tasks, one per worker, on a 1000-element block each, then a gather; "
        "milliseconds from submission, medians",
        "iterations": args.iterations,
        "loadavg_start": load_start,
        "batched_send_intervals_as_shipped_ms": shipped,
        "batched_send_intervals_zero_ms": zero,
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(report, indent=2) + "\n")
    for name, steps in (("as shipped", shipped), ("at 0", zero)):
        print(f"-- batched-send intervals {name}")
        for step, ms in steps.items():
            print(f"{ms:7.2f} ms  {step}")
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
