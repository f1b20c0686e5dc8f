"""The notebook control panel: launch an elastic cluster, train, and watch it live.

Every button has a method of the same meaning (``launch``, ``scale``, ``train``,
``pause``, ``resume``, ``stop``, ``shutdown``, ``close``), and :meth:`ControlPanel.run`
replays clicks by name, so scripts and nbval run exactly what a click runs.

Threads: a click or a method call changes plain state (the attributes below) and wakes
the panel's :class:`~elastic_nb.ui.updater.Updater`, the only thread that changes widgets
and bokeh models; the training thread and the monitor's sampling thread only produce
events. A method called from a cell returns once the widgets show its outcome.
"""

from __future__ import annotations

import html
import logging
import time
import traceback

import ipywidgets as w
from IPython.display import display

from ..cluster.choices import open_backend
from ..observe.monitor import Monitor
from ..policies import POLICIES
from .backends import OBSERVE_ONLY, BackendControls
from .controls import (
    DATASETS,
    LABELS,
    MODELS,
    button,
    dropdown,
    integer,
    load_bokehjs,
    plot_widgets,
    styled,
    text,
    widget_tree,
)
from .plots import LivePlots
from .render import render_controls, render_decisions, render_status
from .training import Trainer, panel_data, panel_model
from .updater import Updater

logger = logging.getLogger(__name__)

#: Errors that mean "the input or the environment is wrong": shown as one sentence.
USER_ERRORS = (ValueError, TypeError, OSError, RuntimeError, TimeoutError, FloatingPointError)


