"""The notebook control panel: launch an elastic cluster, train, and watch it live.

Every button has a method of the same meaning (``launch``, ``scale``, ``train``,
``pause``, ``resume``, ``stop``, ``shutdown``, ``close``), and :meth:`ControlPanel.run`
replays clicks by name, so scripts and nbval run exactly what a click runs.
"""

from __future__ import annotations

import html
import threading
import time
import traceback

import ipywidgets as w
from IPython.display import display
from jupyter_bokeh import BokehModel
from tqdm.std import tqdm

from . import datasets
from .cluster import ElasticCluster
from .models import LinearRegression, LogisticRegression, MLPClassifier, MLPRegressor
from .monitor import Monitor
from .plots import LivePlots
from .policy import POLICIES

#: Errors that mean "the input or the environment is wrong": shown as one sentence.
USER_ERRORS = (ValueError, TypeError, OSError, RuntimeError, TimeoutError, FloatingPointError)


class _StreamSafeBokehModel(BokehModel):
    """BokehModel with two jupyter_bokeh 4.1 fixes.

    The browser echoes our own changes back: a ``stream`` echo would append every row
    twice to the kernel-side source, and a ``data`` echo arrives late (when the kernel is
    next idle) and would overwrite rows streamed since. Both echoes are dropped. And
    ``close`` is made idempotent.
    """

    _closed = False

    def _sync_model(self, model, content, buffers):
        kind, attribute = content.get("kind"), content.get("attr")
        if kind == "ColumnsStreamed" or (kind == "ModelChanged" and attribute == "data"):
            return  # echoes of our own stream / source.data = ...; applied late, they
            # would overwrite rows streamed since (the kernel handles them when idle)
        super()._sync_model(model, content, buffers)

    def close(self):
        # BokehModel.close() fails when called twice (explicitly, then from __del__).
        if not self._closed:
            self._closed = True
            super().close()


def load_bokehjs():
    """Put BokehJS in the page, inline: the notebook may have no internet (Binder, CI)."""
    from bokeh.io import output_notebook
    from bokeh.resources import INLINE

    output_notebook(INLINE, hide_banner=True)


def _plot_widgets(plots: LivePlots, everything=False):
    shown = [
        _styled(_StreamSafeBokehModel(plots.workers_figure), "workers-plot"),
        _styled(_StreamSafeBokehModel(plots.loss_figure), "loss-plot"),
    ]
    if everything:
        shown += [
            _styled(_StreamSafeBokehModel(plots.loss_time_figure), "loss-time-plot"),
            _styled(_StreamSafeBokehModel(plots.throughput_figure), "throughput-plot"),
            _styled(_StreamSafeBokehModel(plots.memory_figure), "memory-plot"),
        ]
    return shown


def live_view(monitor, period=0.2):
    """Live plots of ``monitor`` (workers over time, loss per iteration) as a widget.

    Returns the widget; its ``plots`` attribute is the running :class:`LivePlots`
    (``widget.plots.stop()`` stops the updates).
    """
    load_bokehjs()
    plots = LivePlots(monitor).start(period)
    view = _styled(w.HBox(_plot_widgets(plots)), "live-view")
    view.plots = plots
    return view


def _parse_learning_rate(text: str):
    text = text.strip()
    if text in ("", "auto"):
        return None
    try:
        value = float(text)
    except ValueError:
        raise ValueError(f"learning rate must be a number or 'auto', got {text!r}") from None
    if not value > 0:
        raise ValueError(f"learning rate must be > 0, got {text!r}")
    return value


def _close_tree(widget):
    for child in getattr(widget, "children", ()):
        _close_tree(child)
    widget.close()


def _styled(widget, name):
    widget.add_class(f"enb-{name}")
    return widget


