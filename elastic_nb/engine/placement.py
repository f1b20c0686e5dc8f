"""Where each chunk is read: pure functions of ``who_has`` and the chunk sizes."""

from __future__ import annotations

from collections import defaultdict

#: Data one per-iteration task reads at most: few tasks for small data (low overhead per
#: iteration), enough tasks for large data that the scheduler and the scaling policy see
#: the parallelism there is. Each task costs its worker ~1.5 ms between tasks and the
#: scheduler and client ~3 ms of CPU, which on two cores comes out of a worker's; a pass
#: reads 256 MiB in 10-40 ms, and at 64 MiB a gradient of 8M x 32 took 15-20 ms longer.
TASK_BYTES = 256 * 2**20


def _holders(x_keys, y_keys, where, chunk_bytes) -> dict:
    """holder -> chunk indices: each chunk goes to the least loaded so far (in bytes) of
    the workers holding both its x and y (else its x; None if lost)."""
    by_holder, load = defaultdict(list), defaultdict(int)
    for i, (x, y) in enumerate(zip(x_keys, y_keys, strict=True)):
        x_at, y_at = set(where.get(x, ())), set(where.get(y, ()))
        holder = min(sorted(x_at & y_at or x_at) or [None], key=load.__getitem__)
        load[holder] += chunk_bytes[i]
        by_holder[holder].append(i)
    return by_holder


def layout(x_keys, y_keys, where, chunk_bytes, task_bytes=TASK_BYTES) -> list:
    """``[(holder, chunks)]`` runs: the chunks of each holder (see :func:`_holders`) cut
    into runs of at most ``task_bytes``, one task each per iteration.

    Parameters
    ----------
    x_keys, y_keys : sequence of str
        Keys of the row chunks of X and y, in order.
    where : dict
        ``key -> workers holding it``, as ``Client.who_has`` answers.
    chunk_bytes : sequence of int
        Size of each row chunk.
    """
    runs = []
    for holder, members in _holders(x_keys, y_keys, where, chunk_bytes).items():
        run, size = [], 0
        for i in members:
            if run and size + chunk_bytes[i] > task_bytes:
                runs.append((holder, tuple(run)))
                run, size = [], 0
            run.append(i)
            size += chunk_bytes[i]
        runs.append((holder, tuple(run)))
    return runs
