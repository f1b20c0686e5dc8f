"""The reducer over data persisted on a distributed cluster: one task per worker."""

from __future__ import annotations

import time
import uuid
from functools import partial
from typing import NamedTuple

import dask
import numpy as np

from .blocks import aligned, chunk_sum
from .connection import SchedulerWatch
from .placement import layout

#: Seconds between looks at where the chunks are (a scheduler round trip): in between, an
#: iteration sends the scheduler one message and waits for one answer.
PLACEMENT_CHECK_SECONDS = 1.0


class ChunkGroup:
    """Row blocks ``(x, y)`` of one worker as a single object: a task over them then
    depends on one future, not two per chunk, which is most of what a small iteration
    costs. To dask it weighs only itself: the arrays belong to the chunk futures, and
    counting them twice would make the worker spill."""

    __slots__ = ("pairs",)

    def __init__(self, pairs):
        self.pairs = tuple(pairs)

    def __len__(self):
        return len(self.pairs)

    def __getitem__(self, index):
        return self.pairs[index]


def _per_chunk(fn, pairs, positions=None):
    """``fn(x, y)`` for each ``(x, y)`` of ``pairs`` (those at ``positions``), stacked."""
    chosen = pairs if positions is None else [pairs[k] for k in positions]
    return np.stack([fn(aligned(x), aligned(y)) for x, y in chosen])


class _Group(NamedTuple):
    """Chunks that one task per iteration reads, and what that task depends on."""

    holder: str | None  # the worker holding them when the group was made
    chunks: tuple  # chunk indices, ascending
    pairs: list  # [(x future, y future)] of those chunks
    handle: object = None  # their ChunkGroup future, once made (None for a lone chunk)

    @property
    def source(self):
        """What a task over these chunks reads: the group's one future when there is
        one, else the chunk futures themselves."""
        return self.pairs if self.handle is None else self.handle


def persisted_futures(array):
    """The futures holding ``array``'s own chunks, in order, or None if it is not
    persisted (a lazy array built on persisted data has futures, but not its own)."""
    from distributed import futures_of

    by_key = {f.key: f for f in futures_of(array)}
    keys = list(dask.core.flatten(array.__dask_keys__()))
    if not by_key or any(k not in by_key for k in keys):
        return None
    return [by_key[k] for k in keys]


