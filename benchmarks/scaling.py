"""Scaling benchmark (issue 14): how the cost of elastic_nb's solvers grows.

Measures, in one run:

- the exact fit, ``LinearRegression(solver="normal")``, against rows (1M, 4M, 16M and
  64M x 32 by default), on a ``LocalCluster`` of 2 worker processes with 1 thread each.
  Data from :func:`elastic_nb.datasets.make_regression`, persisted on the workers where
  X and y fit in ``--persist-limit`` bytes across the cluster, and out of core beyond
  (the lazy dask array, never persisted: every fit regenerates the chunks);
- the logistic fit, ``LogisticRegression()`` (newton), against rows (1M, 4M, 16M x 32) on
  :func:`elastic_nb.datasets.make_classification`, persisted;
- the speed-up of both fits from 1 to 2 workers on 16M x 32 persisted, against a target of
  at least 1.7x.

Why: ``benchmarks/solvers.py`` times one size; issue 14 asks how the cost grows: whether
fit time stays linear in rows, also past the point where the data no longer fit in memory,
and what a second worker buys. The table and the chart are for the README. Every fit is
timed with ``time.perf_counter()``, ``--repeats`` times, each after a 0.5 s pause, after
one untimed warm-up fit at the smallest size of each series (and of each speed-up run);
median, min and raw times are reported. Persisted data are released (and the workers
garbage collected) before the next size: 16M x 32 alone is 4.2 GB.

Run from the repository root::

    python benchmarks/scaling.py            # full run: ~10-15 min on 2 idle cores (an estimate)
    python benchmarks/scaling.py --quick    # smoke run, smaller sizes: under a minute
    python benchmarks/scaling.py --rows 1000000,4000000 --repeats 5

Writes JSON (``--out``, default ``benchmarks/results/scaling.json``) with machine info,
parameters, load averages, every timing and the targets with a boolean ``met``; an SVG
chart of time against rows (``--svg``, default ``benchmarks/results/scaling.svg``); and
prints a markdown table to stdout.
"""

from __future__ import annotations

import argparse
import gc
import json
import math
import os
import platform
import statistics
import sys
import time
from collections import Counter
from pathlib import Path
from xml.sax.saxutils import escape

import dask
import distributed
import numpy as np
import psutil
from distributed import Client, LocalCluster, futures_of, wait

import elastic_nb
from elastic_nb import LinearRegression, LogisticRegression
from elastic_nb.cluster.forkserver import StartMethodNanny
from elastic_nb.cluster.local import worker_config
from elastic_nb.cluster.prompt import make_prompt
from elastic_nb.datasets import make_classification, make_regression

RESULTS = Path(__file__).resolve().parent / "results"
PAUSE_SECONDS = 0.5
SPEEDUP_TARGET = 1.7
FITS = {
    "exact": ("LinearRegression(solver='normal')", make_regression, 0),
    "logistic": ("LogisticRegression() (newton)", make_classification, 1),
}

#: name: (full run, --quick); with --quick, 400k x 33 x 8 = 106 MB is over the persist
#: limit, so the smoke run goes through the out-of-core path too.
DEFAULTS = {
    "rows": ([1_000_000, 4_000_000, 16_000_000, 64_000_000], [200_000, 400_000]),
    "logistic_rows": ([1_000_000, 4_000_000, 16_000_000], [200_000]),
    "speedup_rows": (16_000_000, 400_000),
    "chunk_rows": (500_000, 50_000),
    "persist_limit": (8e9, 1e8),
    "repeats": (3, 1),
}


def make_estimator(fit: str):
    return LinearRegression(solver="normal") if fit == "exact" else LogisticRegression()


def loadavg() -> list:
    return [round(x, 2) for x in os.getloadavg()]


def machine_info() -> dict:
    return {
        "nproc": os.cpu_count(),
        "ram_bytes": psutil.virtual_memory().total,
        "platform": platform.platform(),
        "python": sys.version.split()[0],
        "versions": {
            "numpy": np.__version__,
            "dask": dask.__version__,
            "distributed": distributed.__version__,
            "elastic_nb": elastic_nb.__version__,
        },
    }


def start_cluster(n_workers: int) -> LocalCluster:
    """The cluster of benchmarks/solvers.py: worker processes from the fork server."""
    return LocalCluster(
        n_workers=n_workers,
        threads_per_worker=1,
        processes=True,
        host="127.0.0.1",
        dashboard_address=":0",
        memory_limit="10GiB",
        worker_class=StartMethodNanny,
        start_method="forkserver",
        config=worker_config(),  # as an ElasticCluster's workers have it
    )


def data_bytes(rows: int, cols: int) -> int:
    """Bytes of X and y in float64."""
    return rows * (cols + 1) * 8


