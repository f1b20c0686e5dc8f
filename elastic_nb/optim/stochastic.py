"""Adam and (momentum) SGD, full-batch or over mini-batches of chunks."""

from __future__ import annotations

import numpy as np

from .loop import Loop, OptimizeResult, check_finite


def _adam_update(learning_rate, beta1, beta2, epsilon):
    def update(grad, state, t):
        m = beta1 * state.get("m", 0.0) + (1 - beta1) * grad
        v = beta2 * state.get("v", 0.0) + (1 - beta2) * grad * grad
        m_hat, v_hat = m / (1 - beta1**t), v / (1 - beta2**t)
        return -learning_rate * m_hat / (np.sqrt(v_hat) + epsilon), {"m": m, "v": v}

    return update


def _momentum_update(learning_rate, momentum):
    def update(grad, state, t):
        velocity = momentum * state.get("velocity", 0.0) - learning_rate * grad
        return velocity, {"velocity": velocity}

    return update


def _no_change_rule(state, loss, tol) -> dict:
    """The stopping counters after ``loss``: best loss so far, and iterations since it
    last improved by ``tol`` (relative)."""
    if loss < state["best"] - tol * max(abs(state["best"]), 1e-12):
        return {"best": loss, "stale": 0}
    return {"best": min(state["best"], loss), "stale": state["stale"] + 1}


def _stochastic(loss_grad, theta0, update, step, *, tol, n_iter_no_change, batches, loop, state):
    """The loop of Adam and SGD: a (mini-batch) gradient, an update rule, and a stop when
    the loss has not improved by ``tol`` (relative) for ``n_iter_no_change`` iterations."""
    theta = np.asarray(theta0, dtype=np.float64).copy()
    state = dict(state or {"best": np.inf, "stale": 0, "first_loss": None})
    loss = np.inf
    for iteration in loop.iterations():
        loss, grad = loss_grad(theta, chunks=None if batches is None else batches(iteration - 1))
        if state["first_loss"] is None:
            state["first_loss"] = loss
        check_finite(loss, iteration, step, state["first_loss"])
        delta, moments = update(grad, state, iteration)
        theta = theta + delta
        state = {**state, **moments, **_no_change_rule(state, loss, tol)}
        ended = loop.after(iteration, theta, loss, state, state["stale"] >= n_iter_no_change)
        if ended is not None:
            return ended
    return loop.exhausted(theta, loss, state)


def adam(
    loss_grad,
    theta0,
    *,
    learning_rate,
    max_iter,
    tol,
    n_iter_no_change=10,
    beta1=0.9,
    beta2=0.999,
    epsilon=1e-8,
    batches=None,
    callback=None,
    state=None,
    on_iteration=None,
) -> OptimizeResult:
    """Adam (Kingma & Ba) with bias correction: m̂ = m/(1−β₁ᵗ), v̂ = v/(1−β₂ᵗ).

    ``loss_grad(theta, chunks=...)`` is evaluated on ``batches(t)`` (chunk indices of a
    mini-batch) or on all data when ``batches`` is None. Stops when the loss has not
    improved by ``tol`` (relative) for ``n_iter_no_change`` iterations; ``callback``,
    ``state`` and ``on_iteration`` as in :func:`~elastic_nb.optim.gradient_descent`.
    """
    return _stochastic(
        loss_grad,
        theta0,
        _adam_update(learning_rate, beta1, beta2, epsilon),
        learning_rate,
        tol=tol,
        n_iter_no_change=n_iter_no_change,
        batches=batches,
        loop=Loop(max_iter, callback, on_iteration, state),
        state=state,
    )


def sgd(
    loss_grad,
    theta0,
    *,
    learning_rate,
    max_iter,
    tol,
    n_iter_no_change=10,
    momentum=0.0,
    batches=None,
    callback=None,
    state=None,
    on_iteration=None,
) -> OptimizeResult:
    """(Mini-batch) stochastic gradient descent with optional heavy-ball momentum; same
    batches, stopping rule, ``state`` and ``on_iteration`` as :func:`adam`."""
    return _stochastic(
        loss_grad,
        theta0,
        _momentum_update(learning_rate, momentum),
        learning_rate,
        tol=tol,
        n_iter_no_change=n_iter_no_change,
        batches=batches,
        loop=Loop(max_iter, callback, on_iteration, state),
        state=state,
    )


def chunk_batches(n_chunks: int, batch_chunks: int, random_state: int):
    """Mini-batches of ``batch_chunks`` chunk indices; batch t is a pure function of
    (random_state, t), so a restarted run draws the same batches (no RNG state to save)."""

    def batches(t):
        rng = np.random.default_rng([random_state, t])
        return sorted(rng.choice(n_chunks, size=batch_chunks, replace=False).tolist())

    return batches
