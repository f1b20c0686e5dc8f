"""The network family: a small dense net (MLP), backpropagated per chunk in numpy."""

from __future__ import annotations

from functools import partial
from typing import NamedTuple

import numpy as np
from scipy.special import expit

from ..linear.scaling import Scaling


def _relu_derivative(z, a):
    return (z > 0).astype(z.dtype)


ACTIVATIONS = {
    # name: (activation, derivative given pre-activation z and activation a)
    "relu": (lambda z: np.maximum(z, 0.0), _relu_derivative),
    "sigmoid": (expit, lambda z, a: a * (1.0 - a)),
    "tanh": (np.tanh, lambda z, a: 1.0 - a * a),
}


class Network(NamedTuple):
    """A dense network: ``layer_sizes`` = (inputs, hidden..., 1) and how it is fed.

    Inputs are standardized inside the kernel with ``scaling``; a regression target is
    standardized with ``target`` = (mean, std), so one learning rate suits any units.
    ``output`` is "identity" (squared error) or "logistic" (binary log-loss).
    """

    layer_sizes: tuple
    activation: str
    output: str
    scaling: Scaling
    target: tuple = (0.0, 1.0)

    @property
    def n_params(self) -> int:
        """Weights and biases in all layers."""
        sizes = self.layer_sizes
        return sum((a + 1) * b for a, b in zip(sizes[:-1], sizes[1:], strict=True))


def unpack(theta, layer_sizes):
    """Split a flat parameter vector into [(W, b), ...] views."""
    params, start = [], 0
    for fan_in, fan_out in zip(layer_sizes[:-1], layer_sizes[1:], strict=True):
        weights = theta[start : start + fan_in * fan_out].reshape(fan_in, fan_out)
        start += fan_in * fan_out
        params.append((weights, theta[start : start + fan_out]))
        start += fan_out
    return params


def glorot_init(layer_sizes, random_state: int) -> np.ndarray:
    """Glorot-uniform weights, zero biases (Keras' default for dense layers)."""
    rng = np.random.default_rng(random_state)
    parts = []
    for fan_in, fan_out in zip(layer_sizes[:-1], layer_sizes[1:], strict=True):
        limit = np.sqrt(6.0 / (fan_in + fan_out))
        parts += [rng.uniform(-limit, limit, fan_in * fan_out), np.zeros(fan_out)]
    return np.concatenate(parts)


def network_output(net: Network, theta, x):
    """Raw output (before the output link) of the network for rows ``x``; also the
    layer activations and pre-activations, for backpropagation."""
    activate = ACTIVATIONS[net.activation][0]
    params = unpack(theta, net.layer_sizes)
    a = (x - net.scaling.shift) / net.scaling.scale
    activations, pre_activations = [a], []
    for weights, bias in params[:-1]:
        z = a @ weights + bias
        a = activate(z)
        pre_activations.append(z)
        activations.append(a)
    weights, bias = params[-1]
    return (a @ weights + bias)[:, 0], activations, pre_activations


def _output_loss(net: Network, out, y):
    """Summed loss of the raw outputs and its derivative in them."""
    if net.output == "identity":
        diff = out - (y - net.target[0]) / net.target[1]
        return diff @ diff, 2.0 * diff
    return np.sum(np.logaddexp(0.0, out) - y * out), expit(out) - y


def _network_kernel(net: Network, theta, x, y):
    out, activations, pre_activations = network_output(net, theta, x)
    loss, delta = _output_loss(net, out, y)
    derivative = ACTIVATIONS[net.activation][1]
    params = unpack(theta, net.layer_sizes)
    grads = []
    delta = delta[:, None]
    for layer in range(len(params) - 1, -1, -1):
        a_in = activations[layer]
        grads.append((a_in.T @ delta, delta.sum(axis=0)))
        if layer:
            z, a = pre_activations[layer - 1], activations[layer]
            delta = (delta @ params[layer][0].T) * derivative(z, a)
    flat = [g for weights, bias in reversed(grads) for g in (weights.ravel(), bias)]
    return np.concatenate([[loss, x.shape[0]], *flat])


def network_loss_grad(reduce, net: Network, l2: float, theta, chunks=None):
    """Mean loss (+ (l2/2)·||weights||²) of the network and its gradient."""
    sums = reduce(partial(_network_kernel, net, theta), size=net.n_params + 2, chunks=chunks)
    n = sums[1]
    loss, grad = sums[0] / n, sums[2:] / n
    if l2:
        weights_only = np.concatenate(
            [np.r_[np.ones(w.size), np.zeros(b.size)] for w, b in unpack(theta, net.layer_sizes)]
        )
        loss += 0.5 * l2 * np.sum(weights_only * theta * theta)
        grad = grad + l2 * weights_only * theta
    return loss, grad
