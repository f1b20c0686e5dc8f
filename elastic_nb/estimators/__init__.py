"""scikit-learn estimators over chunked data.

numpy input is fitted in-process as a single block; a dask array (or dask dataframe) is
fitted on whatever cluster its client points at. Data persisted on a distributed cluster
take the fast path: one task per worker per iteration. The estimators know nothing of
widgets or monitors: progress leaves through ``callback``, one record per iteration.
"""

from .base import FIRST_ORDER, ChunkedEstimator, Problem
from .classifier import BinaryClassifier
from .linear import LinearRegression
from .logistic import LogisticRegression
from .mlp import MLPClassifier, MLPRegressor

#: The estimators the control panel offers, by the name its menu shows.
ESTIMATORS = {
    "linear regression": LinearRegression,
    "logistic regression": LogisticRegression,
    "MLP regressor": MLPRegressor,
    "MLP classifier": MLPClassifier,
}

__all__ = [
    "ESTIMATORS",
    "FIRST_ORDER",
    "BinaryClassifier",
    "ChunkedEstimator",
    "LinearRegression",
    "LogisticRegression",
    "MLPClassifier",
    "MLPRegressor",
    "Problem",
]