class ControlPanel:
    """Launch an elastic cluster (or connect to one), train a model on it, watch both live.

    State
    -----
    cluster : ElasticCluster or None
        The cluster this panel launched or connected to; :meth:`shutdown` closes it (a
        cluster the panel only connected to is left running; only the client closes).
    backends : BackendControls
        The backend menu (``backend``) and each backend's fields (``address``,
        ``threads``, ``memory``, ...): what Launch opens, from
        :data:`elastic_nb.cluster.choices.BACKENDS`.
    monitor : Monitor or None
        Samples ``cluster``; every label and plot reads from it. It outlives a shutdown,
        so the plots keep the run until the next launch.
    plots : LivePlots
        Follows ``monitor``; refreshed by the updater only.
    model : the estimator of the latest training run.
    trainer : Trainer or None
        The latest fit: its thread, lease, progress and error.
    notice : str
        The HTML message under the buttons (a sentence, or an error with details folded).
    launching : bool
        True while a launch is under way.
    updater : Updater
        The one thread that renders all of the above into the widgets.

    Training runs in a background thread under a lease (``cluster.training``), so the
    ``"training"`` policy scales the cluster for the run and releases it after. Stop takes
    effect after the current iteration; Pause holds the fit between iterations.
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
        policy="training",
    ):
        self.cluster = self.monitor = self.model = self.trainer = None
        self.notice, self.launching = "", False
        self._build_cluster_controls(minimum, maximum, policy)
        self._build_training_controls(rows, features, chunk_rows, model, solver, iterations)
        self.plots = LivePlots()
        self.plot_area = styled(w.HBox(plot_widgets(self.plots)), "plots")
        self.widget = styled(w.VBox(self._layout()), "panel")
        self.updater = Updater()
        for widget in widget_tree(self.widget):
            if getattr(widget, "comm", None) is not None:
                self.updater.guard(widget)
        self.updater.renderers += [
            lambda: self.backends.render(self),
            lambda: render_controls(self),
            self.plots.refresh,
            lambda: render_status(self),
            lambda: render_decisions(self),
        ]
        for control in (self.model_choice, self.backend):
            control.observe(lambda _change: self.updater.wake(), names="value")
        self.policy.observe(self._policy_changed, names="value")
        for control, action in self._buttons().items():
            control.on_click(self._clicked(action))
        self.updater.start()
        self._rendered()

    def _build_cluster_controls(self, minimum, maximum, policy):
        self.backends = BackendControls()
        self.backend, fields = self.backends.menu, self.backends.fields
        self.address, self.threads = fields["address"], fields["threads_per_worker"]
        self.memory = fields["memory_limit"]
        self.minimum = integer(minimum, "minimum", "minimum", 0, 512)
        self.maximum = integer(maximum, "maximum", "maximum", 1, 512)
        self.policy = dropdown(list(POLICIES), policy, "policy", "policy")
        self.launch_button = button("launch", "Launch", "play", button_style="success")
        self.shutdown_button = button("shutdown", "Stop cluster", "power-off", disabled=True)
        self.scale_to = integer(maximum, "scale-to", "workers", 0, 512)
        self.scale_button = button("scale", "Scale", "arrows-alt-h", disabled=True)
        self.workers = styled(w.Label("workers: 0"), "workers")
        self.dashboard = styled(w.HTML("", layout=w.Layout(margin="0 0 0 1em")), "dashboard")

    def _build_training_controls(self, rows, features, chunk_rows, model, solver, iterations):
        self.dataset = styled(
            w.Dropdown(options=DATASETS, description="data", style=LABELS), "dataset"
        )
        self.variables = text("X, y", "variables", "variables")
        self.rows = integer(rows, "rows", "rows", 1, 10**10)
        self.features = integer(features, "features", "features", 1, 10_000)
        self.chunk_rows = integer(chunk_rows, "chunk-rows", "chunk rows", 1, 10**9)
        self.model_choice = dropdown(list(MODELS), model, "model", "model")
        self.solver = dropdown(MODELS[model][1], solver, "solver", "solver")
        self.learning_rate = text("auto", "learning-rate", "learning rate")
        self.iterations = integer(iterations, "iterations", "iterations", 1, 1_000_000)
        self.train_button = button(
            "train", "Train", "rocket", button_style="primary", disabled=True
        )
        self.pause_button = button("pause", "Pause", "pause", disabled=True)
        self.stop_button = button("stop", "Stop", "stop", disabled=True)
        self.progress = styled(
            w.IntProgress(0, min=0, max=iterations, description="progress"), "progress"
        )
        self.eta = styled(w.Label(""), "eta")
        self.status = styled(w.HTML(""), "status")
        self.message = styled(w.HTML(""), "message")
        self.decisions = styled(w.HTML(""), "decisions")

    def _layout(self):
        row = w.HBox
        return [
            w.HTML("<b>Cluster</b>"),
            *self.backends.top_rows(),
            row([self.minimum, self.maximum, self.policy]),
            *self.backends.field_rows(),
            row([self.launch_button, self.shutdown_button, self.scale_to, self.scale_button]),
            row([self.workers, self.dashboard]),
            w.HTML("<b>Training</b>"),
            row([self.dataset, self.variables]),
            row([self.rows, self.features, self.chunk_rows]),
            row([self.model_choice, self.solver]),
            row([self.learning_rate, self.iterations]),
            row([self.train_button, self.pause_button, self.stop_button, self.progress, self.eta]),
            self.status,
            self.message,
            self.plot_area,
            self.decisions,
        ]

    def _buttons(self):
        return {
            self.launch_button: self.launch,
            self.shutdown_button: self.shutdown,
            self.scale_button: self.scale,
            self.train_button: self.train,
            self.pause_button: self._toggle_pause,
            self.stop_button: self.stop,
        }

    def _ipython_display_(self):
        load_bokehjs()
        display(self.widget)

    def refresh(self, timeout=10.0):
        """Block until the widgets show the panel's current state (e.g. after setting a
        field from code: the solver menu follows the model at the updater's next tick)."""
        self.updater.flush(timeout)
        return self

    def _rendered(self):
        """Wake the updater and, unless called where that would deadlock, wait for it."""
        self.updater.flush()

    # ---------------------------------------------------------------- messages
    def _show_error(self, err):
        details = html.escape("".join(traceback.format_exception(err)))
        self.notice = (
            f"<details class='enb-error'><summary>⚠ {html.escape(str(err))}</summary>"
            f"<pre>{details}</pre></details>"
        )
        self._rendered()

    def _say(self, sentence):
        self.notice = html.escape(sentence)
        self._rendered()

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
        "train" click returns when the fit ends (and raises if it failed)."""
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
        choice = self.backends.choice
        return open_backend(
            choice.name,
            self.minimum.value,
            self.maximum.value,
            self.policy.value,
            **self.backends.values(),
        )

    def launch(self):
        """Start an adaptive cluster on the chosen backend (or connect to the scheduler
        address, to observe it)."""
        self.updater.flush()  # the fields show the backend chosen just before
        choice = self.backends.choice
        if self.cluster is not None or self.launching:
            self._fail(RuntimeError("a cluster is running; stop it first"))
        if not self.backends.available[choice.name]:
            self._fail(ImportError(choice.missing()))
        self.launching = True
        self._say("connecting…" if choice.observe_only else f"launching ({choice.label})…")
        try:
            cluster = self._reporting(self._new_cluster)
            try:
                self.monitor = Monitor(cluster).start()
            except BaseException as err:  # never leave a cluster behind a failed launch
                cluster.close()
                self._fail(err)
            self.cluster, self.trainer = cluster, None
            self.plots.follow(self.monitor)
        finally:
            self.launching = False
        if cluster.can_scale:
            self._say(f"cluster running at {cluster.scheduler_address}")
        else:
            self._say(f"connected to {cluster.scheduler_address}; {OBSERVE_ONLY}")
        return cluster

    def _policy_changed(self, change):
        """A new policy in the menu re-adapts the running cluster at once."""
        if self.cluster is None or not self.cluster.can_scale:
            return
        try:
            self.cluster.adapt(policy=change["new"])
        except USER_ERRORS as err:
            self._show_error(err)
        else:
            self._say(f"adapting with the {change['new']} policy")

    def scale(self, n=None):
        """Run exactly ``n`` workers (default: the panel's "workers" field)."""
        if self.cluster is None:
            self._fail(RuntimeError("launch a cluster before scaling it"))
        n = self.scale_to.value if n is None else n
        self._reporting(self.cluster.scale, n)
        self._say(f"scaling to {n} workers (adaptive scaling is off until a policy is chosen)")

    def shutdown(self, timeout=30.0):
        """Stop any training, then close the cluster (or disconnect from it).

        Returns within ``timeout`` seconds even if the fit hangs: closing the client
        cancels what the fit waits for. The plots keep the run until the next launch."""
        deadline = time.monotonic() + timeout
        trainer = self.trainer
        if trainer is not None:
            trainer.stop()
            trainer.join(min(5.0, timeout / 3))
        if self.monitor is not None:
            self.monitor.stop(timeout=max(0.1, deadline - time.monotonic()) / 2)
        if self.cluster is not None:
            cluster, self.cluster = self.cluster, None
            cluster.close(timeout=max(1.0, deadline - time.monotonic()))
        if trainer is not None:
            trainer.join(max(0.0, deadline - time.monotonic()))
            if trainer.running:
                logger.warning("the fit did not end within %s s of the shutdown", timeout)
        self._say("cluster stopped")

    # ---------------------------------------------------------------- training
    def train(self, wait=False):
        """Fit the chosen model on the chosen data in a background thread.

        With ``wait`` it returns when the fit ends, and raises what the fit raised."""
        self.updater.flush()  # the solver menu matches the model chosen just before
        if self.cluster is None:
            self._fail(RuntimeError("launch a cluster before training"))
        if self.training:
            self._fail(RuntimeError("training is already running"))
        model = self._reporting(panel_model, self)
        X, y = self._reporting(panel_data, self)
        self.model = model
        self.trainer = Trainer(self.cluster, self.monitor, model, X, y, self._finished).start()
        self._say(f"training {self.trainer.run}…")
        if wait:
            self.wait()
            if self.trainer.error is not None:
                raise self.trainer.error
        return model

    def pause(self):
        """Hold the running fit after its current iteration."""
        if self.trainer is not None:
            self.trainer.pause()
        self._say("paused")

    def resume(self):
        """Continue a paused fit."""
        if self.trainer is not None:
            self.trainer.resume()
        self._say("training…")

    def _toggle_pause(self):
        (self.resume if self.paused else self.pause)()

    def stop(self):
        """Ask the running fit to stop; it ends after the current iteration."""
        if self.trainer is not None:
            self.trainer.stop()

    def wait(self, timeout=None):
        """Block until the running fit ends."""
        if self.trainer is not None:
            self.trainer.join(timeout)
        self._rendered()

    @property
    def training(self) -> bool:
        return self.trainer is not None and self.trainer.running

    @property
    def paused(self) -> bool:
        return self.training and self.trainer.paused

    def _finished(self, trainer):
        """Called by the training thread when the fit ends: only plain state changes."""
        if trainer.error is not None:
            self._show_error(trainer.error)
        else:
            self._say(f"{trainer.run} {trainer.outcome} after {trainer.model.n_iter_} iterations")

    def close(self, timeout=30.0):
        """Shut the cluster down and remove the panel from the page."""
        self.shutdown(timeout)
        self.updater.stop(final=lambda: [c.close() for c in list(widget_tree(self.widget))])
