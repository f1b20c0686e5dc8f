"""Damped Newton's method, for losses whose Hessian is small (p×p)."""

from __future__ import annotations

import numpy as np

from .loop import Loop, OptimizeResult


def _newton_step(hessian, grad):
    """The Newton direction ``H⁻¹g`` and the decrement ``½ gᵀH⁻¹g``: the loss a full
    step is expected to gain, which is also how far the point is from the optimum."""
    direction = np.linalg.lstsq(hessian, grad, rcond=None)[0]
    return direction, 0.5 * float(grad @ direction)


def newton(
    loss_grad_hess, theta0, *, max_iter, tol, callback=None, state=None, on_iteration=None
) -> OptimizeResult:
    """Damped Newton's method: one pass per iteration gives loss, gradient and Hessian.

    ``loss_grad_hess(theta) -> (loss, gradient, Hessian)``. The full step is tried first;
    if the loss rose, the step is halved from the previous point. Stops when the Newton
    decrement ``½ gᵀH⁻¹g`` (the loss still to gain, to second order) is at most
    ``tol · max(1, |loss|)``: a rule about the point reached, not about ``theta0``, so a
    warm start is judged as a cold one is. ``callback``, ``state`` and ``on_iteration`` as
    in :func:`~elastic_nb.optim.gradient_descent`.
    """
    theta = np.asarray(theta0, dtype=np.float64).copy()
    loop = Loop(max_iter, callback, on_iteration, state)
    loss, grad, hessian = loss_grad_hess(theta)
    state = {"scale": 1.0, **(state or {})}
    direction, decrement = _newton_step(hessian, grad)
    if not np.any(grad) or decrement <= tol * max(1.0, abs(loss)):
        return loop.already_converged(theta, loss, state)
    scale = state["scale"]
    for iteration in loop.iterations():
        candidate = theta - scale * direction
        new_loss, new_grad, new_hessian = loss_grad_hess(candidate)
        accepted = new_loss <= loss + 1e-12 * abs(loss)
        if accepted:
            theta, loss, grad = candidate, new_loss, new_grad
            (direction, decrement), scale = _newton_step(new_hessian, grad), 1.0
        else:
            scale *= 0.5
        state = {**state, "scale": scale}
        converged = bool(accepted and decrement <= tol * max(1.0, abs(loss)))
        ended = loop.after(iteration, theta, loss, state, converged)
        if ended is not None:
            return ended
    return loop.exhausted(theta, loss, state)
