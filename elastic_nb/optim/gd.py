"""Full-batch gradient descent with Armijo backtracking."""

from __future__ import annotations

import numpy as np

from .loop import Loop, OptimizeResult, check_finite


def _armijo_step(loss_grad, theta, loss, grad, step, growth, line_search):
    """One iteration: ``(theta, loss, grad, step, growth)`` after trying ``theta − step·∇``.

    A step is kept only if J fell by at least α/2 ||∇J||² (always true for α <= 1/L),
    halved otherwise; accepted steps grow it, so a pessimistic bound costs a few
    iterations, not hundreds. The candidate's loss and gradient come from one pass."""
    candidate = theta - step * grad
    new_loss, new_grad = loss_grad(candidate)
    if not line_search or new_loss <= loss - 0.5 * step * (grad @ grad):
        return candidate, new_loss, new_grad, step * growth if line_search else step, growth
    return theta, loss, grad, step * 0.5, 1.25  # past a backtrack, creep up, don't bounce


def gradient_descent(
    loss_grad,
    theta0,
    *,
    step,
    max_iter,
    tol,
    line_search=True,
    callback=None,
    state=None,
    on_iteration=None,
) -> OptimizeResult:
    """Full-batch gradient descent ``θ ← θ − α ∇J(θ)``, one data pass per iteration.

    Parameters
    ----------
    loss_grad : callable
        ``theta -> (loss, gradient)``.
    theta0 : ndarray
        Start (or, with ``state``, where a run left off).
    step : float
        The first step (1/L from a Lipschitz bound); with ``line_search`` it then follows
        Armijo backtracking, else it stays fixed.
    max_iter, tol : int, float
        Stops when max |∇J| <= tol · max |∇J(θ0)|, or after ``max_iter`` iterations in all.
    callback : callable, optional
        ``callback({"iteration", "loss"})``; raising StopIteration ends the run.
    state : dict, optional
        A result's or a checkpoint's state: continues that run bit for bit.
    on_iteration : callable, optional
        ``on_iteration(theta, state)`` at every iteration's end.
    """
    theta = np.asarray(theta0, dtype=np.float64).copy()
    loop = Loop(max_iter, callback, on_iteration, state)
    loss, grad = loss_grad(theta)
    state = state or {
        "step": step,
        "growth": 2.0,
        "threshold": tol * np.max(np.abs(grad), initial=0.0),
        "first_loss": loss,
    }
    step, growth = state["step"], state["growth"]
    if not np.any(grad):
        return loop.already_converged(theta, loss, state)
    for iteration in loop.iterations():
        theta, loss, grad, step, growth = _armijo_step(
            loss_grad, theta, loss, grad, step, growth, line_search
        )
        state = {**state, "step": step, "growth": growth}
        converged = bool(np.max(np.abs(grad)) <= state["threshold"])
        ended = loop.after(iteration, theta, loss, state, converged)
        if ended is not None:
            return ended
        check_finite(loss, iteration, step, state["first_loss"])
    return loop.exhausted(theta, loss, state)
