"""Which reducer a fit uses."""

from __future__ import annotations

import dask.array as da

from .graph import GraphReducer
from .persisted import PersistedReducer, persisted_futures


def make_reducer(X, y):
    """The fastest exact reducer for (X, y): per worker if both are persisted on a
    distributed cluster (one task per worker per call), else a dask graph."""
    if isinstance(X, da.Array):
        x_futures, y_futures = persisted_futures(X), persisted_futures(y)
        if x_futures is not None and y_futures is not None:
            row_bytes = X.dtype.itemsize * X.shape[1] + y.dtype.itemsize
            chunk_bytes = [rows * row_bytes for rows in X.chunks[0]]
            return PersistedReducer(x_futures[0].client, x_futures, y_futures, chunk_bytes)
    return GraphReducer(X, y)


def colocated(X, y):
    """``y``, persisted where X is if X lives on a cluster and y was derived lazily from
    something: the per-worker reducer then applies."""
    if not isinstance(X, da.Array):
        return y
    x_futures = persisted_futures(X)
    if x_futures is not None and persisted_futures(y) is None:
        return x_futures[0].client.persist(y)
    return y
