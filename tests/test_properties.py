"""Property-based tests: whatever the input, an estimator either fits or raises a
documented error — from its input validation, before any work — and a cluster stays usable
afterwards."""

import dask
import dask.array as da
import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays

from elastic_nb import LinearRegression, LogisticRegression, MLPRegressor

DOCUMENTED = (ValueError, TypeError)
#: Where a documented input error may come from: elastic_nb's checks and scikit-learn's.
VALIDATION_FILES = (
    "elastic_nb/_validation.py",
    "elastic_nb/estimators/validation.py",
    "sklearn/utils/validation.py",
)
VALIDATION_PREFIXES = ("_check", "check_", "_validate", "encode_labels")
#: The one check that needs a pass over dask data: its statistics reveal NaN or infinity.
AFTER_FIRST_PASS = "require_finite"


def raised_by(err) -> set:
    """Names of the validation functions on ``err``'s traceback."""
    names, tb = set(), err.__traceback__
    while tb is not None:
        code = tb.tb_frame.f_code
        path = code.co_filename.replace("\\", "/")
        if path.endswith(VALIDATION_FILES) or (
            "elastic_nb/" in path
            and (code.co_name.startswith(VALIDATION_PREFIXES) or code.co_name == AFTER_FIRST_PASS)
        ):
            names.add(code.co_name)
        tb = tb.tb_next
    return names


dtypes = st.sampled_from(
    [np.float64, np.float32, np.int64, np.bool_, np.complex128, np.dtype("U3"), object]
)
estimators = st.sampled_from(
    [
        LinearRegression(solver="normal"),
        LinearRegression(solver="tsqr"),
        LinearRegression(solver="gd", max_iter=20),
        LinearRegression(solver="adam", max_iter=20, batch_chunks=1),
        LogisticRegression(max_iter=10),
        MLPRegressor(hidden_layer_sizes=(3,), max_iter=10),
    ]
)


@st.composite
def inputs(draw):
    with np.errstate(invalid="ignore"):  # NaN cast to int is part of the mess on purpose
        return _inputs(draw)


def _inputs(draw):
    rows = draw(st.integers(0, 40))
    cols = draw(st.integers(0, 4))
    shape = draw(st.sampled_from([(rows, cols), (rows,), (rows, cols, 2)]))
    dtype = draw(dtypes)
    elements = st.floats(-1e3, 1e3, width=32) | st.sampled_from([np.nan, np.inf, -np.inf])
    X = draw(arrays(np.float64, shape, elements=elements)).astype(dtype)
    y_rows = draw(st.sampled_from([rows, max(rows - 1, 0), rows + 1]))
    y = draw(arrays(np.float64, (y_rows,), elements=elements)).astype(
        draw(st.sampled_from([np.float64, np.int64, np.dtype("U3")]))
    )
    calls = []
    if draw(st.booleans()) and X.dtype.kind not in "OU" and y.dtype.kind != "U":
        chunk = draw(st.integers(1, max(rows, 1)))
        X, y = da.from_array(X, chunks=chunk), da.from_array(y, chunks=chunk)
        # every block of X read by a fit is counted: a rejected input must read none
        X = X.map_blocks(lambda block: calls.append(1) or block, meta=X._meta)
    return X, y, calls


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(estimator=estimators, data=inputs())
def test_any_input_fits_or_raises_a_documented_error(estimator, data):
    X, y, calls = data
    model = estimator.__class__(**estimator.get_params())
    with dask.config.set(scheduler="sync"), np.errstate(all="ignore"):
        try:
            model.fit(X, y)
        except DOCUMENTED as err:
            checks = raised_by(err)
            assert checks, f"{err!r} did not come from input validation"
            assert str(err)  # an explanation, not a bare exception
            if AFTER_FIRST_PASS not in checks:
                assert calls == [], f"{err!r} was raised after reading the data"
            return
        except FloatingPointError:  # documented: a diverging first-order fit
            return
    fitted = model.coefs_ if hasattr(model, "coefs_") else model.coef_
    assert np.all(np.isfinite(fitted))


@pytest.mark.slow
@settings(max_examples=10, deadline=None)
@given(data=inputs())
def test_a_bad_fit_leaves_the_cluster_usable(cluster, data):
    X, y, _ = data
    try:
        LinearRegression(solver="gd", max_iter=5).fit(X, y)
    except (*DOCUMENTED, FloatingPointError):
        pass
    assert cluster.client.submit(sum, [1, 2]).result(timeout=30) == 3
