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


def persisted_client(X):
    """The client of the cluster holding X's chunks, or None if X is not persisted there
    (a numpy array, a lazy graph, data out of core)."""
    x_futures = persisted_futures(X) if isinstance(X, da.Array) else None
    return None if x_futures is None else x_futures[0].client


def colocated(X, y):
    """``y``, persisted where X is if X lives on a cluster and y was derived lazily from
    something: the per-worker reducer then applies."""
    client = persisted_client(X)
    if client is not None and persisted_futures(y) is None:
        return client.persist(y)
    return y
