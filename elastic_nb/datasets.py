"""Chunked datasets generated where they are used: on the workers.

Each chunk is drawn from its own seed ``(random_state, chunk index)``, so the graph holds
only a few numbers per chunk (never a big numpy array), any chunk can be recomputed
identically from lineage after a worker is lost, and the data do not depend on which
worker made them.
"""

from __future__ import annotations

import numbers

import dask.array as da
import numpy as np

from ._validation import check_float, check_int


def _row_chunks(n_samples: int, chunks) -> tuple[int, ...]:
    if isinstance(chunks, numbers.Integral) and not isinstance(chunks, bool):
        size = check_int("chunks", chunks, minimum=1)
        full, rest = divmod(n_samples, size)
        return (size,) * full + ((rest,) if rest else ())
    if isinstance(chunks, (tuple, list)):
        sizes = tuple(check_int("chunks[i]", c, minimum=1) for c in chunks)
        if sum(sizes) != n_samples:
            raise ValueError(f"chunks must add up to n_samples={n_samples}, got sum {sum(sizes)}")
        return sizes
    raise TypeError(f"chunks must be rows per chunk (int) or a tuple of row counts, got {chunks!r}")


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
