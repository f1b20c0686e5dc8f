"""Bokeh figures of a :class:`~elastic_nb.Monitor`'s events: live in a notebook, static in
a report. The same column builders and figure factories serve both, so the report shows
exactly what the notebook showed.
"""

from __future__ import annotations

import threading
from itertools import cycle
from pathlib import Path

from bokeh.embed import file_html
from bokeh.layouts import column, row
from bokeh.models import ColumnDataSource, Div
from bokeh.palettes import Category10_10
from bokeh.plotting import figure
from bokeh.resources import INLINE

from .monitor import ITERATION, SAMPLE

SIZE = {"width": 440, "height": 260}


def sample_columns(events) -> dict:
    samples = [e for e in events if e["kind"] == SAMPLE]
    return {
        "time": [e["time"] for e in samples],
        "workers": [e["workers"] for e in samples],
        "requested": [
            e["workers"] if e.get("workers_requested") is None else e["workers_requested"]
            for e in samples
        ],
    }


def iteration_columns(events) -> dict:
    iterations = [e for e in events if e["kind"] == ITERATION]
    return {
        "iteration": [e["iteration"] for e in iterations],
        "loss": [e["loss"] for e in iterations],
        "time": [e["time"] for e in iterations],
        "run": [e["run"] for e in iterations],
    }


def rows_of_run(columns: dict, run: str) -> dict:
    keep = [r == run for r in columns["run"]]
    return {k: [v for v, kept in zip(col, keep, strict=True) if kept] for k, col in columns.items()}


def workers_figure(source: ColumnDataSource):
    fig = figure(
        title="Workers",
        x_axis_label="seconds",
        y_axis_label="workers",
        css_classes=["enb-workers-figure"],
        tools="pan,wheel_zoom,reset,save",
        **SIZE,
    )
    fig.step(
        "time",
        "requested",
        source=source,
        mode="after",
        line_dash="dashed",
        color="gray",
        legend_label="requested",
    )
    fig.step("time", "workers", source=source, mode="after", line_width=2, legend_label="running")
    fig.y_range.start = 0
    fig.legend.location = "top_left"
    return fig


def loss_figure():
    return figure(
        title="Loss",
        x_axis_label="iteration",
        y_axis_label="loss",
        y_axis_type="log",
        css_classes=["enb-loss-figure"],
        tools="pan,wheel_zoom,reset,save,hover",
        **SIZE,
    )


def add_loss_line(fig, source, color, label=None):
    extra = {"legend_label": label} if label else {}
    fig.line("iteration", "loss", source=source, color=color, line_width=2, **extra)
    fig.scatter("iteration", "loss", source=source, color=color, size=4)


class LivePlots:
    """Figures that follow a monitor while it records.

    State
    -----
    workers_source, loss_source : ColumnDataSource
        Kernel-side data; grown only with ``stream`` (the browser gets the new rows only).
        ``loss_source`` holds the current run; a new run starts it afresh.
    cursor : int
        Index of the first monitor event not yet plotted.

    :meth:`refresh` plots what arrived since the last call, then calls ``on_refresh()``;
    :meth:`start` calls it from a thread ``1 / period`` times a second, so plots cost the
    same at any iteration rate.
    """

    def __init__(self, monitor, rollover=20_000, on_refresh=None):
        self.monitor = monitor
        self.on_refresh = on_refresh
        self.rollover = rollover
        self.workers_source = ColumnDataSource(sample_columns([]), name="enb-workers-source")
        self.loss_source = ColumnDataSource(iteration_columns([]), name="enb-loss-source")
        self.workers_figure = workers_figure(self.workers_source)
        self.loss_figure = loss_figure()
        add_loss_line(self.loss_figure, self.loss_source, Category10_10[0])
        self.cursor = 0
        self.run = None
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._thread = None

    def refresh(self):
        with self._lock:
            events = self.monitor.events[self.cursor :]
            self.cursor += len(events)
            samples = sample_columns(events)
            if samples["time"]:
                self.workers_source.stream(samples, rollover=self.rollover)
            iterations = iteration_columns(events)
            runs = list(dict.fromkeys(iterations["run"]))
            for run in runs:
                rows = rows_of_run(iterations, run)
                if run != self.run:  # a new fit: start its curve afresh
                    self.run = run
                    self.loss_source.data = rows
                    self.loss_figure.title.text = f"Loss ({run})"
                else:
                    self.loss_source.stream(rows, rollover=self.rollover)
        if self.on_refresh is not None:
            self.on_refresh()

    def start(self, period=0.2):
        if self._thread is None or not self._thread.is_alive():
            self._stop.clear()
            self._thread = threading.Thread(
                target=self._loop, args=(period,), name="enb-plots", daemon=True
            )
            self._thread.start()
        return self

    def _loop(self, period):
        while not self._stop.wait(period):
            self.refresh()

    def stop(self):
        self._stop.set()
        if self._thread is not None:
            self._thread.join(5)
        self._thread = None
        self.refresh()


def report_layout(events, title="elastic_nb run"):
    """Static figures of a whole event stream: workers over time, loss of every run."""
    workers = workers_figure(ColumnDataSource(sample_columns(events)))
    loss = loss_figure()
    iterations = iteration_columns(events)
    colors = cycle(Category10_10)
    for run in dict.fromkeys(iterations["run"]):
        add_loss_line(loss, ColumnDataSource(rows_of_run(iterations, run)), next(colors), label=run)
    if iterations["run"]:
        loss.legend.location = "top_right"
    return column(Div(text=f"<h2>{title}</h2>"), row(workers, loss))


def write_report(monitor, path, title="elastic_nb run") -> Path:
    """A standalone HTML page (BokehJS inlined, works offline) of the monitor's events."""
    path = Path(path)
    path.write_text(file_html(report_layout(list(monitor.events), title), INLINE, title))
    return path
