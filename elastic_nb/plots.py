"""Bokeh figures of a :class:`~elastic_nb.Monitor`'s events: live in a notebook, static in
a report. The same column builders and figure factories serve both, so the report shows
exactly what the notebook showed.
"""

from __future__ import annotations

import threading
from itertools import cycle
from pathlib import Path

from bokeh.embed import file_html
from bokeh.layouts import column, gridplot
from bokeh.models import ColumnDataSource, Div, FactorRange, HoverTool, NumeralTickFormatter
from bokeh.palettes import Category10_10
from bokeh.plotting import figure
from bokeh.resources import INLINE

from .monitor import ITERATION, SAMPLE, SCALE

SIZE = {"width": 440, "height": 260}
TOOLS = "pan,wheel_zoom,reset,save"


# ------------------------------------------------------------------ event columns
def sample_columns(events) -> dict:
    samples = [e for e in events if e["kind"] == SAMPLE]
    return {
        "time": [e["time"] for e in samples],
        "workers": [e["workers"] for e in samples],
        "requested": [
            e["workers"] if e.get("workers_requested") is None else e["workers_requested"]
            for e in samples
        ],
        "demand": [e.get("demand", e["workers"]) for e in samples],
    }


def scale_columns(events) -> dict:
    """Scaling decisions, placed at the running worker count of the latest sample."""
    columns = {"time": [], "workers": [], "action": [], "reason": []}
    workers = 0
    for event in events:
        if event["kind"] == SAMPLE:
            workers = event["workers"]
        elif event["kind"] == SCALE:
            columns["time"].append(event["time"])
            columns["workers"].append(workers)
            columns["action"].append(event.get("action", ""))
            columns["reason"].append(event.get("reason", ""))
    return columns


def iteration_columns(events) -> dict:
    iterations = [e for e in events if e["kind"] == ITERATION]
    return {
        "iteration": [e["iteration"] for e in iterations],
        "loss": [e["loss"] for e in iterations],
        "time": [e["time"] for e in iterations],
        "run": [e["run"] for e in iterations],
    }


def throughput_columns(events, previous=None) -> dict:
    """Rows per second of each iteration that says how many rows it read. ``previous``
    is the last iteration event before ``events`` (so a batch can continue a run)."""
    columns = {"time": [], "rows_per_second": [], "run": []}
    for event in events:
        if event["kind"] != ITERATION:
            continue
        if (
            previous is not None
            and previous["run"] == event["run"]
            and event.get("rows")
            and event["elapsed"] > previous["elapsed"]
        ):
            columns["time"].append(event["time"])
            columns["rows_per_second"].append(
                event["rows"] / (event["elapsed"] - previous["elapsed"])
            )
            columns["run"].append(event["run"])
        previous = event
    return columns


def memory_columns(events) -> dict:
    """Memory and task-result bytes per worker, from the latest sample."""
    latest = next((e for e in reversed(events) if e["kind"] == SAMPLE), None)
    rows = latest.get("per_worker", []) if latest else []
    return {
        "worker": [str(name) for name, _, _ in rows],
        "memory_mib": [memory / 2**20 for _, memory, _ in rows],
        "data_mib": [managed / 2**20 for _, _, managed in rows],
    }


def rows_of_run(columns: dict, run: str) -> dict:
    keep = [r == run for r in columns["run"]]
    return {k: [v for v, kept in zip(col, keep, strict=True) if kept] for k, col in columns.items()}