def chunks_per_worker(client, array) -> dict:
    """How many of ``array``'s persisted chunks each worker holds (balance bounds a pass)."""
    return dict(Counter(w for ws in client.who_has(futures_of(array)).values() for w in ws))


def release(client) -> int:
    """Collect garbage here and on the workers; the keys the workers still hold."""
    gc.collect()
    client.run(gc.collect)
    time.sleep(0.2)
    return sum(client.run(lambda dask_worker: len(dask_worker.data)).values())


def time_fits(fit: str, X, y, repeats: int, warm_up: bool) -> list:
    """Seconds of ``repeats`` fits, after an untimed warm-up fit if asked."""
    if warm_up:
        make_estimator(fit).fit(X, y)
    times = []
    for _ in range(repeats):
        time.sleep(PAUSE_SECONDS)
        start = time.perf_counter()
        make_estimator(fit).fit(X, y)
        times.append(time.perf_counter() - start)
    return times


def measure(client, args, fit: str, rows: int, persist: bool, warm_up: bool) -> dict:
    """Generate the data (persisted or lazy), time the fits, release the data."""
    _, generator, seed = FITS[fit]
    X, y, _ = generator(rows, args.cols, chunks=args.chunk_rows, random_state=seed)
    entry = {
        "fit": fit,
        "estimator": FITS[fit][0],
        "workers": len(client.scheduler_info()["workers"]),
        "rows": rows,
        "cols": args.cols,
        "bytes": data_bytes(rows, args.cols),
        "persisted": persist,
        "chunks": X.numblocks[0],
        "chunk_rows": X.chunks[0][0],
    }
    if persist:
        start = time.perf_counter()
        X, y = client.persist([X, y])
        wait([X, y])
        entry["generate_and_persist_s"] = time.perf_counter() - start
        entry["chunks_per_worker"] = chunks_per_worker(client, X)
    times = time_fits(fit, X, y, args.repeats, warm_up)
    del X, y
    entry["worker_keys_after_release"] = release(client)
    entry.update(
        median_s=statistics.median(times),
        min_s=min(times),
        times_s=[round(t, 6) for t in times],
        rows_per_s=rows / statistics.median(times),
    )
    print(
        f"  {fit:8} {rows:>12,} rows, {entry['workers']} worker(s), persisted={persist}: "
        f"median {entry['median_s']:.3g} s",
        flush=True,
    )
    return entry


def rows_sweep(client, args, fit: str, rows_list: list) -> list:
    """One entry per size, smallest first; the warm-up fit runs at the smallest."""
    out = []
    for i, rows in enumerate(sorted(rows_list)):
        persist = data_bytes(rows, args.cols) <= args.persist_limit
        out.append(measure(client, args, fit, rows, persist, warm_up=i == 0))
    return out


def speedup_entry(client, args, fit: str, series: list) -> dict:
    """The persisted fit at ``--speedup-rows`` on this cluster, reused from the sweep."""
    for entry in series:
        if entry["fit"] == fit and entry["rows"] == args.speedup_rows and entry["persisted"]:
            return {**entry, "reused_from_rows_sweep": True}
    return measure(client, args, fit, args.speedup_rows, persist=True, warm_up=True)


def speedup_target(fit: str, one: dict, two: dict) -> dict:
    value = one["median_s"] / two["median_s"]
    return {
        "target": f"{fit} fit, {one['rows']:,} x {one['cols']} persisted: "
        f"speed-up 1 -> 2 workers >= {SPEEDUP_TARGET}x",
        "fit": fit,
        "rows": one["rows"],
        "t_1_worker_median_s": one["median_s"],
        "t_2_workers_median_s": two["median_s"],
        "value": value,
        "op": ">=",
        "limit": SPEEDUP_TARGET,
        "unit": "x",
        "met": bool(value >= SPEEDUP_TARGET),
    }


# ------------------------------------------------------------------------- output
def rows_label(rows: float) -> str:
    if rows >= 1e6:
        return f"{rows / 1e6:g}M"
    return f"{rows / 1e3:g}k" if rows >= 1e3 else f"{rows:g}"


def seconds_ticks(lo: float, hi: float) -> list:
    """1-2-5 ticks between lo and hi (widened to the nearest ticks around them)."""
    candidates = [m * 10.0**k for k in range(-4, 6) for m in (1, 2, 5)]
    below = [t for t in candidates if t <= lo] or [candidates[0]]
    above = [t for t in candidates if t >= hi and t > below[-1]] or [candidates[-1]]
    return [t for t in candidates if below[-1] <= t <= above[0]]


def plot_series(entries: list) -> dict:
    """Label -> sorted (rows, median seconds) points of the 2-worker rows sweeps."""
    series = {}
    for e in entries:
        how = "persisted" if e["persisted"] else "out of core"
        series.setdefault(f"{e['fit']} ({how})", []).append((e["rows"], e["median_s"]))
    return {label: sorted(points) for label, points in series.items()}