class PersistedReducer:
    """Sums a kernel (or maps a function) over the chunks of (X, y) persisted on a
    distributed cluster.

    State
    -----
    x_futures, y_futures : list of Future
        The row blocks, in order; holding them keeps their lineage, so a chunk lost with
        its worker is recomputed by the scheduler.
    chunk_bytes : list of int
        Size of each row block.
    workers : set of str
        The workers seen at the last look; when new ones join, the chunks are rebalanced
        across all of them (distributed's ``rebalance``), so new workers share the work.
        It runs between two calls, when none of this reducer's tasks is in flight.
    watch : SchedulerWatch
        Around each call: the client losing its scheduler (and with it the chunks) is a
        :class:`~elastic_nb.engine.connection.SchedulerLost`, at once.
    groups : list of _Group
        Per worker, runs of its chunks (:func:`~elastic_nb.engine.placement.layout`); a
        run of several chunks is gathered into a ChunkGroup future on its worker, sent
        just after the second call's tasks (which, like the first call's, read the chunk
        futures), so making it costs no call a round trip, and a one-pass fit, which never
        reads a group twice, makes none. Made again when, at a look (every
        PLACEMENT_CHECK_SECONDS, or at once if a group was lost), the chunks or a group
        are no longer where they were.
    fresh : bool
        Whether the groups were made at this call's look: their handles wait for a
        second call.

    Each call submits one task per group, in one message, each restricted (loosely) to
    the worker holding its group. The per-chunk vectors come back
    to the client and are added in chunk order: a fixed order, so the bits of the result
    do not depend on where anything ran.
    """

    def __init__(self, client, x_futures, y_futures, chunk_bytes):
        self.client = client
        self.x_futures = x_futures
        self.y_futures = y_futures
        self.chunk_bytes = chunk_bytes
        self.watch = SchedulerWatch(client)
        self.workers = set()
        self.groups = []
        self._looked_at = -np.inf
        self.fresh = False
        # results of earlier calls, released together once per look, just after a call's
        # tasks went out: the client batches messages every 10 ms, and a release sent just
        # before a call would hold its tasks back for up to that long
        self._done = []

    @property
    def n_chunks(self) -> int:
        """Row chunks of X."""
        return len(self.x_futures)

    def _rebalance_if_grown(self):
        workers = set(self.client.scheduler_info(n_workers=-1)["workers"])
        if len(workers) > 1 and workers - self.workers and self.workers:
            self.client.rebalance(self.x_futures + self.y_futures)
        self.workers = workers

    def _submit(self, fn, groups, *iterables):
        """``fn(group.source, *items)`` per group, each placed on the group's holder, in
        one message to the scheduler.

        The placement must be explicit: the tasks of every call share one task group, so
        after a few calls the scheduler counts them as root-ish and queues them to
        whichever worker frees up first, data or not, and a ChunkGroup weighs too little
        for that to look costly. A worker restriction takes them out of that path;
        ``allow_other_workers`` lets a task run elsewhere if its holder is gone."""
        import dask

        prefix = f"{getattr(fn, 'func', fn).__name__}-{uuid.uuid4().hex}"
        keys = [f"{prefix}-{i}" for i in range(len(groups))]
        anywhere = sorted(self.workers)
        where = {k: [g.holder] if g.holder else anywhere for k, g in zip(keys, groups, strict=True)}
        with dask.annotate(workers=where.__getitem__, allow_other_workers=True):
            return self.client.map(fn, [g.source for g in groups], *iterables, key=keys)

    def _make_handles(self):
        """Gather each group of several chunks into one ChunkGroup future on its holder,
        for the calls after this one (this call's tasks read the chunk futures)."""
        unmade = [g for g in self.groups if g.handle is None and len(g.chunks) > 1]
        if unmade:
            made = dict(zip(map(id, unmade), self._submit(ChunkGroup, unmade), strict=True))
            self.groups = [g._replace(handle=made.get(id(g))) for g in self.groups]

    def _in_place(self, where, runs) -> bool:
        """Whether the groups still match ``runs`` and each group future is on its
        holder only (a stolen task leaves a copy of its group behind)."""
        if [(g.holder, g.chunks) for g in self.groups] != runs:
            return False
        made = [g for g in self.groups if g.handle is not None]
        return all(set(where.get(g.handle.key, ())) <= {g.holder} for g in made)

    def _look(self):
        """Where the chunks are now; groups made again if they moved."""
        from distributed import wait

        self._looked_at = time.monotonic()
        self._rebalance_if_grown()
        wait(self.x_futures + self.y_futures)  # a chunk still being made has no place yet
        handles = [g.handle for g in self.groups if g.handle is not None]
        where = self.client.who_has(self.x_futures + self.y_futures + handles)
        x_keys, y_keys = [f.key for f in self.x_futures], [f.key for f in self.y_futures]
        runs = layout(x_keys, y_keys, where, self.chunk_bytes)
        if not self._in_place(where, runs):
            self.groups = [
                _Group(holder, chunks, [(self.x_futures[i], self.y_futures[i]) for i in chunks])
                for holder, chunks in runs
            ]
            self.fresh = True

    def _lost_a_group(self) -> bool:
        return any(
            g.handle.status in ("error", "lost", "cancelled")
            for g in self.groups
            if g.handle is not None
        )

    def _jobs(self, chunks):
        """``[(group, positions)]``: the groups holding any of ``chunks``, and which of
        their chunks to read (None: all)."""
        wanted, jobs = set(chunks), []
        for group in self.groups:
            positions = [k for k, i in enumerate(group.chunks) if i in wanted]
            if positions:
                jobs.append((group, None if len(positions) == len(group.chunks) else positions))
        return jobs

    def map_chunks(self, fn, size: int, chunks=None) -> np.ndarray:
        """Rows ``fn(x_i, y_i)`` (length ``size``) of the chunks i in ``chunks`` (all by
        default), in that order."""
        with self.watch:
            return self._map_chunks(fn, chunks)

    def _map_chunks(self, fn, chunks):
        chunks = range(self.n_chunks) if chunks is None else chunks
        look = time.monotonic() - self._looked_at > PLACEMENT_CHECK_SECONDS
        if look or self._lost_a_group():
            self._look()
        jobs = self._jobs(chunks)
        groups = [group for group, _ in jobs]
        tasks = self._submit(partial(_per_chunk, fn), groups, [positions for _, positions in jobs])
        if not self.fresh:
            self._make_handles()
        self.fresh = False
        if look:
            self._done.clear()
        rows = {}
        for (group, positions), result in zip(jobs, self.client.gather(tasks), strict=True):
            indices = group.chunks if positions is None else [group.chunks[k] for k in positions]
            rows.update(zip(indices, result, strict=True))
        self._done.extend(tasks)
        return np.stack([rows[i] for i in chunks])

    def __call__(self, kernel, size: int, chunks=None) -> np.ndarray:
        """Sum of ``kernel`` over the chunks (all, or those in ``chunks``), in chunk order."""
        return self.map_chunks(partial(chunk_sum, kernel), size, chunks).sum(axis=0)