# ----------------------------------------------------------------- figure factories
def workers_figure(source: ColumnDataSource, scale_source: ColumnDataSource):
    fig = figure(
        title="Workers",
        x_axis_label="seconds",
        y_axis_label="workers",
        css_classes=["enb-workers-figure"],
        tools=TOOLS,
        **SIZE,
    )
    fig.step(
        "time",
        "demand",
        source=source,
        mode="after",
        line_dash="dotted",
        color="darkorange",
        legend_label="scheduler's demand",
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
    events = fig.scatter(
        "time",
        "workers",
        source=scale_source,
        size=9,
        marker="triangle",
        color="crimson",
        legend_label="scaling decision",
    )
    fig.add_tools(HoverTool(renderers=[events], tooltips=[("", "@action: @reason")]))
    fig.y_range.start = 0
    legend = fig.legend[0]
    legend.orientation, legend.label_text_font_size = "horizontal", "7pt"
    legend.padding, legend.spacing = 2, 4
    fig.add_layout(legend, "below")  # beside the curves, not on them
    return fig


def loss_figure(x="iteration"):
    return figure(
        title="Loss" if x == "iteration" else "Loss over time",
        x_axis_label="iteration" if x == "iteration" else "seconds",
        y_axis_label="loss",
        y_axis_type="log",
        css_classes=["enb-loss-figure" if x == "iteration" else "enb-loss-time-figure"],
        tools=TOOLS + ",hover",
        **SIZE,
    )


def add_loss_line(fig, source, color, label=None, x="iteration"):
    extra = {"legend_label": label} if label else {}
    fig.line(x, "loss", source=source, color=color, line_width=2, **extra)
    fig.scatter(x, "loss", source=source, color=color, size=4)


def throughput_figure(source: ColumnDataSource):
    fig = figure(
        title="Throughput",
        x_axis_label="seconds",
        y_axis_label="rows per second",
        css_classes=["enb-throughput-figure"],
        tools=TOOLS,
        **SIZE,
    )
    fig.scatter("time", "rows_per_second", source=source, size=5)
    fig.yaxis.formatter = NumeralTickFormatter(format="0.0a")
    fig.y_range.start = 0
    return fig


def memory_figure(source: ColumnDataSource):
    fig = figure(
        title="Memory per worker",
        x_range=FactorRange(*source.data["worker"]),
        y_axis_label="MiB",
        css_classes=["enb-memory-figure"],
        tools="save,hover",
        tooltips=[
            ("worker", "@worker"),
            ("process", "@memory_mib{0.0} MiB"),
            ("task results", "@data_mib{0.0} MiB"),
        ],
        **SIZE,
    )
    fig.vbar(
        "worker",
        top="memory_mib",
        source=source,
        width=0.8,
        alpha=0.5,
        legend_label="process memory",
    )
    fig.vbar(
        "worker",
        top="data_mib",
        source=source,
        width=0.5,
        color="darkorange",
        legend_label="task results",
    )
    fig.y_range.start = 0
    fig.legend.location = "top_left"
    fig.legend.label_text_font_size = "8pt"
    return fig


# ------------------------------------------------------------------------ live
class LivePlots:
    """Figures that follow a monitor while it records.

    State
    -----
    workers_source, scale_source, loss_source, loss_time_source, throughput_source
        Kernel-side ColumnDataSources, grown only with ``stream`` (the browser gets the new
        rows only). The loss sources hold the current run; a new run starts them afresh.
    memory_source : ColumnDataSource
        The latest per-worker snapshot (replaced, it is a handful of bars).
    cursor : int
        Index of the first monitor event not yet plotted.

    :meth:`refresh` plots what arrived since the last call, then calls ``on_refresh()``;
    :meth:`start` calls it from a thread ``1 / period`` times a second, so plots cost the
    same at any iteration rate.
    """

    def __init__(self, monitor, rollover=20_000, on_refresh=None):
        self.monitor = monitor
        self.rollover = rollover
        self.on_refresh = on_refresh
        self.workers_source = ColumnDataSource(sample_columns([]), name="enb-workers-source")
        self.scale_source = ColumnDataSource(scale_columns([]), name="enb-scale-source")
        self.loss_source = ColumnDataSource(iteration_columns([]), name="enb-loss-source")
        self.throughput_source = ColumnDataSource(
            throughput_columns([]), name="enb-throughput-source"
        )
        self.memory_source = ColumnDataSource(memory_columns([]), name="enb-memory-source")
        self.workers_figure = workers_figure(self.workers_source, self.scale_source)
        self.loss_figure = loss_figure()
        add_loss_line(self.loss_figure, self.loss_source, Category10_10[0])
        # its own source: each notebook widget holds one bokeh document, and a source can
        # belong to one document only
        self.loss_time_source = ColumnDataSource(iteration_columns([]), name="enb-loss-time-source")
        self.loss_time_figure = loss_figure(x="time")
        add_loss_line(self.loss_time_figure, self.loss_time_source, Category10_10[0], x="time")
        self.throughput_figure = throughput_figure(self.throughput_source)
        self.memory_figure = memory_figure(self.memory_source)
        self.cursor = 0
        self.run = None
        self._last_iteration = None
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._thread = None

    def _stream(self, source, columns):
        if next(iter(columns.values())):
            source.stream(columns, rollover=self.rollover)

    def refresh(self):
        with self._lock:
            events = self.monitor.events[self.cursor :]
            self.cursor += len(events)
            self._stream(self.workers_source, sample_columns(events))
            self._stream(self.scale_source, scale_columns(events))
            self._stream(
                self.throughput_source, throughput_columns(events, previous=self._last_iteration)
            )
            iterations = iteration_columns(events)
            for run in dict.fromkeys(iterations["run"]):
                rows = rows_of_run(iterations, run)
                if run != self.run:  # a new fit: start its curves afresh
                    self.run = run
                    self.loss_source.data = rows
                    self.loss_time_source.data = {k: list(v) for k, v in rows.items()}
                    self.loss_figure.title.text = f"Loss ({run})"
                else:
                    self._stream(self.loss_source, rows)
                    self._stream(self.loss_time_source, rows)
            self._last_iteration = next(
                (e for e in reversed(events) if e["kind"] == ITERATION), self._last_iteration
            )
            memory = memory_columns(events)
            if memory["worker"] and memory != self.memory_source.data:
                self.memory_figure.x_range.factors = memory["worker"]
                self.memory_source.data = memory
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


# ---------------------------------------------------------------------- report
def report_layout(events, title="elastic_nb run"):
    """Static figures of a whole event stream: workers, loss of every run (per iteration
    and over time), throughput and the last memory snapshot."""
    workers = workers_figure(
        ColumnDataSource(sample_columns(events)), ColumnDataSource(scale_columns(events))
    )
    loss, loss_time = loss_figure(), loss_figure(x="time")
    throughput = throughput_figure(ColumnDataSource(throughput_columns(events)))
    iterations = iteration_columns(events)
    colors = cycle(Category10_10)
    for run in dict.fromkeys(iterations["run"]):
        source, color = ColumnDataSource(rows_of_run(iterations, run)), next(colors)
        add_loss_line(loss, source, color, label=run)
        add_loss_line(loss_time, source, color, label=run, x="time")
    for fig in (loss, loss_time):
        if iterations["run"]:
            fig.legend.location = "top_right"
            fig.legend.label_text_font_size = "8pt"
    memory = memory_figure(ColumnDataSource(memory_columns(events)))
    grid = gridplot([[workers, loss], [throughput, loss_time], [memory, None]])
    return column(Div(text=f"<h2>{title}</h2>"), grid)


def write_report(monitor, path, title="elastic_nb run") -> Path:
    """A standalone HTML page (BokehJS inlined, works offline) of the monitor's events."""
    path = Path(path)
    path.write_text(file_html(report_layout(list(monitor.events), title), INLINE, title))
    return path
