"""Fault soak: does a fit survive lost and retired workers, and do launches leak?

    python benchmarks/faults.py             # 20 + 20 trials, 30 launch/close cycles
    python benchmarks/faults.py --quick     # 3 + 3 trials, 5 cycles (about a minute)

Three experiments, each against a reference measured in the same run:

1. *kill*: an Adam fit on data persisted on two worker processes; at a random iteration a
   random worker process is SIGKILLed (its nanny starts a new one; its chunks are
   recomputed from lineage). The final coefficients must equal the undisturbed fit's
   bit for bit.
2. *scale-down*: the same fit, with the cluster scaled from two workers to one at a random
   iteration (graceful retirement: the worker's chunks move first) and back afterwards.
3. *launch/close*: start and close an ElasticCluster repeatedly; count processes and file
   descriptors left behind.

Writes benchmarks/results/faults.json and prints a markdown table.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import random
import signal
import statistics
import sys
import time
from pathlib import Path

import numpy as np
import psutil
from distributed import get_task_stream

from elastic_nb import ElasticCluster, LinearRegression, datasets

RESULTS = Path(__file__).parent / "results" / "faults.json"
DATA_PREFIXES = ("make-features", "make-targets")


def fit(X, y, iterations, callback=None):
    model = LinearRegression(
        solver="adam", learning_rate=0.05, max_iter=iterations, tol=0, callback=callback
    )
    started = time.perf_counter()
    model.fit(X, y)
    return np.append(model.coef_, model.intercept_), time.perf_counter() - started


def recomputed_data_tasks(stream) -> int:
    """Data-generation tasks run during a fit of persisted data: all of them recomputed."""
    return sum(1 for task in stream.data if str(task["key"]).strip("('").startswith(DATA_PREFIXES))


def disturbed_trials(cluster, X, y, reference, iterations, trials, rng, disturb, restore):
    results = []
    for trial in range(trials):
        at = rng.randint(2, iterations - 2)
        happened = []

        def callback(record, at=at, happened=happened):
            if record["iteration"] == at:
                happened.append(disturb())

        try:
            with get_task_stream(cluster.client) as stream:
                parameters, seconds = fit(X, y, iterations, callback)
            completed, identical = True, bool(np.array_equal(parameters, reference))
        except Exception as err:  # a failed trial is a result, not a crash of the soak
            completed, identical, seconds, stream = False, False, float("nan"), None
            print(f"  trial {trial}: failed: {err!r}", file=sys.stderr)
        replaced = restore()
        results.append(
            {
                "replaced_by_itself": replaced,
                "trial": trial,
                "at_iteration": at,
                "disturbed": bool(happened),
                "completed": completed,
                "identical": identical,
                "seconds": seconds,
                "recomputed_data_tasks": recomputed_data_tasks(stream) if stream else None,
            }
        )
        print(
            f"  trial {trial}: at {at}, completed={completed}, identical={identical}, "
            f"{seconds:.2f} s",
            flush=True,
        )
    return results


def kill_random_worker(cluster, rng, killed):
    """SIGKILL one worker process; remember its address and name in ``killed``."""
    pids = cluster.client.run(os.getpid)
    address = rng.choice(sorted(pids))
    killed[:] = [address, cluster.client.scheduler_info()["workers"][address]["name"]]
    os.kill(pids[address], signal.SIGKILL)
    return address


def scale_down(cluster):
    cluster.scale(1)
    deadline = time.monotonic() + 60
    while len(cluster.client.scheduler_info()["workers"]) > 1:
        if time.monotonic() > deadline:
            raise TimeoutError("scale-down did not retire a worker within 60 s")
        time.sleep(0.05)
    return True


def back_to_two(cluster):
    cluster.scale(2)
    cluster.wait_for_workers(2, timeout=120)
    return True


def replaced_by_nanny(cluster, killed, timeout=120):
    """Wait for the killed worker's nanny to start a new one (same name, new address, the
    nanny still part of the cluster); if it has not within ``timeout``, say so and replace
    it through the cluster manager."""
    address, name = killed
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        workers = cluster.client.scheduler_info()["workers"]
        back = any(w["name"] == name and a != address for a, w in workers.items())
        if back and len(workers) == 2 and name in cluster.cluster.workers:
            return True
        time.sleep(0.05)
    print(
        "  the nanny did not replace the worker; replacing it by scaling 1 -> 2",
        file=sys.stderr,
        flush=True,
    )
    cluster.scale(1)
    back_to_two(cluster)
    return False


def summarize(results, undisturbed_seconds):
    done = [r for r in results if r["completed"]]
    extra = [r["seconds"] - undisturbed_seconds for r in done]
    return {
        "trials": len(results),
        "completed": len(done),
        "not_replaced_by_itself": sum(1 for r in results if not r["replaced_by_itself"]),
        "differing_from_undisturbed": sum(1 for r in done if not r["identical"]),
        "extra_seconds_median": statistics.median(extra) if extra else None,
        "extra_seconds_max": max(extra) if extra else None,
        "recomputed_data_tasks_median": statistics.median(
            [r["recomputed_data_tasks"] for r in done]
        )
        if done
        else None,
        "runs": results,
    }


def launch_close_cycles(cycles):
    me = psutil.Process()

    def descendants():
        return {p.pid for p in me.children(recursive=True)}

    # a first cycle starts the interpreter's own multiprocessing helpers (resource tracker,
    # fork server), which live until exit by design: leaks are counted against that state
    with ElasticCluster(minimum=1, maximum=1) as cluster:
        cluster.client.submit(sum, [1, 2]).result()
    before_processes, before_fds = descendants(), me.num_fds()
    seconds = []
    for _ in range(cycles):
        started = time.perf_counter()
        with ElasticCluster(minimum=1, maximum=1) as cluster:
            cluster.client.submit(sum, [1, 2]).result()
        seconds.append(time.perf_counter() - started)
    time.sleep(2)  # let the last processes be reaped
    leaked = descendants() - before_processes
    return {
        "cycles": cycles,
        "leaked_processes": len(leaked),
        "leaked_file_descriptors": me.num_fds() - before_fds,
        "seconds_per_cycle_median": statistics.median(seconds),
    }


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--trials", type=int, default=20)
    parser.add_argument("--cycles", type=int, default=30)
    parser.add_argument("--iterations", type=int, default=40)
    parser.add_argument("--quick", action="store_true", help="3 + 3 trials, 5 cycles")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", type=Path, default=RESULTS)
    args = parser.parse_args(argv)
    if args.quick:
        args.trials, args.cycles = 3, 5
    rng = random.Random(args.seed)
    load_before = os.getloadavg()

    with ElasticCluster(minimum=2, maximum=2) as cluster:
        cluster.scale(2)
        cluster.wait_for_workers(2)
        X, y, _ = datasets.make_regression(200_000, 16, chunks=10_000, noise=0.5, bias=1.0)
        X, y = cluster.client.persist([X, y])
        reference, _ = fit(X, y, args.iterations)  # also warms up
        undisturbed = [fit(X, y, args.iterations)[1] for _ in range(3)]
        undisturbed_seconds = statistics.median(undisturbed)
        print(f"undisturbed fit: {undisturbed_seconds:.2f} s", flush=True)
        print("kill trials:", flush=True)
        killed = []  # [address, name] of the last worker killed
        kill = disturbed_trials(
            cluster,
            X,
            y,
            reference,
            args.iterations,
            args.trials,
            rng,
            lambda: kill_random_worker(cluster, rng, killed),
            lambda: replaced_by_nanny(cluster, killed),
        )
        print("scale-down trials:", flush=True)
        shrink = disturbed_trials(
            cluster,
            X,
            y,
            reference,
            args.iterations,
            args.trials,
            rng,
            lambda: scale_down(cluster),
            lambda: back_to_two(cluster),
        )
    cycles = launch_close_cycles(args.cycles)

    report = {
        "machine": {
            "cpus": os.cpu_count(),
            "python": platform.python_version(),
            "load_average_before": load_before,
            "load_average_after": os.getloadavg(),
        },
        "parameters": vars(args)
        | {"out": str(args.out), "rows": 200_000, "features": 16, "chunks": 20, "workers": 2},
        "undisturbed_seconds": undisturbed,
        "kill": summarize(kill, undisturbed_seconds),
        "scale_down": summarize(shrink, undisturbed_seconds),
        "launch_close": cycles,
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(report, indent=2))

    print(
        "\n| experiment | trials | completed | differ from undisturbed | extra wall time "
        "(median / max) | recomputed data tasks (median) | worker not replaced by itself |"
    )
    print("|---|---|---|---|---|---|---|")
    for name, s in (("SIGKILL a worker", report["kill"]), ("scale 2→1", report["scale_down"])):
        print(
            f"| {name} | {s['trials']} | {s['completed']} | {s['differing_from_undisturbed']} "
            f"| {s['extra_seconds_median']:+.2f} s / {s['extra_seconds_max']:+.2f} s "
            f"| {s['recomputed_data_tasks_median']} | {s['not_replaced_by_itself']} |"
        )
    c = report["launch_close"]
    print(
        f"\n{c['cycles']} launch/close cycles: {c['leaked_processes']} leaked processes, "
        f"{c['leaked_file_descriptors']} leaked file descriptors, "
        f"{c['seconds_per_cycle_median']:.2f} s per cycle"
    )
    print(f"wrote {args.out}")
    failures = (
        report["kill"]["differing_from_undisturbed"]
        + report["scale_down"]["differing_from_undisturbed"]
        + (report["kill"]["trials"] - report["kill"]["completed"])
        + (report["scale_down"]["trials"] - report["scale_down"]["completed"])
        + c["leaked_processes"]
    )
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
