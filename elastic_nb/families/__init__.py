"""Loss families, as dask-glm's: per-chunk kernels of loss sums and gradients.

A family turns parameters into a kernel ``kernel(x, y) -> [loss sum, rows, gradient
sums...]`` and a reducer's sum of it into ``(mean loss, gradient)``: the ``loss_grad``
every optimizer in :mod:`elastic_nb.optim` takes. Pure numpy; the reducer is an argument.
"""

from .glm import (
    LOGISTIC,
    SQUARED,
    LinearFamily,
    linear_loss_grad,
    lipschitz_bound,
    logistic_loss_grad_hess,
    split_theta,
    standardized,
    with_l2,
)
from .network import ACTIVATIONS, Network, glorot_init, network_loss_grad, network_output

__all__ = [
    "ACTIVATIONS",
    "LOGISTIC",
    "SQUARED",
    "LinearFamily",
    "Network",
    "glorot_init",
    "linear_loss_grad",
    "lipschitz_bound",
    "logistic_loss_grad_hess",
    "network_loss_grad",
    "network_output",
    "split_theta",
    "standardized",
    "with_l2",
]
