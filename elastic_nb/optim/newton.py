"""Damped Newton's method, for losses whose Hessian is small (p×p)."""

from __future__ import annotations

import numpy as np

from .loop import Loop, OptimizeResult

#: With ``loss_grad`` given, the Hessian is kept for the next step as long as each step
#: cuts the Newton decrement at least this much (near the optimum it changes little, and
#: a pass without it is several times cheaper); otherwise the next pass computes it anew.
REUSE_CONTRACTION = 0.25


def _newton_step(hessian, grad):
    """The Newton direction ``H⁻¹g`` and the decrement ``½ gᵀH⁻¹g``: the loss a full
    step is expected to gain, which is also how far the point is from the optimum."""
    direction = np.linalg.lstsq(hessian, grad, rcond=None)[0]
    return direction, 0.5 * float(grad @ direction)


def newton(
    loss_grad_hess,
    theta0,
    *,
    max_iter,
    tol,
    loss_grad=None,
    callback=None,
    state=None,
    on_iteration=None,
) -> OptimizeResult:
    """Damped Newton's method: one pass per iteration gives loss, gradient and Hessian.

    ``loss_grad_hess(theta) -> (loss, gradient, Hessian)``. The full step is tried first;
    if the loss rose, the step is halved from the previous point, with a fresh Hessian.
    With ``loss_grad(theta) -> (loss, gradient)`` as well, a Hessian is reused while it
    keeps cutting the decrement by REUSE_CONTRACTION per step (Shamanskii's variant),
    so that once near the optimum a step costs a gradient pass only.

    Stops when the Newton decrement ``½ gᵀH⁻¹g`` (the loss still to gain, to second
    order) is at most ``tol · max(1, |loss|)``: a rule about the point reached, not about
    ``theta0``, so a warm start is judged as a cold one is. ``callback``, ``state`` and
    ``on_iteration`` as in :func:`~elastic_nb.optim.gradient_descent`.
    """
    theta = np.asarray(theta0, dtype=np.float64).copy()
    loop = Loop(max_iter, callback, on_iteration, state)
    state = {"scale": 1.0, **(state or {})}
    loss, grad, hessian, fresh = _evaluate_start(loss_grad_hess, loss_grad, theta, state)
    direction, decrement = _newton_step(hessian, grad)
    if not np.any(grad) or decrement <= tol * max(1.0, abs(loss)):
        return loop.already_converged(theta, loss, state)
    scale, reuse = state["scale"], loss_grad is not None and state.get("reuse", True)
    for iteration in loop.iterations():
        candidate = theta - scale * direction
        if reuse:
            (new_loss, new_grad), new_hessian = loss_grad(candidate), hessian
        else:
            new_loss, new_grad, new_hessian = loss_grad_hess(candidate)
        accepted = new_loss <= loss + 1e-12 * abs(loss)
        if accepted:
            theta, loss, grad, hessian = candidate, new_loss, new_grad, new_hessian
            fresh, previous = not reuse, decrement
            (direction, decrement), scale = _newton_step(hessian, grad), 1.0
            reuse = loss_grad is not None and decrement <= REUSE_CONTRACTION * previous
        else:
            scale, reuse = 0.5 * scale, False
        # all a restart needs to take the same steps: the Hessian in use, and whether the
        # gradient at theta came from the pass that computed it
        state = {**state, "scale": scale, "reuse": reuse, "hessian": hessian, "fresh": fresh}
        converged = bool(accepted and decrement <= tol * max(1.0, abs(loss)))
        ended = loop.after(iteration, theta, loss, state, converged)
        if ended is not None:
            return ended
    return loop.exhausted(theta, loss, state)


def _evaluate_start(loss_grad_hess, loss_grad, theta, state):
    """``(loss, grad, hessian, fresh)`` at the start: a resumed run whose gradient came
    from a gradient-only pass takes the same pass and the Hessian it saved, so that it
    repeats the undisturbed run's steps bit for bit."""
    saved = state.get("hessian")
    if saved is not None and loss_grad is not None and not state.get("fresh", True):
        loss, grad = loss_grad(theta)
        return loss, grad, np.asarray(saved), False
    return (*loss_grad_hess(theta), True)
