"""Panel state → widgets. Called by the panel's updater only, on every tick.

Each function reads plain state (the panel's attributes, its trainer, its monitor) and
sets only the widget traits whose value differs, so an idle tick sends nothing.
"""

from __future__ import annotations

import html

from .controls import MODELS


def _set(widget, **traits):
    for name, value in traits.items():
        if getattr(widget, name) != value:
            setattr(widget, name, value)


def render_controls(panel):
    """Buttons, fields and menus from what the panel is doing."""
    cluster, trainer = panel.cluster, panel.trainer  # read once: another thread may reset it
    running = cluster is not None
    training, paused = panel.training, panel.paused
    backends = panel.backends
    observed = backends.choice.observe_only
    installed = backends.available[backends.choice.name]
    _set(panel.launch_button, disabled=running or panel.launching or not installed)
    _set(panel.backend, disabled=running or panel.launching)
    _set(panel.shutdown_button, disabled=not running)
    _set(panel.scale_button, disabled=not (running and cluster.can_scale))
    _set(panel.train_button, disabled=not running or training)
    _set(panel.stop_button, disabled=not training)
    _set(
        panel.pause_button,
        disabled=not training,
        description="Resume" if paused else "Pause",
        icon="play" if paused else "pause",
    )
    for control in (panel.minimum, panel.maximum, panel.policy):
        _set(control, disabled=observed)
    solvers = MODELS[panel.model_choice.value][1]
    if tuple(panel.solver.options) != solvers:
        keep = panel.solver.value if panel.solver.value in solvers else solvers[0]
        panel.solver.options = solvers
        _set(panel.solver, value=keep)
    if trainer is not None:
        _set(panel.progress, max=trainer.total, value=trainer.done)
        _set(panel.eta, value=trainer.eta)
    link = html.escape(cluster.dashboard_link or "") if running else ""
    _set(panel.dashboard, value=f"<a href='{link}' target='_blank'>dashboard</a>" if link else "")
    _set(panel.message, value=panel.notice)


#: Decisions listed under the plots (all of them are in the plot's hover and the report).
RECENT_DECISIONS = 6


def render_decisions(panel):
    """The latest scaling decisions with their reasons, newest first."""
    columns = panel.plots.decision_source.data
    rows = list(zip(columns["time"], columns["action"], columns["reason"], strict=True))
    lines = "".join(
        f"<tr><td>{at:.1f} s</td><td>{html.escape(action)}</td><td>{html.escape(why)}</td></tr>"
        for at, action, why in reversed(rows[-RECENT_DECISIONS:])
    )
    table = f"<b>Scaling decisions</b><table>{lines}</table>" if lines else ""
    _set(panel.decisions, value=table)


def render_status(panel):
    """The workers label and the live line: loss, and cost so far."""
    monitor, running = panel.monitor, panel.cluster is not None
    if monitor is None:
        return
    workers = (monitor.current_workers() or 0) if running else 0
    _set(panel.workers, value=f"workers: {workers}")
    parts = [f"workers: {workers}"]
    trainer = panel.trainer
    if trainer is not None and trainer.last is not None:
        parts.append(f"loss: {trainer.last['loss']:.4g}")
    wall = monitor.now() if running else (monitor.events[-1]["time"] if monitor.events else 0)
    parts.append(f"cost so far: {monitor.worker_seconds():.1f} worker-seconds · wall {wall:.1f} s")
    if not running:
        parts.append("cluster stopped")
    _set(panel.status, value=" · ".join(parts))
