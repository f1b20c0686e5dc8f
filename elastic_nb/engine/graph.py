"""The reducer that builds a dask graph: any scheduler, data that need not fit in memory."""

from __future__ import annotations

from functools import partial

import dask.array as da
import numpy as np

from .blocks import aligned, chunk_sum
from .connection import SchedulerWatch, compute_client

#: Chunk results summed per node of the reduction tree.
SPLIT_EVERY = 8


def _stacked(fn, x, y):
    return fn(aligned(x), aligned(y.reshape(-1)))[None, :]


def per_chunk_array(fn, X, y, size: int) -> da.Array:
    """The dask array whose row i is ``fn(x_i, y_i)``, a length-``size`` vector."""
    return da.map_blocks(
        _stacked,
        fn,
        X,
        y[:, None],
        chunks=((1,) * X.numblocks[0], (size,)),
        dtype=np.float64,
        meta=np.empty((0, 0)),
    )


def blockwise_sum(kernel, X, y, size: int) -> np.ndarray:
    """Sum ``kernel(x_i, y_i)`` (a length-``size`` vector) over the row blocks of X, y."""
    if isinstance(X, np.ndarray):
        return chunk_sum(kernel, X, y)
    partials = per_chunk_array(partial(chunk_sum, kernel), X, y, size)
    return np.asarray(partials.sum(axis=0, split_every=SPLIT_EVERY).compute())


class GraphReducer:
    """Sums a kernel (or maps a function) over the chunks of (X, y) with a dask graph.

    State
    -----
    X, y : dask.array.Array or numpy.ndarray
        The data; numpy data are one chunk, reduced in-process.
    watch : SchedulerWatch
        Around each call: the distributed client dask computes X on (if any) losing its
        scheduler is a :class:`~elastic_nb.engine.connection.SchedulerLost`.
    """

    def __init__(self, X, y):
        self.X, self.y = X, y
        client = None if isinstance(X, np.ndarray) else compute_client(X)
        self.watch = SchedulerWatch(client)

    @property
    def n_chunks(self) -> int:
        """Row chunks of X."""
        return 1 if isinstance(self.X, np.ndarray) else self.X.numblocks[0]

    def _blocks(self, chunks):
        if chunks is None or isinstance(self.X, np.ndarray):
            return self.X, self.y
        chunks = list(chunks)
        return self.X.blocks[chunks], self.y.blocks[chunks]

    def map_chunks(self, fn, size: int, chunks=None) -> np.ndarray:
        """Rows ``fn(x_i, y_i)`` (length ``size``) of the chunks i in ``chunks`` (all by
        default), in that order."""
        X, y = self._blocks(chunks)
        if isinstance(X, np.ndarray):
            return fn(X, y)[None, :]
        with self.watch:
            return np.asarray(per_chunk_array(fn, X, y, size).compute())

    def __call__(self, kernel, size: int, chunks=None) -> np.ndarray:
        """Sum of ``kernel`` over the chunks, tree-summed on the workers."""
        with self.watch:
            return blockwise_sum(kernel, *self._blocks(chunks), size)
