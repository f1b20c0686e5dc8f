"""Damped Newton's method, for losses whose Hessian is small (p×p)."""

from __future__ import annotations

import numpy as np

from .loop import Loop, OptimizeResult


def _newton_direction(hessian, grad):
    return np.linalg.lstsq(hessian, grad, rcond=None)[0]


def newton(
    loss_grad_hess, theta0, *, max_iter, tol, callback=None, state=None, on_iteration=None
) -> OptimizeResult:
    """Damped Newton's method: one pass per iteration gives loss, gradient and Hessian.

    ``loss_grad_hess(theta) -> (loss, gradient, Hessian)``. The full step is tried first;
    if the loss rose, the step is halved from the previous point. Stops when
    max |∇J| <= tol · max |∇J(θ0)|; ``callback``, ``state`` and ``on_iteration`` as in
    :func:`~elastic_nb.optim.gradient_descent`.
    """
    theta = np.asarray(theta0, dtype=np.float64).copy()
    loop = Loop(max_iter, callback, on_iteration, state)
    loss, grad, hessian = loss_grad_hess(theta)
    state = state or {"threshold": tol * np.max(np.abs(grad), initial=0.0), "scale": 1.0}
    if not np.any(grad):
        return loop.already_converged(theta, loss, state)
    direction, scale = _newton_direction(hessian, grad), state["scale"]
    for iteration in loop.iterations():
        candidate = theta - scale * direction
        new_loss, new_grad, new_hessian = loss_grad_hess(candidate)
        if new_loss <= loss + 1e-12 * abs(loss):
            theta, loss, grad = candidate, new_loss, new_grad
            direction, scale = _newton_direction(new_hessian, grad), 1.0
        else:
            scale *= 0.5
        state = {**state, "scale": scale}
        converged = bool(np.max(np.abs(grad)) <= state["threshold"])
        ended = loop.after(iteration, theta, loss, state, converged)
        if ended is not None:
            return ended
    return loop.exhausted(theta, loss, state)
