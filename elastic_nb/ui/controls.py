"""The panel's building blocks: styled ipywidgets, plot widgets, and what the menus offer.

Every control carries a CSS class ``enb-<name>`` (``enb-launch``, ``enb-train``,
``enb-workers-plot``, ...) so tests and user stylesheets can find it.
"""

from __future__ import annotations

import ipywidgets as w
from jupyter_bokeh import BokehModel

from ..estimators import ESTIMATORS
from .plots import LivePlots
from .updater import Updater

#: The panel's models: estimator and the solvers it offers, as the estimator declares them.
MODELS = {name: (estimator, estimator.solvers()) for name, estimator in ESTIMATORS.items()}
DATASETS = ("synthetic", "XOR", "notebook variables")

#: Room for the longest description ("learning rate", "memory/worker") in every field.
LABELS = {"description_width": "7.5em"}


class StreamSafeBokehModel(BokehModel):
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
            return  # echoes of our own stream / source.data = ...
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


def styled(widget, name):
    widget.add_class(f"enb-{name}")
    return widget


def plot_widgets(plots: LivePlots):
    """The time figures (one linked axis) and loss per iteration, each its own widget."""
    time_plots = styled(StreamSafeBokehModel(plots.time_plots), "workers-plot")
    return [
        styled(time_plots, "time-plots"),
        styled(StreamSafeBokehModel(plots.loss_plot), "loss-plot"),
    ]


def text(value, name, description, **kwargs):
    return styled(w.Text(value, description=description, style=LABELS, **kwargs), name)


def integer(value, name, description, low, high):
    widget = w.BoundedIntText(value, min=low, max=high, description=description, style=LABELS)
    return styled(widget, name)


def button(name, description, icon, **kwargs):
    return styled(w.Button(description=description, icon=icon, **kwargs), name)


def dropdown(options, value, name, description):
    return styled(w.Dropdown(options=options, value=value, description=description), name)


def widget_tree(widget):
    """``widget`` and every widget inside it, depth first."""
    yield widget
    for child in getattr(widget, "children", ()):
        yield from widget_tree(child)


def parse_learning_rate(value: str):
    value = value.strip()
    if value in ("", "auto"):
        return None
    try:
        rate = float(value)
    except ValueError:
        raise ValueError(f"learning rate must be a number or 'auto', got {value!r}") from None
    if not rate > 0:
        raise ValueError(f"learning rate must be > 0, got {value!r}")
    return rate


class LiveView(w.HBox):
    """Live plots of a monitor, kept current by their own :class:`Updater`.

    ``view.plots`` is the :class:`LivePlots`; :meth:`stop` ends the updates (a last
    refresh first), and closing the view stops them too.
    """

    def __init__(self, monitor, period=0.2):
        self.plots = LivePlots(monitor)
        super().__init__(plot_widgets(self.plots))
        styled(self, "live-view")
        self.updater = Updater(period)
        for child in self.children:
            self.updater.guard(child)
        self.updater.renderers.append(self.plots.refresh)
        self.updater.start()

    def stop(self, timeout=10.0):
        self.updater.stop(timeout)

    def close(self):
        self.updater.stop(final=lambda: [c.close() for c in self.children])
        super().close()


def live_view(monitor, period=0.2):
    """Live plots of ``monitor`` (workers, loss, throughput, memory) as a widget."""
    load_bokehjs()
    return LiveView(monitor, period)