def log_scale(lo: float, hi: float, start: float, end: float):
    """Maps [lo, hi] (log10 of the data) onto pixels [start, end]."""
    return lambda v: start + (math.log10(v) - lo) / (hi - lo) * (end - start)


def tag(name: str, text: str = "", **attrs) -> str:
    """One SVG element; ``text_anchor=...`` is written ``text-anchor="..."``."""
    shown = " ".join(
        f'{k.replace("_", "-")}="{f"{v:.1f}" if isinstance(v, float) else v}"'
        for k, v in attrs.items()
    )
    return f"<{name} {shown}>{escape(text)}</{name}>" if text else f"<{name} {shown}/>"


def svg_axes(xs, ys, px, py, box) -> list:
    """Frame, grid lines and tick labels; ``box`` is (left, top, right, bottom) in pixels."""
    left, top, right, bottom = box
    grid, frame = {"stroke": "#ddd"}, {"fill": "none", "stroke": "#333"}
    out = [tag("rect", x=left, y=top, width=right - left, height=bottom - top, **frame)]
    for x in xs:
        out += [
            tag("line", x1=px(x), x2=px(x), y1=top, y2=bottom, **grid),
            tag("text", rows_label(x), x=px(x), y=bottom + 16, text_anchor="middle"),
        ]
    for y in ys:
        out += [
            tag("line", x1=left, x2=right, y1=py(y), y2=py(y), **grid),
            tag("text", f"{y:g} s", x=left - 6, y=py(y) + 4, text_anchor="end"),
        ]
    mid_x, mid_y = (left + right) / 2, (top + bottom) / 2
    vertical = {"text_anchor": "middle", "transform": f"rotate(-90 16 {mid_y})"}
    return [
        *out,
        tag("text", "rows (log scale)", x=mid_x, y=bottom + 36, text_anchor="middle"),
        tag("text", "seconds, median (log scale)", x=16, y=mid_y, **vertical),
    ]


def svg_lines(series: dict, px, py, box) -> list:
    """One polyline with markers per series, and a legend drawn over them in the bottom
    right corner (where curves that grow with rows leave room)."""
    colours = ["#1f77b4", "#ff7f0e", "#2ca02c", "#d62728", "#9467bd"]
    x0, y0, size = box[2] - 190, box[3] - 10 - 18 * len(series), 18 * len(series) + 4
    out, legend = [], [tag("rect", x=x0, y=y0, width=180, height=size, fill="white")]
    for i, (label, points) in enumerate(series.items()):
        colour, legend_y = colours[i % len(colours)], y0 + 11 + 18 * i
        coords = " ".join(f"{px(x):.1f},{py(y):.1f}" for x, y in points)
        stroke = {"stroke": colour, "stroke_width": 2}
        out.append(tag("polyline", points=coords, fill="none", **stroke))
        out += [tag("circle", cx=px(x), cy=py(y), r=4, fill=colour) for x, y in points]
        legend += [
            tag("line", x1=x0 + 8, x2=x0 + 32, y1=legend_y, y2=legend_y, **stroke),
            tag("text", label, x=x0 + 38, y=legend_y + 4),
        ]
    return out + legend


def write_svg(series: dict, path: Path, title: str) -> None:
    """A log-log line chart of median seconds against rows, as standalone SVG."""
    width, height = 680, 420
    box = (70, 40, width - 20, height - 50)  # left, top, right, bottom of the plot area
    xs = sorted({x for points in series.values() for x, _ in points})
    seconds = [y for points in series.values() for _, y in points]
    ys = seconds_ticks(min(seconds), max(seconds))
    px = log_scale(math.log10(xs[0]) - 0.15, math.log10(xs[-1]) + 0.15, box[0], box[2])
    py = log_scale(math.log10(ys[0]), math.log10(ys[-1]), box[3], box[1])
    out = [
        f'<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}" '
        f'viewBox="0 0 {width} {height}" font-family="sans-serif" font-size="12">',
        tag("rect", width=width, height=height, fill="white"),
        tag("text", title, x=width / 2, y=22, text_anchor="middle", font_size=14),
        *svg_axes(xs, ys, px, py, box),
        *svg_lines(series, px, py, box),
        "</svg>",
    ]
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("\n".join(out) + "\n")


