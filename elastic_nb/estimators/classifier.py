"""What binary classifiers add: labels in, probabilities and labels out."""

from __future__ import annotations

import dask.array as da
import numpy as np
from sklearn.base import ClassifierMixin
from sklearn.utils.multiclass import check_classification_targets

from .. import engine
from .base import ChunkedEstimator


def encode_labels(estimator_name, y, client=None):
    """``(classes, y as 0/1 floats)``: exactly two classes, or a clear error.

    With ``client`` (X is persisted on its cluster), numeric labels are found and encoded
    in one submission, persisted where y is: with two classes ``y == max(y)`` is
    ``y == classes[1]``, so the encoding need not wait for them (two round trips of
    small tasks cost more than the whole fit of a 200,000-row problem's Newton pass)."""
    encoded = None
    if client is not None and isinstance(y, da.Array) and y.dtype.kind in "biuf":
        unique, encoded = client.persist([da.unique(y), (y == y.max()).astype(np.float64)])
        classes = unique.compute()
    else:
        classes = da.unique(y).compute() if isinstance(y, da.Array) else np.unique(y)
    check_classification_targets(classes)
    if len(classes) < 2:
        raise ValueError(
            f"{estimator_name} needs two classes in y; it has only one class ({classes.tolist()})"
        )
    if len(classes) > 2:
        shown = classes[:5].tolist()
        raise ValueError(
            f"Only binary classification is supported: {estimator_name} needs y "
            f"with exactly 2 classes, got {len(classes)} "
            f"({shown}{' ...' if len(classes) > 5 else ''})"
        )
    return classes, (y == classes[1]).astype(np.float64) if encoded is None else encoded


class BinaryClassifier(ClassifierMixin, ChunkedEstimator):
    """A classifier of two classes. A subclass provides ``_positive_probability(X)`` on
    validated X; ``classes_`` is set by its fit, with the other fitted attributes."""

    _classifier = True

    def __sklearn_tags__(self):
        tags = super().__sklearn_tags__()
        tags.classifier_tags.multi_class = False
        return tags

    def _validate_labelled(self, X, y):
        """Validated ``(X, y as 0/1, classes)``."""
        X, y = self._validate_Xy(X, y)
        classes, y = encode_labels(type(self).__name__, y, engine.persisted_client(X))
        return X, y, classes

    def predict_proba(self, X):
        """Probabilities of ``classes_[0]`` and ``classes_[1]``, one row per sample."""
        positive = self._positive_probability(self._validate_X(X))
        module = da if isinstance(positive, da.Array) else np
        return module.stack([1.0 - positive, positive], axis=1)

    def predict(self, X):
        """The more probable class of each sample."""
        positive = self._positive_probability(self._validate_X(X))
        classes = self.classes_
        if isinstance(positive, da.Array):
            return positive.map_blocks(
                lambda p: classes[(p > 0.5).astype(int)], dtype=classes.dtype
            )
        return classes[(positive > 0.5).astype(int)]
