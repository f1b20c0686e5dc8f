"""Input checks of the estimators: cheap ones before any pass, and the proof of finiteness
the first pass gives for free."""

from __future__ import annotations

import dask
import dask.array as da
import numpy as np
import scipy.sparse


def _reject_text(name, dtype, kinds="OUSVMm"):
    if dtype.kind in kinds:
        raise TypeError(f"{name} must hold real numbers, got dtype {dtype}")
    if dtype.kind == "c":  # scikit-learn's convention: a ValueError, in its words
        raise ValueError(f"Complex data not supported: {name} has dtype {dtype}")


def reject_text_in_memory(name, data):
    """numpy/list input: strings are a TypeError here; object and sparse input are left to
    scikit-learn's validation, which converts numbers held as objects and says clearly
    that sparse input is not supported."""
    if not scipy.sparse.issparse(data):
        _reject_text(name, np.asarray(data).dtype, kinds="USVMm")


def as_dask_array(data):
    """dask dataframes/series become arrays with known chunk sizes; the rest is kept."""
    if hasattr(data, "to_dask_array"):
        return data.to_dask_array(lengths=True)
    return data


def _non_finite_error(name, values):
    """ValueError saying how many NaN/inf ``values`` holds and where the first one is."""
    module = da if isinstance(values, da.Array) else np
    bad = ~module.isfinite(values)
    n_nan, n_inf, first = dask.compute(
        module.isnan(values).sum(), module.isinf(values).sum(), module.argmax(bad.ravel())
    )
    where = np.unravel_index(int(first), values.shape)
    place = f"row {where[0]}" + (f", column {where[1]}" if len(where) == 2 else "")
    return ValueError(
        f"Input {name} contains NaN or infinity: {int(n_nan)} NaN and {int(n_inf)} infinite "
        f"values; the first is at {place}"
    )


def _all_finite(values) -> bool:
    if isinstance(values, da.Array):
        return bool(da.isfinite(values).all().compute())
    return bool(np.isfinite(values).all())


def require_finite(statistics, X, y):
    """After a first pass: if its statistics are not finite, the data are not; say where.
    (A sample of rows among them, a tuple, is finite when the sums over all rows are.)"""
    if all(np.all(np.isfinite(s)) for s in statistics if not isinstance(s, tuple | None)):
        return
    for name, values in (("X", X), ("y", y)):
        if values is not None and not _all_finite(values):
            raise _non_finite_error(name, values)
    raise FloatingPointError("the data overflowed float64 (values too large to square)")


def check_finite_in_memory(name, values):
    """Count and locate NaN/inf in float numpy input (other input: scikit-learn checks)."""
    if scipy.sparse.issparse(values) or values is None:
        return
    array = np.asarray(values)
    if array.dtype.kind == "f" and not np.all(np.isfinite(array)):
        raise _non_finite_error(name, array)


def _check_dask_y(y, n_rows, numeric_y):
    y = y if isinstance(y, da.Array) else da.from_array(np.asarray(y))
    if y.ndim == 2 and y.shape[1] == 1:
        y = y[:, 0]
    if y.ndim != 1:
        raise ValueError(f"y must be 1-D (n_samples,), got shape {y.shape}")
    if numeric_y:
        _reject_text("y", y.dtype)
    if np.isnan(y.shape[0]):
        y = y.compute_chunk_sizes()
    if n_rows != y.shape[0]:
        raise ValueError(
            f"X and y must have the same number of rows, got {n_rows} and {y.shape[0]}"
        )
    return y


def check_dask_Xy(X, y, numeric_y=True):
    """Shape and dtype checks for dask input; cheap, before any pass over the data.
    Returns X as float64 with whole rows per chunk, and y chunked as X's rows."""
    if X.ndim != 2:
        raise ValueError(f"X must be 2-D (n_samples, n_features), got shape {X.shape}")
    _reject_text("X", X.dtype)
    if np.isnan(X.shape[0]):
        X = X.compute_chunk_sizes()
    if X.shape[0] == 0 or X.shape[1] == 0:
        raise ValueError(f"X is empty: shape {X.shape}")
    X = X.rechunk({1: -1}).astype(np.float64, copy=False)
    if y is None:
        return X, None
    return X, _check_dask_y(y, X.shape[0], numeric_y).rechunk((X.chunks[0],))
