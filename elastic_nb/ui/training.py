"""What the panel's Train does: read the fields into a model and data, and fit it in a
background thread under a lease, so the ``"training"`` policy scales for the run."""

from __future__ import annotations

import threading
import time

from sklearn.base import is_classifier
from tqdm.std import tqdm

from .. import datasets
from ..estimators import FIRST_ORDER
from .controls import MODELS, parse_learning_rate


def _user_namespace():
    from IPython import get_ipython

    shell = get_ipython()
    return {} if shell is None else shell.user_ns


def panel_model(panel):
    """A new estimator from the panel's model, solver, learning rate and iterations."""
    estimator, solvers = MODELS[panel.model_choice.value]
    if panel.solver.value not in solvers:
        raise ValueError(
            f"solver must be one of {', '.join(solvers)} for {panel.model_choice.value}, "
            f"got {panel.solver.value!r}"
        )
    params = {
        "solver": panel.solver.value,
        "max_iter": panel.iterations.value,
        "learning_rate": parse_learning_rate(panel.learning_rate.value),
    }
    if panel.solver.value in FIRST_ORDER:
        params["tol"] = 0.0  # run the iterations asked for; Stop ends early
    return estimator(**params)


def panel_data(panel):
    """(X, y) for the chosen dataset: generated on the workers, or the notebook's."""
    kind, rows, chunk_rows = panel.dataset.value, panel.rows.value, panel.chunk_rows.value
    if kind == "notebook variables":
        names = [n.strip() for n in panel.variables.value.split(",")]
        if len(names) != 2 or not all(n.isidentifier() for n in names):
            raise ValueError(
                f"variables must be two names like 'X, y', got {panel.variables.value!r}"
            )
        namespace = _user_namespace()
        missing = [n for n in names if n not in namespace]
        if missing:
            raise ValueError(f"no variable named {missing[0]!r} in this notebook")
        return namespace[names[0]], namespace[names[1]]
    if chunk_rows > rows:
        raise ValueError(f"chunk rows ({chunk_rows}) must be <= rows ({rows})")
    estimator, _ = MODELS[panel.model_choice.value]
    classifier = is_classifier(estimator())
    if kind == "XOR":
        if not classifier:
            raise ValueError("XOR is a classification problem: choose a classifier")
        return datasets.make_xor(rows, chunk_rows)
    make = datasets.make_classification if classifier else datasets.make_regression
    X, y, _ = make(rows, panel.features.value, chunk_rows)
    return X, y


class Trainer:
    """One fit of the panel, in its own thread, holding a lease on the cluster.

    State
    -----
    run : str
        The run's name in the monitor's stream (``run-1``, ``run-2``, ...).
    done, total : int
        Iterations finished and asked for.
    last : dict or None
        The latest iteration record (``loss``, ``elapsed``, ...).
    eta : str
        "done/total · ETA" while it runs, "done/total" after.
    error : Exception or None
        What the fit raised (set before the thread ends).
    outcome : str
        ``"running"``, then ``"finished"``, ``"stopped"`` or ``"failed"``.

    The thread changes only these attributes and the monitor's stream; the panel's
    updater renders them. ``on_end(trainer)`` is called in the thread when the fit ends.
    """

    def __init__(self, cluster, monitor, model, X, y, on_end):
        self.cluster, self.monitor, self.on_end = cluster, monitor, on_end
        self.model, self.X, self.y = model, X, y
        self._record = monitor.training_callback()
        self.run = self._record.run
        self.done, self.total = 0, model.max_iter
        self.last, self.eta, self.error, self.outcome = None, "", None, "running"
        self._stop, self._running = threading.Event(), threading.Event()
        self._running.set()
        self._started = time.perf_counter()
        self._thread = threading.Thread(target=self._fit, name="enb-train", daemon=True)

    def start(self):
        self._thread.start()
        return self

    @property
    def running(self) -> bool:
        return self._thread.is_alive()

    @property
    def paused(self) -> bool:
        return not self._running.is_set()

    def join(self, timeout=None):
        if self._thread.is_alive() and threading.current_thread() is not self._thread:
            self._thread.join(timeout)

    def pause(self):
        self._running.clear()

    def resume(self):
        self._running.set()

    def stop(self):
        self._stop.set()
        self._running.set()  # a paused fit must wake up to stop

    def _callback(self, lease):
        def callback(record):
            self._record(record)
            lease.callback(record)
            self.last, self.done = record, min(record["iteration"], self.total)
            per_iteration = (time.perf_counter() - self._started) / max(self.done, 1)
            left = tqdm.format_interval(per_iteration * (self.total - self.done))
            self.eta = f"{self.done}/{self.total} · ETA {left}"
            self._running.wait()  # Pause holds the fit here, between iterations
            if self._stop.is_set():
                raise StopIteration

        return callback

    def _fit(self):
        monitor, cluster = self.monitor, self.cluster
        monitor.run_status(self.run, "started")
        iterations = self.total if self.model.solver in FIRST_ORDER else None
        try:
            with cluster.training(iterations=iterations, name=self.run) as lease:
                self.model.callback = self._callback(lease)
                X, y = self.X, self.y
                if hasattr(X, "dask"):
                    X, y = cluster.client.persist([X, y])
                self.model.fit(X, y)
        except Exception as err:
            self.error, self.outcome = err, "failed"
            monitor.run_status(self.run, "failed", str(err))
        else:
            self.outcome = "stopped" if self._stop.is_set() else "finished"
            self.eta = f"{self.model.n_iter_}/{self.total}"
            monitor.run_status(self.run, self.outcome)
        finally:
            self.on_end(self)
