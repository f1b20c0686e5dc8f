"""Memory bandwidth of this machine, for one process and for two at once (issue 14).

The reference the solver and scaling benchmarks need to read their ratios: a kernel that
streams its data (the Gram product, one gradient) runs on two workers at best at the
bandwidth two cores get together, not at twice one core's. Each process reads a 1 GiB
float64 array five times through one BLAS product (``ones @ X``, one thread), as a chunk
kernel reads its chunk.

Run from the repository root (about 10 seconds, on an otherwise idle machine)::

    python benchmarks/bandwidth.py            # writes benchmarks/results/bandwidth.json
"""

from __future__ import annotations

import argparse
import json
import multiprocessing
import os
import platform
import time
from pathlib import Path

import numpy as np

DEFAULT_OUT = Path(__file__).resolve().parent / "results" / "bandwidth.json"
ARRAY_BYTES = 2**30
READS = 5


def _read(results, start):
    """Read a 1 GiB array READS times once every process is ready; put GB/s."""
    from threadpoolctl import threadpool_limits

    data = np.ones(ARRAY_BYTES // 8).reshape(-1, 32)
    ones = np.ones(data.shape[0])
    with threadpool_limits(1):
        ones @ data  # pages in, and warms BLAS
        start.wait()
        began = time.perf_counter()
        for _ in range(READS):
            ones @ data
        results.put(READS * ARRAY_BYTES / (time.perf_counter() - began) / 1e9)


def read_bandwidth(processes: int) -> list[float]:
    """GB/s that each of ``processes`` processes reads at, all reading at once."""
    results, start = multiprocessing.Queue(), multiprocessing.Barrier(processes)
    workers = [
        multiprocessing.Process(target=_read, args=(results, start)) for _ in range(processes)
    ]
    for worker in workers:
        worker.start()
    speeds = [results.get() for _ in workers]
    for worker in workers:
        worker.join()
    return speeds


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=DEFAULT_OUT)
    args = parser.parse_args()
    load_start = os.getloadavg()
    one, two = read_bandwidth(1), read_bandwidth(2)
    report = {
        "machine": {"cpus": os.cpu_count(), "platform": platform.platform()},
        "loadavg_start": load_start,
        "loadavg_end": os.getloadavg(),
        "one_process_gb_s": one[0],
        "two_processes_gb_s": two,
        "two_over_one": sum(two) / one[0],
        "meaning": "a streaming kernel on two workers takes at least one_process / "
        "sum(two_processes) of one process's time",
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(report, indent=2) + "\n")
    print(
        f"one process: {one[0]:.2f} GB/s; two at once: {sum(two):.2f} GB/s "
        f"({report['two_over_one']:.2f}x one); wrote {args.out}"
    )


if __name__ == "__main__":
    main()
