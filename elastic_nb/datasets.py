"""Chunked datasets generated where they are used: on the workers.

Each chunk is drawn from its own seed ``(random_state, chunk index)``, so the graph holds
only a few numbers per chunk (never a big numpy array), any chunk can be recomputed
identically from lineage after a worker is lost, and the data do not depend on which
worker made them.

Why not ``da.random.default_rng``: for 2M × 16 rows in 20 chunks its X and y take 142
tasks (14 kB pickled) against 40 here (11 kB), and y would not be drawn in the task that
holds its rows of X, so every chunk of y would wait for a transfer.
"""

from __future__ import annotations

import numbers
from pathlib import Path

import dask.array as da
import numpy as np
from dask.array.core import normalize_chunks

from ._validation import check_float, check_int


def _row_chunks(n_samples: int, chunks) -> tuple[int, ...]:
    """Row chunks as dask's ``normalize_chunks`` makes them, after checks that name the
    argument (it accepts 0 and negative sizes with an unhelpful error, or none)."""
    if isinstance(chunks, numbers.Integral) and not isinstance(chunks, bool):
        check_int("chunks", chunks, minimum=1)
    elif isinstance(chunks, (tuple, list)):
        chunks = tuple(check_int("chunks[i]", c, minimum=1) for c in chunks)
        if sum(chunks) != n_samples:
            raise ValueError(f"chunks must add up to n_samples={n_samples}, got sum {sum(chunks)}")
    else:
        raise TypeError(
            f"chunks must be rows per chunk (int) or a tuple of row counts, got {chunks!r}"
        )
    return normalize_chunks((chunks,), shape=(n_samples,))[0]


def _block_index(block_info) -> int:
    return block_info[None]["chunk-location"][0]


def _gaussian_features(n_features, random_state, block_info=None):
    rows = block_info[None]["chunk-shape"][0]
    rng = np.random.default_rng([random_state, _block_index(block_info), 0])
    return rng.standard_normal((rows, n_features))


def _linear_targets(x, coef, bias, noise, random_state, block_info=None):
    rng = np.random.default_rng([random_state, _block_index(block_info), 1])
    return x @ coef + bias + noise * rng.standard_normal(x.shape[0])


def _check_common(n_samples, n_features, noise, random_state):
    n_samples = check_int("n_samples", n_samples, minimum=1)
    n_features = check_int("n_features", n_features, minimum=1)
    noise = check_float("noise", noise, minimum=0.0)
    random_state = check_int("random_state", random_state, minimum=0)
    return n_samples, n_features, noise, random_state


def _features(n_samples, n_features, chunks, random_state):
    return da.map_blocks(
        _gaussian_features,
        n_features,
        random_state,
        chunks=(_row_chunks(n_samples, chunks), (n_features,)),
        dtype=np.float64,
        meta=np.empty((0, 0)),
        token="make-features",
    )


def make_regression(n_samples, n_features, chunks, noise=0.1, random_state=0, bias=0.0):
    """A linear regression problem ``y = X @ coef + bias + noise * N(0, 1)``.

    Returns ``X`` (dask, float64, ``chunks`` rows per chunk), ``y`` (dask, same row
    chunks) and the true ``coef`` (numpy).
    """
    n_samples, n_features, noise, random_state = _check_common(
        n_samples, n_features, noise, random_state
    )
    bias = check_float("bias", bias)
    coef = np.random.default_rng([random_state, 2**31]).uniform(-2.0, 2.0, n_features)
    X = _features(n_samples, n_features, chunks, random_state)
    y = X.map_blocks(
        _linear_targets,
        coef,
        bias,
        noise,
        random_state,
        drop_axis=1,
        dtype=np.float64,
        meta=np.empty(0),
        token="make-targets",
    )
    return X, y, coef


def _logistic_labels(x, coef, bias, random_state, block_info=None):
    rng = np.random.default_rng([random_state, _block_index(block_info), 1])
    return (x @ coef + bias + rng.logistic(size=x.shape[0]) > 0).astype(np.float64)


def make_classification(n_samples, n_features, chunks, random_state=0, bias=0.0, scale=2.0):
    """A binary problem from a logistic model: ``P(y=1) = sigmoid(X @ coef + bias)``.

    ``scale`` sets the size of the true coefficients (larger: better separated classes).
    Returns ``X``, ``y`` (0.0/1.0) as dask arrays and the true ``coef``.
    """
    n_samples, n_features, _, random_state = _check_common(n_samples, n_features, 0.0, random_state)
    bias = check_float("bias", bias)
    scale = check_float("scale", scale, positive=True)
    coef = np.random.default_rng([random_state, 2**31]).uniform(-scale, scale, n_features)
    X = _features(n_samples, n_features, chunks, random_state)
    y = X.map_blocks(
        _logistic_labels,
        coef,
        bias,
        random_state,
        drop_axis=1,
        dtype=np.float64,
        meta=np.empty(0),
        token="make-labels",
    )
    return X, y, coef