#: The panel's models: estimator, its solvers, and the kind of target it needs.
MODELS = {
    "linear regression": (LinearRegression, ("auto", "normal", "tsqr", "gd", "sgd", "adam")),
    "logistic regression": (LogisticRegression, ("newton", "gd", "adam")),
    "MLP regressor": (MLPRegressor, ("adam", "sgd")),
    "MLP classifier": (MLPClassifier, ("adam", "sgd")),
}
DATASETS = ("synthetic", "XOR", "notebook variables")


#: Room for the longest description ("learning rate", "memory/worker") in every field.
LABELS = {"description_width": "7.5em"}


def _text(value, name, description, **kwargs):
    return _styled(w.Text(value, description=description, style=LABELS, **kwargs), name)


def _integer(value, name, description, low, high):
    widget = w.BoundedIntText(value, min=low, max=high, description=description, style=LABELS)
    return _styled(widget, name)


def _button(name, description, icon, **kwargs):
    return _styled(w.Button(description=description, icon=icon, **kwargs), name)


def _user_namespace():
    from IPython import get_ipython

    shell = get_ipython()
    return {} if shell is None else shell.user_ns


class ControlPanel:
    """Launch an elastic cluster (or connect to one), train a model on it, watch both live.

    State
    -----
    cluster : ElasticCluster or None
        The cluster this panel launched or connected to. :meth:`shutdown` closes it (a
        cluster the panel only connected to is left running; only the client closes).
    monitor : Monitor or None
        Samples ``cluster``; every label and plot reads from it.
    plots : LivePlots or None
    model : the estimator of the latest training run.

    Training runs in a background thread: the kernel answers other cells meanwhile. Stop
    takes effect after the current iteration; Pause holds the fit between iterations.
    """

    def __init__(
        self,
        minimum=1,
        maximum=2,
        rows=200_000,
        features=16,
        chunk_rows=20_000,
        solver="gd",
        iterations=50,
        model="linear regression",
        policy="default",
    ):
        self.cluster = self.monitor = self.plots = self.model = None
        self._trainer = None
        self._stop_training = threading.Event()
        self._running = threading.Event()  # cleared while paused
        self._last_iteration = None

        # cluster
        self.backend = _styled(
            w.Dropdown(options=["local", "scheduler address"], description="backend"), "backend"
        )
        self.address = _text("", "address", "address", placeholder="tls://host:8786")
        self.minimum = _integer(minimum, "minimum", "minimum", 0, 512)
        self.maximum = _integer(maximum, "maximum", "maximum", 1, 512)
        self.threads = _integer(1, "threads", "threads/worker", 1, 256)
        self.memory = _text("auto", "memory", "memory/worker")
        self.policy = _styled(
            w.Dropdown(options=list(POLICIES), value=policy, description="policy"), "policy"
        )
        self.launch_button = _button("launch", "Launch", "play", button_style="success")
        self.shutdown_button = _button("shutdown", "Stop cluster", "power-off", disabled=True)
        self.scale_to = _integer(maximum, "scale-to", "workers", 0, 512)
        self.scale_button = _button("scale", "Scale", "arrows-alt-h", disabled=True)
        self.workers = _styled(w.Label("workers: 0"), "workers")
        self.dashboard = _styled(w.HTML("", layout=w.Layout(margin="0 0 0 1em")), "dashboard")
        # training
        self.dataset = _styled(
            w.Dropdown(options=DATASETS, description="data", style=LABELS), "dataset"
        )
        self.variables = _text("X, y", "variables", "variables")
        self.rows = _integer(rows, "rows", "rows", 1, 10**10)
        self.features = _integer(features, "features", "features", 1, 10_000)
        self.chunk_rows = _integer(chunk_rows, "chunk-rows", "chunk rows", 1, 10**9)
        self.model_choice = _styled(
            w.Dropdown(options=list(MODELS), value=model, description="model"), "model"
        )
        self.solver = _styled(
            w.Dropdown(options=MODELS[model][1], value=solver, description="solver"), "solver"
        )
        self.learning_rate = _text("auto", "learning-rate", "learning rate")
        self.iterations = _integer(iterations, "iterations", "iterations", 1, 1_000_000)
        self.train_button = _button(
            "train", "Train", "rocket", button_style="primary", disabled=True
        )
        self.pause_button = _button("pause", "Pause", "pause", disabled=True)
        self.stop_button = _button("stop", "Stop", "stop", disabled=True)
        self.progress = _styled(
            w.IntProgress(0, min=0, max=iterations, description="progress"), "progress"
        )
        self.eta = _styled(w.Label(""), "eta")
        self.status = _styled(w.HTML(""), "status")
        self.message = _styled(w.HTML(""), "message")
        self.plot_area = _styled(
            w.GridBox([], layout=w.Layout(grid_template_columns="repeat(2, 470px)")), "plots"
        )

        self.model_choice.observe(self._model_changed, names="value")
        self.backend.observe(self._backend_changed, names="value")
        self._backend_changed()
        for button, action in [
            (self.launch_button, self.launch),
            (self.shutdown_button, self.shutdown),
            (self.scale_button, self.scale),
            (self.train_button, self.train),
            (self.pause_button, self._toggle_pause),
            (self.stop_button, self.stop),
        ]:
            button.on_click(self._clicked(action))

        row = w.HBox
        self.widget = _styled(
            w.VBox(
                [
                    w.HTML("<b>Cluster</b>"),
                    row([self.backend, self.address]),
                    row([self.minimum, self.maximum, self.policy]),
                    row([self.threads, self.memory]),
                    row(
                        [self.launch_button, self.shutdown_button, self.scale_to, self.scale_button]
                    ),
                    row([self.workers, self.dashboard]),
                    w.HTML("<b>Training</b>"),
                    row([self.dataset, self.variables]),
                    row([self.rows, self.features, self.chunk_rows]),
                    row([self.model_choice, self.solver]),
                    row([self.learning_rate, self.iterations]),
                    row(
                        [
                            self.train_button,
                            self.pause_button,
                            self.stop_button,
                            self.progress,
                            self.eta,
                        ]
                    ),
                    self.status,
                    self.message,
                    self.plot_area,
                ]
            ),
            "panel",
        )

    def _ipython_display_(self):
        load_bokehjs()
        display(self.widget)

    def _model_changed(self, _change=None):
        self.solver.options = MODELS[self.model_choice.value][1]

    def _backend_changed(self, _change=None):
        local = self.backend.value == "local"
        self.address.layout.display = "none" if local else None
        for control in (self.minimum, self.maximum, self.threads, self.memory, self.policy):
            control.disabled = not local

    # ---------------------------------------------------------------- messages
    def _show_error(self, err):
        details = html.escape("".join(traceback.format_exception(err)))
        self.message.value = (
            f"<details class='enb-error'><summary>⚠ {html.escape(str(err))}</summary>"
            f"<pre>{details}</pre></details>"
        )

    def _say(self, text):
        self.message.value = html.escape(text)

    def _clicked(self, action):
        def handler(_button):
            try:
                action()
            except Exception as err:  # one sentence in the panel, the details folded
                self._show_error(err)

        return handler

    def _fail(self, error):
        self._show_error(error)
        raise error

    def _reporting(self, action, *args, **kwargs):
        try:
            return action(*args, **kwargs)
        except USER_ERRORS as err:
            self._show_error(err)
            raise

    def run(self, *clicks, wait=True):
        """Click buttons by name, in order: ``panel.run("launch", "train")``.

        Errors are shown in the panel, as for a click, and raised. With ``wait`` a
        "train" click returns when the fit ends."""
        actions = {
            "launch": self.launch,
            "shutdown": self.shutdown,
            "scale": self.scale,
            "train": lambda: self.train(wait=wait),
            "pause": self.pause,
            "resume": self.resume,
            "stop": self.stop,
        }
        for click in clicks:
            if click not in actions:
                self._fail(
                    ValueError(f"unknown click {click!r}; the buttons are {', '.join(actions)}"),
                )
            actions[click]()
        return self

    # ----------------------------------------------------------------- cluster
    def _new_cluster(self):
        if self.backend.value == "local":
            memory = self.memory.value.strip()
            return ElasticCluster(
                minimum=self.minimum.value,
                maximum=self.maximum.value,
                threads_per_worker=self.threads.value,
                memory_limit=memory if memory else "auto",
                policy=self.policy.value,
            )
        address = self.address.value.strip()
        if not address:
            raise ValueError("enter the scheduler's address, e.g. tcp://10.0.0.5:8786")
        return ElasticCluster(address=address, connect_timeout=5)

    def launch(self):
        """Start an adaptive local cluster (or connect to the scheduler address)."""
        if self.cluster is not None:
            self._fail(RuntimeError("a cluster is running; stop it first"))
        self._say("launching…" if self.backend.value == "local" else "connecting…")
        self.cluster = self._reporting(self._new_cluster)
        try:
            self.monitor = Monitor(self.cluster).start()
            self.plots = LivePlots(self.monitor, on_refresh=self._refresh_labels)
            self.plot_area.children = _plot_widgets(self.plots, everything=True)
            self.plots.start()
        except BaseException as err:  # never leave a cluster running behind a failed launch
            self.shutdown()
            self._fail(err)
        link = html.escape(self.cluster.dashboard_link or "")
        self.dashboard.value = f"<a href='{link}' target='_blank'>dashboard</a>"
        self.launch_button.disabled, self.shutdown_button.disabled = True, False
        self.train_button.disabled = False
        self.scale_button.disabled = not self.cluster.can_scale
        self._say(f"cluster running at {self.cluster.scheduler_address}")
        return self.cluster

    def scale(self, n=None):
        """Run exactly ``n`` workers (default: the panel's "workers" field)."""
        if self.cluster is None:
            self._fail(RuntimeError("launch a cluster before scaling it"))
        n = self.scale_to.value if n is None else n
        self._reporting(self.cluster.scale, n)
        self._say(f"scaling to {n} workers (adaptive scaling is off until the next launch)")

    def shutdown(self):
        """Stop any training, then close the cluster (or disconnect from it)."""
        self.stop()
        self.wait()
        if self.plots is not None:
            self.plots.stop()
        if self.monitor is not None:
            self.monitor.stop()
        if self.cluster is not None:
            self.cluster.close()
        self.cluster = None
        self.launch_button.disabled, self.shutdown_button.disabled = False, True
        self.train_button.disabled = self.scale_button.disabled = True
        self.workers.value = "workers: 0"
        self._say("cluster stopped")

    # ---------------------------------------------------------------- training
    def _data(self):
        """(X, y) for the chosen dataset: generated on the workers, or the notebook's."""
        kind = self.dataset.value
        if kind == "notebook variables":
            names = [n.strip() for n in self.variables.value.split(",")]
            if len(names) != 2 or not all(n.isidentifier() for n in names):
                raise ValueError(
                    f"variables must be two names like 'X, y', got {self.variables.value!r}"
                )
            namespace = _user_namespace()
            missing = [n for n in names if n not in namespace]
            if missing:
                raise ValueError(f"no variable named {missing[0]!r} in this notebook")
            return namespace[names[0]], namespace[names[1]]
        if self.chunk_rows.value > self.rows.value:
            raise ValueError(
                f"chunk rows ({self.chunk_rows.value}) must be <= rows ({self.rows.value})"
            )
        classifier = self.model_choice.value.endswith(("classifier", "logistic regression"))
        if kind == "XOR":
            if not classifier:
                raise ValueError("XOR is a classification problem: choose a classifier")
            return datasets.make_xor(self.rows.value, self.chunk_rows.value)
        make = datasets.make_classification if classifier else datasets.make_regression
        X, y, _ = make(self.rows.value, self.features.value, self.chunk_rows.value)
        return X, y

    def _new_model(self):
        if self.cluster is None:
            raise RuntimeError("launch a cluster before training")
        if self.training:
            raise RuntimeError("training is already running")
        estimator, _ = MODELS[self.model_choice.value]
        params = {
            "solver": self.solver.value,
            "max_iter": self.iterations.value,
            "learning_rate": _parse_learning_rate(self.learning_rate.value),
        }
        if self.solver.value in ("gd", "sgd", "adam"):
            params["tol"] = 0.0  # run the iterations asked for; Stop ends early
        return estimator(**params)

    def train(self, wait=False):
        """Fit the chosen model on the chosen data in a background thread."""
        model = self._reporting(self._new_model)
        X, y = self._reporting(self._data)
        self._stop_training.clear()
        self._running.set()
        self.progress.max, self.progress.value, self.eta.value = model.max_iter, 0, ""
        self.train_button.disabled = True
        self.pause_button.disabled = self.stop_button.disabled = False
        record = self.monitor.training_callback()
        model.callback = self._progress_callback(record, model.max_iter)
        self.model = model
        self._trainer = threading.Thread(
            target=self._fit, args=(model, X, y, record.run), name="enb-train", daemon=True
        )
        self._trainer.start()
        self._say(f"training {record.run}…")
        if wait:
            self.wait()
        return model

    def _progress_callback(self, record_event, total):
        started = time.perf_counter()

        def callback(record):
            record_event(record)
            self._last_iteration = record
            done = min(record["iteration"], total)
            self.progress.value = done
            per_iteration = (time.perf_counter() - started) / max(done, 1)
            self.eta.value = (
                f"{done}/{total} · ETA {tqdm.format_interval(per_iteration * (total - done))}"
            )
            self._running.wait()  # Pause holds the fit here, between iterations
            if self._stop_training.is_set():
                raise StopIteration

        return callback

    def _fit(self, model, X, y, run):
        self.monitor.run_status(run, "started")
        try:
            if hasattr(X, "dask") and self.cluster is not None:
                X, y = self.cluster.client.persist([X, y])
            model.fit(X, y)
        except Exception as err:
            self.monitor.run_status(run, "failed", str(err))
            self._show_error(err)
        else:
            stopped = self._stop_training.is_set()
            self.eta.value = f"{model.n_iter_}/{self.progress.max}"
            self.monitor.run_status(run, "stopped" if stopped else "finished")
            self._say(
                f"{run} {'stopped' if stopped else 'finished'} after {model.n_iter_} iterations"
            )
        finally:
            self.train_button.disabled = self.cluster is None
            self.pause_button.disabled = self.stop_button.disabled = True
            self.pause_button.description, self.pause_button.icon = "Pause", "pause"

    def pause(self):
        """Hold the running fit after its current iteration."""
        self._running.clear()
        self.pause_button.description, self.pause_button.icon = "Resume", "play"
        self._say("paused")

    def resume(self):
        """Continue a paused fit."""
        self._running.set()
        self.pause_button.description, self.pause_button.icon = "Pause", "pause"
        self._say("training…")

    def _toggle_pause(self):
        (self.resume if not self._running.is_set() else self.pause)()

    def stop(self):
        """Ask the running fit to stop; it ends after the current iteration."""
        self._stop_training.set()
        self._running.set()  # a paused fit must wake up to stop

    def wait(self, timeout=None):
        """Block until the running fit ends."""
        if self._trainer is not None:
            self._trainer.join(timeout)

    @property
    def training(self) -> bool:
        return self._trainer is not None and self._trainer.is_alive()

    # ------------------------------------------------------------------ labels
    def _refresh_labels(self):
        if self.monitor is None:
            return
        workers = self.monitor.current_workers() or 0
        self.workers.value = f"workers: {workers}"
        parts = [f"workers: {workers}", f"worker-seconds: {self.monitor.worker_seconds():.1f}"]
        if self._last_iteration is not None:
            parts.insert(1, f"loss: {self._last_iteration['loss']:.4g}")
        self.status.value = " · ".join(parts)

    def close(self):
        """Shut the cluster down and remove the panel."""
        self.shutdown()
        _close_tree(self.widget)
