"""The notebook control panel: launch an elastic cluster, train, and watch it live.

Every button has a method of the same meaning (``launch``, ``train``, ``stop``,
``shutdown``, ``close``), so scripts and nbval run exactly what a click runs.
"""

from __future__ import annotations

import html
import threading
import traceback

import ipywidgets as w
from IPython.display import display
from jupyter_bokeh import BokehModel

from .cluster import ElasticCluster
from .datasets import make_regression
from .models import LinearRegression
from .monitor import Monitor
from .plots import LivePlots

#: Errors that mean "the input or the environment is wrong": shown as one sentence.
USER_ERRORS = (ValueError, TypeError, OSError, RuntimeError, TimeoutError, FloatingPointError)


class _StreamSafeBokehModel(BokehModel):
    """BokehModel with two jupyter_bokeh 4.1 fixes.

    The browser echoes our own ``stream`` calls back, which would append every streamed
    row twice to the kernel-side source: that echo is dropped. And ``close`` is made
    idempotent.
    """

    _closed = False

    def _sync_model(self, model, content, buffers):
        if content.get("kind") != "ColumnsStreamed":
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


def _plot_widgets(plots: LivePlots):
    return [
        _styled(_StreamSafeBokehModel(plots.workers_figure), "workers-plot"),
        _styled(_StreamSafeBokehModel(plots.loss_figure), "loss-plot"),
    ]


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


