"""Bokeh figures of a :class:`~elastic_nb.Monitor`'s events, live in a notebook and static
in a report. The same column builders and figure factories serve both, so the report
shows exactly what the notebook showed.

Everything that happens in time (workers, loss, throughput, memory) shares one x range,
so the figures line up and pan and zoom together; loss per iteration has its own figure.
"""

from __future__ import annotations

from bokeh.layouts import gridplot
from bokeh.models import ColumnDataSource, DataRange1d, HoverTool, NumeralTickFormatter
from bokeh.palettes import Category10_10
from bokeh.plotting import figure

from ..observe.monitor import ITERATION, SAMPLE, SCALE

WIDTH = 520
TOOLS = "xpan,xwheel_zoom,reset,save"
#: Decision marker and colour by action; anything else is a grey circle.
MARKERS = {
    "scale-up": ("triangle", "#2ca02c"),
    "scale-down": ("inverted_triangle", "#d62728"),
    "target": ("diamond", "#7f7f7f"),
    "lease": ("square", "#9467bd"),
    "lease-end": ("square", "#9467bd"),
}
LEASE_ACTIONS = ("lease", "lease-end")


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


def decision_columns(events, workers=0) -> dict:
    """Scaling decisions, placed at the running worker count of the latest sample before
    them (``workers`` is the count before ``events``, for a batch that continues a run)."""
    columns = {"time": [], "workers": [], "action": [], "reason": [], "marker": [], "color": []}
    for event in events:
        if event["kind"] == SAMPLE:
            workers = event["workers"]
        elif event["kind"] == SCALE:
            marker, color = MARKERS.get(event.get("action"), ("circle", "#555555"))
            columns["time"].append(event["time"])
            columns["workers"].append(workers)
            columns["action"].append(event.get("action", ""))
            columns["reason"].append(event.get("reason", ""))
            columns["marker"].append(marker)
            columns["color"].append(color)
    return columns


def lease_columns(events) -> dict:
    """When training runs started and ended (a lease taken or given back)."""
    leases = [e for e in events if e["kind"] == SCALE and e.get("action") in LEASE_ACTIONS]
    return {
        "time": [e["time"] for e in leases],
        "action": [e["action"] for e in leases],
    }


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
    """Process memory of every worker in every sample: one row per (sample, worker), the
    worker's colour fixed by its name, so each worker reads as a line of dots over time."""
    columns = {"time": [], "worker": [], "memory_mib": [], "data_mib": [], "color": []}
    for event in events:
        if event["kind"] != SAMPLE:
            continue
        for name, memory, managed in event.get("per_worker", ()):
            columns["time"].append(event["time"])
            columns["worker"].append(str(name))
            columns["memory_mib"].append(memory / 2**20)
            columns["data_mib"].append(managed / 2**20)
            columns["color"].append(Category10_10[_stable_index(str(name))])
    return columns


def _stable_index(name: str) -> int:
    """A colour index that is the same for a name in every process (``hash`` is salted)."""
    return sum(name.encode()) % len(Category10_10)


def rows_of_run(columns: dict, run: str) -> dict:
    keep = [r == run for r in columns["run"]]
    return {k: [v for v, kept in zip(col, keep, strict=True) if kept] for k, col in columns.items()}


# ----------------------------------------------------------------- figure factories
def _legend_below(fig):
    """Legends go under the plot, never over the curves."""
    if fig.legend:
        legend = fig.legend[0]
        legend.orientation, legend.label_text_font_size = "horizontal", "7pt"
        legend.padding, legend.spacing, legend.margin = 2, 4, 0
        fig.add_layout(legend, "below")


def _time_figure(title, y_label, x_range, height, css, **kwargs):
    return figure(
        title=title,
        x_range=x_range,
        x_axis_label="seconds since launch",
        y_axis_label=y_label,
        css_classes=[css],
        tools=TOOLS,
        width=WIDTH,
        height=height,
        **kwargs,
    )


