"""Reducers over the row chunks of (X, y): the only math-adjacent code that runs tasks.

A *reducer* applies a kernel ``kernel(x, y) -> 1-D vector of sums`` to every row chunk
and adds the vectors up in chunk order (``reduce(kernel, size, chunks=None)``), or maps a
function over the chunks and returns its rows (``reduce.map_chunks(fn, size, chunks)``).
The math in :mod:`elastic_nb.linear`, :mod:`elastic_nb.families` and
:mod:`elastic_nb.optim` sees only that interface, so it never imports a scheduler.
"""

from .blocks import BLOCK_ROWS, chunk_sum
from .connection import SchedulerLost
from .graph import GraphReducer, blockwise_sum
from .persisted import PersistedReducer, persisted_futures
from .select import colocated, make_reducer, persisted_client

__all__ = [
    "BLOCK_ROWS",
    "GraphReducer",
    "PersistedReducer",
    "SchedulerLost",
    "blockwise_sum",
    "chunk_sum",
    "colocated",
    "make_reducer",
    "persisted_client",
    "persisted_futures",
]
