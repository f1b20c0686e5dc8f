"""A standalone HTML report of a monitor's events: what ran, the plots, every decision.

The page opens with a summary table (the cluster, then one row per training run), then
the same figures the notebook shows (time figures on one linked axis, and loss per
iteration), then a table of every scaling decision with its reason. BokehJS is inlined,
so the file works offline.
"""

from __future__ import annotations

import html
from itertools import cycle
from pathlib import Path

from bokeh.embed import components
from bokeh.layouts import column
from bokeh.models import ColumnDataSource, Range1d
from bokeh.palettes import Category10_10
from bokeh.resources import INLINE

from ..observe.monitor import ITERATION, RUN, SAMPLE, SCALE, worker_seconds
from .plots import (
    add_loss_line,
    decision_columns,
    iteration_columns,
    lease_columns,
    loss_figure,
    memory_columns,
    memory_figure,
    rows_of_run,
    sample_columns,
    throughput_columns,
    throughput_figure,
    time_grid,
    workers_figure,
)

STYLE = """
body { font-family: system-ui, sans-serif; margin: 1.5em; color: #222; }
table { border-collapse: collapse; margin: 0.5em 0 1.5em; font-size: 0.9em; }
th, td { border-bottom: 1px solid #ddd; padding: 0.25em 0.8em; text-align: left; }
th { background: #f4f4f4; }
td.number { text-align: right; font-variant-numeric: tabular-nums; }
"""


# ------------------------------------------------------------------------ tables
def cluster_summary(events) -> dict:
    """The cluster's side of the run: policy and range, wall time, cost, peak width."""
    adapts = [e for e in events if e["kind"] == SCALE and e.get("action") == "adapt"]
    samples = [e for e in events if e["kind"] == SAMPLE]
    last = adapts[-1] if adapts else {}
    return {
        "policy": last.get("policy", "—"),
        "minimum": last.get("minimum", "—"),
        "maximum": last.get("maximum", "—"),
        "wall seconds": round(events[-1]["time"], 1) if events else 0.0,
        "worker-seconds": round(worker_seconds(events), 1),
        "peak workers": max((e["workers"] for e in samples), default=0),
    }


def run_rows(events) -> list[dict]:
    """One row per training run: what it fitted, how far it got, how it ended."""
    runs: dict[str, dict] = {}
    for event in events:
        if event["kind"] == RUN:
            row = runs.setdefault(event["run"], {"run": event["run"]})
            details = {k: v for k, v in event.items() if k not in ("kind", "time", "run")}
            row.update({k: v for k, v in details.items() if v not in ("", None)})
        elif event["kind"] == ITERATION:
            row = runs.setdefault(event["run"], {"run": event["run"]})
            row["iterations"], row["final loss"] = event["iteration"], event["loss"]
    return list(runs.values())


def decision_rows(events) -> list[dict]:
    """Every scaling decision: when, what, to how many workers, and why."""
    return [
        {
            "time": e["time"],
            "action": e.get("action", ""),
            "target": e.get("target", ""),
            "reason": e.get("reason", ""),
        }
        for e in events
        if e["kind"] == SCALE
    ]


def _cell(value):
    if isinstance(value, float):
        return f"<td class='number'>{value:.6g}</td>"
    if isinstance(value, int) and not isinstance(value, bool):
        return f"<td class='number'>{value}</td>"
    return f"<td>{html.escape(str(value))}</td>"


def html_table(rows, css_class, columns=None) -> str:
    columns = columns or list(dict.fromkeys(k for row in rows for k in row))
    head = "".join(f"<th>{html.escape(c)}</th>" for c in columns)
    body = "".join(
        "<tr>" + "".join(_cell(row.get(c, "")) for c in columns) + "</tr>" for row in rows
    )
    return f"<table class='{css_class}'><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>"


# ------------------------------------------------------------------------- plots
def report_layout(events):
    """Static figures of a whole event stream, all time figures on one axis."""
    end = max((e["time"] for e in events), default=1.0)
    x_range = Range1d(0, end * 1.02 or 1.0)
    workers = workers_figure(
        ColumnDataSource(sample_columns(events)),
        ColumnDataSource(decision_columns(events)),
        ColumnDataSource(lease_columns(events)),
        x_range,
    )
    loss, loss_time = loss_figure(), loss_figure(x="time", x_range=x_range)
    iterations = iteration_columns(events)
    for run, color in zip(dict.fromkeys(iterations["run"]), cycle(Category10_10), strict=False):
        source = ColumnDataSource(rows_of_run(iterations, run))
        add_loss_line(loss, source, color, label=run)
        add_loss_line(loss_time, source, color, label=run, x="time")
    for fig in (loss, loss_time):
        if fig.legend:
            fig.add_layout(fig.legend[0], "right")  # beside the curves, not on them
    throughput = throughput_figure(ColumnDataSource(throughput_columns(events)), x_range)
    memory = memory_figure(ColumnDataSource(memory_columns(events)), x_range)
    return column(time_grid([workers, loss_time, throughput, memory]), loss)


def report_html(events, title="elastic_nb run") -> str:
    script, div = components(report_layout(events))
    cluster = [{"": k, "value": v} for k, v in cluster_summary(events).items()]
    runs = run_rows(events)
    decisions = decision_rows(events)
    return f"""<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8"><title>{html.escape(title)}</title>
{INLINE.render()}<style>{STYLE}</style></head>
<body>
<h1>{html.escape(title)}</h1>
<h2>Summary</h2>
{html_table(cluster, "enb-summary enb-cluster-summary")}
{html_table(runs, "enb-summary enb-runs") if runs else "<p>No training run.</p>"}
<h2>Plots</h2>
{div}
<h2>Scaling decisions</h2>
{html_table(decisions, "enb-decisions", ["time", "action", "target", "reason"])}
{script}
</body></html>
"""


def write_report(monitor, path, title="elastic_nb run") -> Path:
    """Write :func:`report_html` of the monitor's events to ``path``."""
    path = Path(path)
    path.write_text(report_html(list(monitor.events), title))
    return path
