"""Optimizers as pure functions of a ``loss_grad(theta) -> (loss, gradient)``.

They know nothing of data, clusters or estimators: each iteration is reported to a
callback, and everything a restart needs is in ``OptimizeResult.state``, so a run resumed
from a checkpoint continues bit for bit.
"""

from .gd import gradient_descent
from .loop import DIVERGENCE_FACTOR, OptimizeResult
from .newton import newton
from .stochastic import adam, chunk_batches, sgd

__all__ = [
    "DIVERGENCE_FACTOR",
    "OptimizeResult",
    "adam",
    "chunk_batches",
    "gradient_descent",
    "newton",
    "sgd",
]