def _xor_block(noise, random_state, block_info=None):
    rows = block_info[None]["chunk-shape"][0]
    rng = np.random.default_rng([random_state, _block_index(block_info), 0])
    corners = rng.integers(0, 2, size=(rows, 2))
    points = corners + noise * rng.standard_normal((rows, 2))
    labels = (corners[:, 0] ^ corners[:, 1]).astype(np.float64)
    return np.column_stack([points, labels])


def make_xor(n_samples, chunks, noise=0.1, random_state=0):
    """Points near the corners of the unit square, labelled by XOR of the corner: the
    classic problem no linear model solves. Returns dask arrays ``X`` (n, 2) and ``y``."""
    n_samples = check_int("n_samples", n_samples, minimum=1)
    noise = check_float("noise", noise, minimum=0.0)
    random_state = check_int("random_state", random_state, minimum=0)
    table = da.map_blocks(
        _xor_block,
        noise,
        random_state,
        chunks=(_row_chunks(n_samples, chunks), (3,)),
        dtype=np.float64,
        meta=np.empty((0, 0)),
        token="make-xor",
    )
    return table[:, :2], table[:, 2]


# ------------------------------------------------------------------------ user data
#: Default chunk size for loaded data: large enough that per-task overhead is noise,
#: small enough that a worker holds several chunks.
TARGET_CHUNK_BYTES = 64 * 2**20


def _rows_per_chunk(n_rows, row_bytes, chunk_rows):
    if chunk_rows is not None:
        return check_int("chunk_rows", chunk_rows, minimum=1)
    return max(1, min(n_rows, TARGET_CHUNK_BYTES // max(row_bytes, 1)))


def _read_npy_rows(path, block_info=None):
    start, stop = block_info[None]["array-location"][0]
    return np.array(np.load(path, mmap_mode="r")[start:stop])


def load_npy(path, chunk_rows=None):
    """A 2-D (or 1-D) ``.npy`` file as a dask array whose chunks are read on the workers
    (each worker memory-maps the file and copies its rows: the graph holds no data)."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"no .npy file at {path}")
    header = np.load(path, mmap_mode="r")
    if header.ndim not in (1, 2):
        raise ValueError(f"{path} holds a {header.ndim}-D array; expected 1-D or 2-D")
    row_bytes = header.itemsize * (header.shape[1] if header.ndim == 2 else 1)
    rows = _rows_per_chunk(header.shape[0], row_bytes, chunk_rows)
    chunks = (_row_chunks(header.shape[0], rows), *((header.shape[1],) if header.ndim == 2 else ()))
    return da.map_blocks(
        _read_npy_rows,
        str(path),
        chunks=chunks,
        dtype=header.dtype,
        meta=np.empty((0,) * header.ndim, dtype=header.dtype),
        token="load-npy",
    )


def load_zarr(path, component=None, chunk_rows=None):
    """A zarr array, rechunked to whole rows (solvers read row blocks)."""
    array = da.from_zarr(str(path), component=component)
    if array.ndim not in (1, 2):
        raise ValueError(f"{path} holds a {array.ndim}-D array; expected 1-D or 2-D")
    row_bytes = array.dtype.itemsize * (array.shape[1] if array.ndim == 2 else 1)
    rows = _rows_per_chunk(array.shape[0], row_bytes, chunk_rows)
    return array.rechunk({0: rows, **({1: -1} if array.ndim == 2 else {})})


def load_parquet(path, target, features=None):
    """Columns of a parquet dataset as ``X`` (features) and ``y`` (the ``target`` column),
    one chunk per parquet partition, with known chunk sizes."""
    import dask.dataframe as dd

    frame = dd.read_parquet(str(path))
    if target not in frame.columns:
        raise ValueError(f"target column {target!r} is not in {path} (columns: {list(frame)})")
    features = [c for c in frame.columns if c != target] if features is None else list(features)
    missing = [c for c in features if c not in frame.columns]
    if missing:
        raise ValueError(f"feature columns {missing} are not in {path}")
    X = frame[features].to_dask_array(lengths=True).astype(np.float64)
    y = frame[target].to_dask_array(lengths=True).astype(np.float64)
    return X, y