class ControlPanel:
    """Launch/stop an adaptive cluster, train a model on it, and watch both live.

    State
    -----
    cluster : ElasticCluster or None
        The cluster this panel launched (closed by :meth:`shutdown` and :meth:`close`).
    monitor : Monitor or None
        Samples ``cluster``; every label and plot reads from it.
    plots : LivePlots or None
    model : the estimator of the latest training run.
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
    ):
        self.cluster = None
        self.monitor = None
        self.plots = None
        self.model = None
        self._trainer = None
        self._stop_training = threading.Event()
        self._last_iteration = None

        self.minimum = _styled(
            w.BoundedIntText(minimum, min=0, max=512, description="minimum"), "minimum"
        )
        self.maximum = _styled(
            w.BoundedIntText(maximum, min=1, max=512, description="maximum"), "maximum"
        )
        self.launch_button = _styled(
            w.Button(description="Launch", icon="play", button_style="success"), "launch"
        )
        self.shutdown_button = _styled(
            w.Button(description="Stop cluster", icon="power-off", disabled=True), "shutdown"
        )
        self.rows = _styled(w.BoundedIntText(rows, min=1, max=10**10, description="rows"), "rows")
        self.features = _styled(
            w.BoundedIntText(features, min=1, max=10_000, description="features"), "features"
        )
        self.chunk_rows = _styled(
            w.BoundedIntText(chunk_rows, min=1, max=10**9, description="chunk rows"), "chunk-rows"
        )
        self.solver = _styled(
            w.Dropdown(options=["gd", "normal"], value=solver, description="solver"), "solver"
        )
        self.iterations = _styled(
            w.BoundedIntText(iterations, min=1, max=100_000, description="iterations"), "iterations"
        )
        self.learning_rate = _styled(w.Text("auto", description="learning rate"), "learning-rate")
        self.train_button = _styled(
            w.Button(description="Train", icon="rocket", button_style="primary", disabled=True),
            "train",
        )
        self.stop_button = _styled(w.Button(description="Stop", icon="stop", disabled=True), "stop")
        self.progress = _styled(
            w.IntProgress(0, min=0, max=iterations, description="progress"), "progress"
        )
        self.workers = _styled(w.Label("workers: 0"), "workers")
        self.status = _styled(w.HTML(""), "status")
        self.message = _styled(w.HTML(""), "message")
        self.dashboard = _styled(w.HTML(""), "dashboard")
        self.plot_area = w.HBox([])

        self.launch_button.on_click(self._clicked(self.launch))
        self.shutdown_button.on_click(self._clicked(self.shutdown))
        self.train_button.on_click(self._clicked(self.train))
        self.stop_button.on_click(self._clicked(self.stop))

        self.widget = _styled(
            w.VBox(
                [
                    w.HTML("<b>Cluster</b>"),
                    w.HBox([self.minimum, self.maximum]),
                    w.HBox(
                        [self.launch_button, self.shutdown_button, self.workers, self.dashboard]
                    ),
                    w.HTML("<b>Training</b>"),
                    w.HBox([self.rows, self.features, self.chunk_rows]),
                    w.HBox([self.solver, self.iterations, self.learning_rate]),
                    w.HBox([self.train_button, self.stop_button, self.progress]),
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
            except USER_ERRORS:
                pass  # _reporting already put the sentence in the panel
            except Exception as err:  # a bug: still a message, with the details folded
                self._show_error(err)

        return handler

    def _reporting(self, action, *args, **kwargs):
        try:
            return action(*args, **kwargs)
        except USER_ERRORS as err:
            self._show_error(err)
            raise

    # ----------------------------------------------------------------- cluster
    def launch(self):
        """Start an adaptive local cluster between the panel's minimum and maximum."""
        if self.cluster is not None:
            raise RuntimeError("a cluster is already running; stop it first")
        self._say("launching…")
        self.cluster = self._reporting(
            ElasticCluster, minimum=self.minimum.value, maximum=self.maximum.value
        )
        self.monitor = Monitor(self.cluster).start()
        self.plots = LivePlots(self.monitor, on_refresh=self._refresh_labels)
        self.plot_area.children = _plot_widgets(self.plots)
        self.plots.start()
        link = html.escape(self.cluster.dashboard_link or "")
        self.dashboard.value = f"<a href='{link}' target='_blank'>dashboard</a>"
        self.launch_button.disabled, self.shutdown_button.disabled = True, False
        self.train_button.disabled = False
        self._say(f"cluster running at {self.cluster.scheduler_address}")
        return self.cluster

    def shutdown(self):
        """Stop any training, then close the cluster this panel launched."""
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
        self.train_button.disabled = self.stop_button.disabled = True
        self.workers.value = "workers: 0"
        self._say("cluster stopped")

    # ---------------------------------------------------------------- training
    def _training_settings(self):
        if self.cluster is None:
            raise RuntimeError("launch a cluster before training")
        if self._trainer is not None and self._trainer.is_alive():
            raise RuntimeError("training is already running")
        learning_rate = _parse_learning_rate(self.learning_rate.value)
        if self.chunk_rows.value > self.rows.value:
            raise ValueError(
                f"chunk rows ({self.chunk_rows.value}) must be <= rows ({self.rows.value})"
            )
        return LinearRegression(
            solver=self.solver.value,
            max_iter=self.iterations.value,
            learning_rate=learning_rate,
            tol=0.0 if self.solver.value == "gd" else 1e-6,
        )

    def train(self, wait=False):
        """Fit a model on a dataset generated on the workers, in a background thread."""
        model = self._reporting(self._training_settings)
        self._stop_training.clear()
        self.progress.max, self.progress.value = model.max_iter, 0
        self.train_button.disabled, self.stop_button.disabled = True, False
        callback = self.monitor.training_callback()
        model.callback = self._progress_callback(callback)
        self.model = model
        self._trainer = threading.Thread(
            target=self._fit, args=(model, callback.run), name="enb-train", daemon=True
        )
        self._trainer.start()
        self._say(f"training {callback.run}…")
        if wait:
            self.wait()
        return model

    def _progress_callback(self, record_event):
        def callback(record):
            record_event(record)
            self._last_iteration = record
            self.progress.value = min(record["iteration"], self.progress.max)
            if self._stop_training.is_set():
                raise StopIteration

        return callback

    def _fit(self, model, run):
        self.monitor.run_status(run, "started")
        try:
            X, y, _ = make_regression(self.rows.value, self.features.value, self.chunk_rows.value)
            X, y = self.cluster.client.persist([X, y])
            model.fit(X, y)
        except Exception as err:
            self.monitor.run_status(run, "failed", str(err))
            self._show_error(err)
        else:
            stopped = self._stop_training.is_set()
            self.monitor.run_status(run, "stopped" if stopped else "finished")
            self._say(
                f"{run} {'stopped' if stopped else 'finished'} after {model.n_iter_} iterations"
            )
        finally:
            self.train_button.disabled = self.cluster is None
            self.stop_button.disabled = True

    def stop(self):
        """Ask the running fit to stop; it ends after the current iteration."""
        self._stop_training.set()

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
