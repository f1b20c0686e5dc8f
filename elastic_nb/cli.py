"""``elastic-nb demo``: the notebook's run, headless, with an HTML report."""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path


def _int_at_least(minimum):
    def parse(text):
        try:
            value = int(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"expected a whole number, got {text!r}") from None
        if value < minimum:
            raise argparse.ArgumentTypeError(f"expected a number >= {minimum}, got {value}")
        return value

    return parse


_positive_int, _non_negative_int = _int_at_least(1), _int_at_least(0)


def _non_negative_float(text):
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a number, got {text!r}") from None
    if not value >= 0:
        raise argparse.ArgumentTypeError(f"expected a number >= 0, got {text}")
    return value


def build_parser():
    parser = argparse.ArgumentParser(
        prog="elastic-nb", description="Elastic machine learning on Dask."
    )
    commands = parser.add_subparsers(dest="command", required=True)
    demo = commands.add_parser(
        "demo",
        help="launch an adaptive local cluster, train on it, write report.html and events.jsonl",
    )
    demo.add_argument("--rows", type=_positive_int, default=1_000_000)
    demo.add_argument("--cols", type=_positive_int, default=16)
    demo.add_argument("--chunk-rows", type=_positive_int, default=50_000)
    demo.add_argument("--minimum", type=_non_negative_int, default=1)
    demo.add_argument("--maximum", type=_positive_int, default=2)
    demo.add_argument(
        "--solver", choices=["gd"], default="gd", help="iterative solver run after the exact one"
    )
    demo.add_argument(
        "--iterations", type=_positive_int, default=100, help="at most this many iterations"
    )
    demo.add_argument(
        "--tol",
        type=_non_negative_float,
        default=1e-6,
        help="gd stops when its largest gradient entry falls below tol times its start",
    )
    demo.add_argument(
        "--policy",
        choices=["training", "default", "predictive"],
        default="training",
        help="how the cluster scales (default: training, which knows a fit is running)",
    )
    demo.add_argument("--out", type=Path, default=Path("elastic-nb-out"))
    return parser


def _printer(monitor, run_name):
    record_event = monitor.training_callback(run_name)

    def callback(record):
        record_event(record)
        workers = monitor.current_workers()
        print(
            f"  {run_name:>6} iter {record['iteration']:4d}  loss {record['loss']:.6g}  "
            f"workers {workers if workers is not None else '?'}  "
            f"{record['elapsed']:6.2f}s",
            flush=True,
        )

    callback.run = record_event.run
    return callback


def _check_args(args):
    """One clear sentence for options that contradict each other, before anything starts."""
    if args.chunk_rows > args.rows:
        return f"--chunk-rows ({args.chunk_rows}) must be <= --rows ({args.rows})"
    if args.maximum < args.minimum:
        return f"--maximum ({args.maximum}) must be >= --minimum ({args.minimum})"
    return None


def _train(args, cluster, monitor):
    """The exact fit, then the iterative one under a lease; returns both models."""
    from .datasets import make_regression
    from .estimators import LinearRegression

    X, y, _ = make_regression(args.rows, args.cols, chunks=args.chunk_rows)
    X, y = cluster.client.persist([X, y])
    data = f"{args.rows} x {args.cols} float64 in {X.numblocks[0]} chunks of {args.chunk_rows} rows"
    print(f"data: {data}, generated on the workers", flush=True)
    exact = LinearRegression(solver="normal", callback=_printer(monitor, "exact"))
    exact.fit(X, y)
    monitor.run_status("exact", "finished", model="LinearRegression", solver="normal", data=data)
    # the lease tells the "training" policy a run of --iterations is in progress
    with cluster.training(iterations=args.iterations, name=args.solver) as lease:
        printer = _printer(monitor, args.solver)
        iterative = LinearRegression(
            solver=args.solver,
            max_iter=args.iterations,
            tol=args.tol,
            callback=lambda record: (lease.callback(record), printer(record)),
        )
        iterative.fit(X, y)
    return exact, iterative, data


def demo(args) -> int:
    problem = _check_args(args)
    if problem is not None:
        print(f"error: {problem}", file=sys.stderr)
        return 2
    # Imported here so that --help and bad options answer at once.
    import numpy as np

    from .cluster import ElasticCluster
    from .observe.monitor import Monitor
    from .ui.report import write_report

    args.out.mkdir(parents=True, exist_ok=True)
    started = time.perf_counter()
    print(f"launching an adaptive cluster of {args.minimum}..{args.maximum} workers", flush=True)
    with ElasticCluster(minimum=args.minimum, maximum=args.maximum, policy=args.policy) as cluster:
        monitor = Monitor(cluster).start()
        try:
            print(f"dashboard: {cluster.dashboard_link}", flush=True)
            exact, iterative, data = _train(args, cluster, monitor)
            time.sleep(2 * monitor.interval)  # one more sample after training
        finally:
            monitor.stop()
    gap = float(np.max(np.abs(iterative.coef_ - exact.coef_)))
    converged = iterative.n_iter_ < args.iterations
    monitor.run_status(
        args.solver,
        "converged" if converged else "finished",
        model="LinearRegression",
        solver=args.solver,
        data=data,
        tol=args.tol,
        **{"max |coef - exact|": gap},
    )
    report = write_report(monitor, args.out / "report.html", title="elastic-nb demo")
    events = monitor.to_jsonl(args.out / "events.jsonl")
    if converged:
        print(f"{args.solver} converged after {iterative.n_iter_} iterations (tol {args.tol:g})")
    else:
        print(f"{args.solver} stopped at --iterations {args.iterations} before tol {args.tol:g}")
    print(f"{args.solver} vs exact: max coefficient difference {gap:.2e}")
    print(
        f"cost: {monitor.worker_seconds():.1f} worker-seconds; "
        f"wall time {time.perf_counter() - started:.1f} s"
    )
    print(f"wrote {report} and {events}")
    return 0


def main(argv=None) -> int:
    args = build_parser().parse_args(argv)
    if args.command == "demo":
        return demo(args)
    return 2  # pragma: no cover - argparse rejects unknown commands first


if __name__ == "__main__":
    sys.exit(main())