def workers_figure(source, decisions, leases, x_range):
    """Workers running, requested and wanted; each decision a marker with its reason."""
    fig = _time_figure("Workers", "workers", x_range, 230, "enb-workers-figure")
    fig.vspan(x="time", source=leases, line_dash="dashed", line_color="#9467bd", line_width=1)
    style = {"source": source, "mode": "after"}
    fig.step(
        "time",
        "demand",
        line_dash="dotted",
        color="darkorange",
        **style,
        legend_label="scheduler's demand",
    )
    fig.step(
        "time", "requested", line_dash="dashed", color="gray", **style, legend_label="requested"
    )
    fig.step("time", "workers", line_width=2, **style, legend_label="running")
    marks = fig.scatter(
        "time",
        "workers",
        source=decisions,
        marker="marker",
        color="color",
        size=9,
        legend_label="decision (hover: reason)",
    )
    fig.add_tools(HoverTool(renderers=[marks], tooltips=[("", "@time{0.0} s @action: @reason")]))
    fig.y_range.start = 0
    _legend_below(fig)
    return fig


def loss_figure(x="iteration", x_range=None):
    """Loss per iteration, or over time on the shared axis (``x="time"``)."""
    if x == "time":
        return _time_figure(
            "Loss over time", "loss", x_range, 170, "enb-loss-time-figure", y_axis_type="log"
        )
    fig = figure(
        title="Loss",
        x_axis_label="iteration",
        y_axis_label="loss",
        y_axis_type="log",
        css_classes=["enb-loss-figure"],
        tools=TOOLS + ",hover",
        width=WIDTH,
        height=260,
    )
    fig.toolbar.autohide = True  # shown under the mouse only, as the time figures' toolbar
    return fig


def add_loss_line(fig, source, color, label=None, x="iteration"):
    extra = {"legend_label": label} if label else {}
    fig.line(x, "loss", source=source, color=color, line_width=2, **extra)
    fig.scatter(x, "loss", source=source, color=color, size=4)


def throughput_figure(source, x_range):
    fig = _time_figure("Throughput", "rows/s", x_range, 150, "enb-throughput-figure")
    fig.scatter("time", "rows_per_second", source=source, size=5)
    fig.yaxis.formatter = NumeralTickFormatter(format="0.0a")
    fig.y_range.start = 0
    return fig


def memory_figure(source, x_range):
    """Memory of each worker over time: a flat, even set of dots is a balanced cluster."""
    fig = _time_figure("Memory per worker", "MiB", x_range, 150, "enb-memory-figure")
    dots = fig.scatter("time", "memory_mib", source=source, color="color", size=4)
    fig.add_tools(
        HoverTool(
            renderers=[dots],
            tooltips=[
                ("worker", "@worker"),
                ("process", "@memory_mib{0.0} MiB"),
                ("task results", "@data_mib{0.0} MiB"),
            ],
        )
    )
    fig.y_range.start = 0
    return fig


def time_grid(figures):
    """The time figures in one column with one toolbar, shown only under the mouse."""
    grid = gridplot([[f] for f in figures], merge_tools=True, toolbar_location="right")
    grid.toolbar.autohide = True
    return grid


def shared_time_range():
    return DataRange1d(start=0, range_padding=0.02)


