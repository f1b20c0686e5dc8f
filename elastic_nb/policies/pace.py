"""The pace model of a training run: pure data and pure functions, no cluster.

A run is a sequence of iterations; each is a pause on the client followed by ``tasks`` tasks
of about ``task_seconds`` each. On ``w`` workers of ``t`` threads an iteration takes::

    pause + ceil(tasks / (w * t)) * task_seconds + overhead

:func:`fit_pace` fits that model from measured iterations (:class:`IterationSample`);
:func:`pace_width`, :func:`deadline_width` and :func:`worth_growing` choose a width from it.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from statistics import median

from .._validation import check_float, check_int


@dataclass(frozen=True)
class IterationSample:
    """One measured iteration, between two steps of a lease.

    Parameters
    ----------
    pause : float or None
        Seconds from the previous step to the iteration's first submission (None for the
        first iteration, whose "pause" is the set-up before the run).
    span : float
        Seconds from that submission to the step ending the iteration.
    tasks : int
        Tasks finished during the iteration.
    seconds : float
        Their compute seconds, summed.
    threads : float
        Time-averaged total threads of the cluster during the span.
    steady : bool
        Whether the thread count stayed constant during the span.
    """

    pause: float | None
    span: float
    tasks: int
    seconds: float
    threads: float
    steady: bool


@dataclass(frozen=True)
class PaceModel:
    """Predicted seconds per iteration as a function of the width.

    Parameters
    ----------
    tasks : int
        Tasks per iteration (>= 1).
    task_seconds : float
        Compute seconds of one task (>= 0).
    pause : float
        The client's pause between iterations, seconds (>= 0).
    overhead : float
        Seconds an iteration took beyond its rounds of tasks (>= 0).
    threads_per_worker : int
        Threads of one worker (>= 1).
    """

    tasks: int
    task_seconds: float
    pause: float
    overhead: float
    threads_per_worker: int

    def __post_init__(self):
        check_int("tasks", self.tasks, minimum=1)
        check_int("threads_per_worker", self.threads_per_worker, minimum=1)
        for name in ("task_seconds", "pause", "overhead"):
            check_float(name, getattr(self, name), minimum=0.0)

    @property
    def useful_width(self) -> int:
        """The widest cluster the tasks of one iteration can keep busy."""
        return math.ceil(self.tasks / self.threads_per_worker)

    def predict(self, width) -> float:
        """Seconds per iteration on ``width`` workers (>= 1)."""
        width = check_int("width", width, minimum=1)
        rounds = math.ceil(self.tasks / (width * self.threads_per_worker))
        return self.pause + rounds * self.task_seconds + self.overhead

    def describe(self) -> str:
        """A short human summary for decision reasons."""
        return (
            f"{self.tasks} tasks x {self.task_seconds:.2f} s, pause {self.pause:.2f} s, "
            f"overhead {self.overhead:.2f} s"
        )


def fit_pace(samples, pauses, threads_per_worker, history=5):
    """Fit a :class:`PaceModel` from measured iterations.

    Medians make one slow iteration harmless. The overhead is what a steady iteration's span
    had beyond its rounds of tasks at the width it ran on.

    Parameters
    ----------
    samples : sequence of IterationSample
        Recent iterations, oldest first.
    pauses : sequence of float
        Measured pauses, oldest first (the pause before the iteration in progress included).
    threads_per_worker : int
    history : int, default 5
        Pauses the median is taken over.

    Returns
    -------
    PaceModel or None
        None until at least one iteration and one pause have been measured.
    """
    if not samples or not pauses:
        return None
    tasks = max(1, round(median(s.tasks for s in samples)))
    total_tasks = sum(s.tasks for s in samples)
    task_seconds = sum(s.seconds for s in samples) / total_tasks if total_tasks else 0.0
    overheads = [
        max(0.0, s.span - math.ceil(s.tasks / max(s.threads, 1)) * task_seconds)
        for s in samples
        if s.steady
    ]
    return PaceModel(
        tasks=tasks,
        task_seconds=max(0.0, task_seconds),
        pause=max(0.0, median(list(pauses)[-history:])),
        overhead=median(overheads) if overheads else 0.0,
        threads_per_worker=max(1, int(threads_per_worker)),
    )


def _widest(model, maximum):
    """The widest width worth considering: the useful width, within ``maximum``."""
    return max(1, int(min(maximum, model.useful_width)))


def pace_width(model, slowdown, maximum=math.inf):
    """Smallest width whose iterations are within ``slowdown`` of the widest's pace.

    Parameters
    ----------
    model : PaceModel
    slowdown : float
        Allowed factor (>= 1) over the seconds per iteration on the widest cluster.
    maximum : int or float, default inf
        The widest cluster allowed; widths beyond ``model.useful_width`` gain nothing and
        are never chosen.

    Returns
    -------
    (int, str)
        The width and why.
    """
    hi = _widest(model, maximum)
    best = model.predict(hi)
    for w in range(1, hi + 1):
        if model.predict(w) <= slowdown * best + 1e-9:
            return w, (
                f"{w} worker(s) keep the pace: {model.predict(w):.2f} s per iteration vs "
                f"{best:.2f} s on {hi} (slowdown <= {slowdown:g}; {model.describe()})"
            )
    return hi, "the widest cluster keeps the pace"  # not reached: hi always qualifies


def deadline_width(model, remaining, seconds_left, maximum=math.inf):
    """Smallest width predicted to finish ``remaining`` iterations in ``seconds_left``.

    Returns
    -------
    (int, str)
        The width and why; the widest useful width when none makes it.
    """
    hi = _widest(model, maximum)
    for w in range(1, hi + 1):
        if remaining * model.predict(w) <= seconds_left:
            return w, (
                f"{w} worker(s) finish the {remaining} iterations left "
                f"({model.predict(w):.2f} s each) within the deadline ({seconds_left:.0f} s left)"
            )
    return hi, f"no width meets the deadline ({seconds_left:.0f} s left): the widest, {hi}"


def worth_growing(model, remaining, held, width, startup):
    """Whether going from ``held`` to ``width`` workers saves more than a start-up costs.

    Parameters
    ----------
    model : PaceModel
    remaining : float
        Iterations left (``inf``: unknown, always worth it).
    held, width : int
        The width now and the one proposed.
    startup : float
        Seconds a new worker takes to start.
    """
    if width <= held or held < 1 or math.isinf(remaining):
        return True
    return remaining * (model.predict(held) - model.predict(width)) >= startup
