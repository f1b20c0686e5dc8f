"""What every optimizer's loop shares: numbering, callback, checkpoint hook, result."""

from __future__ import annotations

from typing import NamedTuple

import numpy as np

#: A loss this many times its first value means the iterates diverge.
DIVERGENCE_FACTOR = 1e6


class OptimizeResult(NamedTuple):
    """The end of a run: the parameters and loss, the iterations done in all (across
    restarts), whether it converged or the callback stopped it, and the state a restart
    needs (always with ``"iteration"``)."""

    theta: np.ndarray
    loss: float
    n_iter: int
    converged: bool
    stopped: bool  # the callback raised StopIteration
    state: dict


def report(callback, iteration, loss) -> bool:
    """Call back; True if the callback asked to stop."""
    if callback is None:
        return False
    try:
        callback({"iteration": iteration, "loss": float(loss)})
    except StopIteration:
        return True
    return False


def check_finite(loss, iteration, step, first_loss):
    """Raise FloatingPointError, naming the step size, once the iterates diverge."""
    if not np.isfinite(loss) or loss > DIVERGENCE_FACTOR * max(first_loss, 1e-300):
        raise FloatingPointError(
            f"the loss diverged ({first_loss:.3g} -> {loss:.3g} at iteration {iteration}): "
            f"the learning rate ({step:g}) is too large for this data"
        )


class Loop:
    """Iteration bookkeeping shared by the optimizers.

    State
    -----
    max_iter : int
        Iterations in all, counted across restarts.
    callback, on_iteration : callable or None
        ``callback({"iteration", "loss"})`` may raise StopIteration to end the run;
        ``on_iteration(theta, state)`` sees each iteration's end (checkpoints).
    first : int
        The first iteration this run does: 1, or one past a restarted state's.
    """

    def __init__(self, max_iter, callback, on_iteration, state):
        self.max_iter, self.callback, self.on_iteration = max_iter, callback, on_iteration
        self.first = int(state.get("iteration", 0)) + 1 if state else 1

    def iterations(self):
        """The iteration numbers left to do."""
        return range(self.first, self.max_iter + 1)

    def after(self, iteration, theta, loss, state, converged):
        """Record one finished iteration; a result if the run ends here, else None."""
        state = {**state, "iteration": iteration}
        stopped = report(self.callback, iteration, loss)  # the history first, then a save
        if self.on_iteration is not None:
            self.on_iteration(theta, state)
        if stopped:
            return OptimizeResult(theta, loss, iteration, converged, True, state)
        if converged:
            return OptimizeResult(theta, loss, iteration, True, False, state)
        return None

    def already_converged(self, theta, loss, state):
        """The result of a run that has nothing to do (a zero gradient at the start)."""
        iteration = self.first - 1
        return OptimizeResult(
            theta, loss, iteration, True, False, {**state, "iteration": iteration}
        )

    def exhausted(self, theta, loss, state):
        """The result of a run that used all ``max_iter`` iterations."""
        state = {**state, "iteration": self.max_iter}
        return OptimizeResult(theta, loss, self.max_iter, False, False, state)
