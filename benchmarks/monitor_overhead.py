"""What does watching cost? The same fit with and without the monitor and live plots.

    python benchmarks/monitor_overhead.py            # 7 interleaved pairs
    python benchmarks/monitor_overhead.py --quick    # 3 pairs, smaller fit

1. *overhead*: an Adam fit on data persisted on two worker processes, run alternately
   bare and watched (Monitor sampling every 0.5 s + LiveView refreshing 5 times a
   second + the iteration callback). Pairs are interleaved so drift in machine load
   hits both sides; the overhead is the median of the per-pair ratios. Target: <= 3 %.
2. *sampling cost*: the time of one Monitor.sample() against a cluster of 8 workers.

Writes benchmarks/results/monitor_overhead.json and prints a markdown table.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import sys
import time
from pathlib import Path

from distributed import wait

from elastic_nb import ElasticCluster, LinearRegression, Monitor, datasets
from elastic_nb.ui.controls import LiveView

RESULTS = Path(__file__).parent / "results" / "monitor_overhead.json"
TARGET = 0.03


def timed_fit(X, y, iterations, callback=None):
    model = LinearRegression(
        solver="adam", learning_rate=0.05, max_iter=iterations, tol=0, callback=callback
    )
    started = time.perf_counter()
    model.fit(X, y)
    return time.perf_counter() - started


def watched_fit(cluster, X, y, iterations):
    monitor = Monitor(cluster, interval=0.5).start()
    view = LiveView(monitor, period=0.2)  # the panel's plots and their updater thread
    try:
        return timed_fit(X, y, iterations, callback=monitor.training_callback())
    finally:
        view.close()
        monitor.stop()


def overhead(pairs, rows, iterations):
    with ElasticCluster(minimum=2, maximum=2) as cluster:
        cluster.scale(2)
        cluster.wait_for_workers(2)
        X, y, _ = datasets.make_regression(rows, 16, chunks=rows // 20, noise=0.5)
        X, y = cluster.client.persist([X, y])
        wait([X, y])
        timed_fit(X, y, 5)  # warm up both code paths
        watched_fit(cluster, X, y, 5)
        bare, watched = [], []
        for pair in range(pairs):
            first, second = ("bare", "watched") if pair % 2 == 0 else ("watched", "bare")
            for kind in (first, second):
                if kind == "bare":
                    bare.append(timed_fit(X, y, iterations))
                else:
                    watched.append(watched_fit(cluster, X, y, iterations))
            print(f"  pair {pair}: bare {bare[-1]:.2f} s, watched {watched[-1]:.2f} s", flush=True)
    ratios = [w / b - 1 for w, b in zip(watched, bare, strict=True)]
    return {
        "rows": rows,
        "iterations": iterations,
        "pairs": pairs,
        "bare_seconds": bare,
        "watched_seconds": watched,
        "overhead_per_pair": ratios,
        "overhead_median": statistics.median(ratios),
        "target": TARGET,
        "met": statistics.median(ratios) <= TARGET,
    }


def sampling_cost(workers, samples):
    with ElasticCluster(minimum=workers, maximum=workers) as cluster:
        cluster.scale(workers)
        cluster.wait_for_workers(workers, timeout=120)
        monitor = Monitor(cluster)
        times = []
        for _ in range(samples):
            started = time.perf_counter()
            monitor.sample()
            times.append(time.perf_counter() - started)
    return {
        "workers": workers,
        "samples": samples,
        "milliseconds_median": 1e3 * statistics.median(times),
        "milliseconds_max": 1e3 * max(times),
        "share_of_one_core_at_0.5s": statistics.median(times) / 0.5,
    }


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--pairs", type=int, default=7)
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--iterations", type=int, default=100)
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--out", type=Path, default=RESULTS)
    args = parser.parse_args(argv)
    if args.quick:
        args.pairs, args.rows, args.iterations = 3, 400_000, 60
    load_before = os.getloadavg()
    print("overhead:", flush=True)
    cost = overhead(args.pairs, args.rows, args.iterations)
    print("sampling cost:", flush=True)
    sample = sampling_cost(8, 50)
    report = {
        "machine": {
            "cpus": os.cpu_count(),
            "python": platform.python_version(),
            "load_average_before": load_before,
            "load_average_after": os.getloadavg(),
        },
        "overhead": cost,
        "sampling": sample,
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(report, indent=2))
    print("\n| measure | value | target |\n|---|---|---|")
    print(
        f"| monitor + live plots, overhead on a {args.iterations}-iteration Adam fit "
        f"(median of {args.pairs} pairs) | {100 * cost['overhead_median']:+.1f} % | "
        f"<= {100 * TARGET:.0f} % |"
    )
    print(
        f"| one Monitor.sample() with 8 workers (median / max) | "
        f"{sample['milliseconds_median']:.1f} / {sample['milliseconds_max']:.1f} ms | |"
    )
    print(f"wrote {args.out}")
    return 0 if cost["met"] else 1


if __name__ == "__main__":
    sys.exit(main())