# ------------------------------------------------------------------------ live
class LivePlots:
    """Figures that follow a monitor while it records.

    Not thread-safe on purpose: only the panel's updater calls :meth:`refresh` and
    :meth:`follow`; the training and sampling threads only append to the monitor.

    State
    -----
    workers_source, decision_source, lease_source, loss_source, loss_time_source,
    throughput_source, memory_source : ColumnDataSource
        Kernel-side sources, grown only with ``stream`` (the browser gets the new rows
        only). The loss sources hold the current run; a new run starts them afresh.
    monitor : Monitor or None
        The stream being plotted; :meth:`follow` switches to another one (a new launch),
        and the plots start afresh at its first refresh.
    cursor : int
        Sequence number of the first monitor event not yet plotted (the monitor holds a
        bounded buffer, so an index into it would shift: see ``Monitor.events_since``).
    missed : int
        Events of the followed monitor dropped from its buffer before they were plotted
        (only when the plots fell behind by more than the monitor holds).
    run : str or None
        The run the loss sources hold.
    time_plots, loss_plot : bokeh layouts
        What the panel shows: the time figures on one linked axis, and loss per iteration.
        Each goes into its own widget (a bokeh model belongs to one document).
    """

    def __init__(self, monitor=None, rollover=20_000):
        self.rollover = rollover
        named = {
            "workers_source": (sample_columns, "enb-workers-source"),
            "decision_source": (decision_columns, "enb-scale-source"),
            "lease_source": (lease_columns, "enb-lease-source"),
            "loss_source": (iteration_columns, "enb-loss-source"),
            "loss_time_source": (iteration_columns, "enb-loss-time-source"),
            "throughput_source": (throughput_columns, "enb-throughput-source"),
            "memory_source": (memory_columns, "enb-memory-source"),
        }
        for attribute, (columns, name) in named.items():
            setattr(self, attribute, ColumnDataSource(columns([]), name=name))
        x_range = shared_time_range()
        self.workers_figure = workers_figure(
            self.workers_source, self.decision_source, self.lease_source, x_range
        )
        self.loss_time_figure = loss_figure(x="time", x_range=x_range)
        add_loss_line(self.loss_time_figure, self.loss_time_source, Category10_10[0], x="time")
        self.throughput_figure = throughput_figure(self.throughput_source, x_range)
        self.memory_figure = memory_figure(self.memory_source, x_range)
        self.time_plots = time_grid(
            [self.workers_figure, self.loss_time_figure, self.throughput_figure, self.memory_figure]
        )
        self.loss_figure = self.loss_plot = loss_figure()
        add_loss_line(self.loss_figure, self.loss_source, Category10_10[0])
        self.monitor = self.run = None
        self.cursor, self.missed, self._reset = 0, 0, False
        self._last_iteration, self._workers = None, 0
        self.follow(monitor)

    def follow(self, monitor):
        """Plot ``monitor`` from its first event on, in place of the one plotted so far."""
        self.monitor, self.cursor, self.missed, self._reset = monitor, 0, 0, True
        self.run, self._last_iteration, self._workers = None, None, 0

    def _stream(self, source, columns):
        if next(iter(columns.values())):
            source.stream(columns, rollover=self.rollover)

    def refresh(self):
        """Plot what the monitor recorded since the last call."""
        if self.monitor is None:
            return
        if self._reset:
            self._reset = False
            self._clear()
        batch = self.monitor.events_since(self.cursor)
        events, self.cursor = batch.records, batch.cursor
        self.missed += batch.missed
        self._stream(self.workers_source, sample_columns(events))
        self._stream(self.decision_source, decision_columns(events, self._workers))
        self._stream(self.lease_source, lease_columns(events))
        self._stream(
            self.throughput_source, throughput_columns(events, previous=self._last_iteration)
        )
        self._stream(self.memory_source, memory_columns(events))
        self._plot_loss(iteration_columns(events))
        self._last_iteration = next(
            (e for e in reversed(events) if e["kind"] == ITERATION), self._last_iteration
        )
        self._workers = next(
            (e["workers"] for e in reversed(events) if e["kind"] == SAMPLE), self._workers
        )

    def _plot_loss(self, iterations):
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

    def _clear(self):
        for source in (
            self.workers_source,
            self.decision_source,
            self.lease_source,
            self.loss_source,
            self.loss_time_source,
            self.throughput_source,
            self.memory_source,
        ):
            if next(iter(source.data.values()), None):
                source.data = {k: [] for k in source.data}
        self.loss_figure.title.text = "Loss"