def markdown(report: dict) -> str:
    lines = [
        "| fit | rows | persisted | median s | min s | Mrows/s |",
        "|---|---|---|---|---|---|",
    ]
    for e in report["rows_sweep"]:
        lines.append(
            f"| {e['fit']} | {e['rows']:,} | {'yes' if e['persisted'] else 'no'} | "
            f"{e['median_s']:.3g} | {e['min_s']:.3g} | {e['rows_per_s'] / 1e6:.3g} |"
        )
    lines.append("")
    for t in report["targets"]:
        lines.append(
            f"- speed-up 1 -> 2 workers, {t['fit']}, {t['rows']:,} rows persisted: "
            f"{t['t_1_worker_median_s']:.3g} s / {t['t_2_workers_median_s']:.3g} s = "
            f"{t['value']:.2f}x (target >= {t['limit']}x: {'met' if t['met'] else 'NOT met'})"
        )
    return "\n".join(lines)


# --------------------------------------------------------------------------- main
def int_list(text: str) -> list:
    return [int(float(v)) for v in text.split(",") if v.strip()]


def parse_args(argv=None):
    parser = argparse.ArgumentParser(
        description=__doc__.split("\n\n")[0], formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--quick", action="store_true", help="smoke run: small sizes, 1 repeat")
    parser.add_argument("--rows", type=int_list, help="exact fit sizes (1M,4M,16M,64M)")
    parser.add_argument("--logistic-rows", type=int_list, help="logistic sizes (1M,4M,16M)")
    parser.add_argument("--speedup-rows", type=int, help="size of the speed-up fits (16M)")
    parser.add_argument("--cols", type=int, default=32)
    parser.add_argument("--chunk-rows", type=int, help="rows per chunk (500,000)")
    parser.add_argument("--persist-limit", type=float, help="bytes of X+y to persist (8e9)")
    parser.add_argument("--repeats", type=int, help="timed fits per size (3)")
    parser.add_argument("--out", type=Path, default=RESULTS / "scaling.json")
    parser.add_argument("--svg", type=Path, default=RESULTS / "scaling.svg")
    args = parser.parse_args(argv)
    for name, (full, quick) in DEFAULTS.items():
        if getattr(args, name) is None:
            setattr(args, name, quick if args.quick else full)
    return args


def run_cluster(n_workers: int, work) -> list:
    with start_cluster(n_workers) as cluster, Client(cluster) as client:
        make_prompt(client)  # as an ElasticCluster's own client and scheduler have it
        print(f"--- {n_workers} worker(s)", flush=True)
        return work(client)


def main(argv=None) -> int:
    args = parse_args(argv)
    report = {
        "benchmark": "benchmarks/scaling.py (issue 14)",
        "command": " ".join([Path(sys.executable).name, *sys.argv]),
        "mode": "quick" if args.quick else "full",
        "parameters": {k: str(v) if isinstance(v, Path) else v for k, v in vars(args).items()},
        "conventions": {
            "cluster": "LocalCluster(threads_per_worker=1, processes=True, memory_limit='10GiB',"
            " worker_class=StartMethodNanny, start_method='forkserver', config=worker_config()):"
            " an ElasticCluster's workers (elastic_nb.cluster.local.worker_config), with its"
            " streams' batched-send intervals at 0 (elastic_nb.cluster.prompt)",
            "timing": f"perf_counter, {PAUSE_SECONDS} s pause before each fit, one untimed "
            "warm-up fit at the smallest size of each series; median and min of the repeats",
            "persisted": "X and y (bytes: both, float64) persisted (client.persist, wait) if "
            "bytes <= persist_limit (speed-up fits: always), else the lazy array: every fit "
            "regenerates the chunks",
        },
        "machine": machine_info(),
        "loadavg_start": loadavg(),
    }
    print(f"load average at start: {report['loadavg_start']}", flush=True)

    def two_workers(client):
        sweep = rows_sweep(client, args, "exact", args.rows)
        sweep += rows_sweep(client, args, "logistic", args.logistic_rows)
        return sweep, [speedup_entry(client, args, fit, sweep) for fit in FITS]

    def one_worker(client):
        return [measure(client, args, fit, args.speedup_rows, True, True) for fit in FITS]

    report["rows_sweep"], two = run_cluster(2, two_workers)
    one = run_cluster(1, one_worker)
    report["speedup"] = {"1_worker": one, "2_workers": two}
    report["targets"] = [speedup_target(a["fit"], a, b) for a, b in zip(one, two, strict=True)]
    report["all_targets_met"] = all(t["met"] for t in report["targets"])
    report["loadavg_end"] = loadavg()
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(report, indent=2) + "\n")
    title = "elastic_nb fit time against rows (2 workers, 1 thread each)"
    write_svg(plot_series(report["rows_sweep"]), args.svg, title)
    print(f"\nload average: start {report['loadavg_start']}, end {report['loadavg_end']}")
    print(f"wrote {args.out} and {args.svg}\n")
    print(markdown(report))
    return 0


if __name__ == "__main__":
    sys.exit(main())
