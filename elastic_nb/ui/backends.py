"""The panel's backend menu and the fields of the chosen backend.

The choices themselves (names, packages, install hints, fields and their defaults) are
:data:`elastic_nb.cluster.choices.BACKENDS`; this module only shows them. One widget per
kind of value, shared where two backends ask for the same thing (a job's cores are its
worker's threads), and only the chosen backend's fields are visible. Kubernetes also shows
the manifest that Launch would deploy, checked as it is typed: without a reachable
Kubernetes cluster that view is what the panel can give.
"""

from __future__ import annotations

import html

import ipywidgets as w

from ..cluster.choices import BACKENDS, CHOICES, kubernetes_manifest
from .controls import dropdown, integer, styled, text
from .render import _set

#: Fields of different backends typed into one widget: the first name's widget serves both.
SHARED = {"cores": "threads_per_worker", "memory": "memory_limit"}
#: The CSS class (``enb-<name>``) of each widget, where it is not the field's name.
CSS = {
    "threads_per_worker": "threads",
    "memory_limit": "memory",
    "proxy_address": "proxy-address",
    "cluster_options": "cluster-options",
}
#: The widgets of each row under the scaling range, in display order.
FIELD_ROWS = (
    ("threads_per_worker", "memory_limit"),
    ("queue", "walltime", "account"),
    ("proxy_address", "cluster_options"),
    ("image", "namespace"),
    ("requests", "limits"),
)
OBSERVE_ONLY = (
    "observe only: elastic_nb watches this scheduler's workers but cannot start or stop "
    "them, so Scale and the policy are off"
)


def slot(field) -> str:
    """The widget a field is typed into."""
    return SHARED.get(field.name, field.name)


class BackendControls:
    """The backend menu, the fields of every backend, and what is shown for the chosen one.

    State
    -----
    available : dict of str to bool
        Whether each choice's packages are installed, found once, when the panel is built
        (a panel made after a ``pip install`` offers the new backend).
    menu : ipywidgets.Dropdown
        Its value is a choice name; a choice not installed says so in its label.
    fields : dict of str to widget
        One widget per :func:`slot`.
    note : ipywidgets.HTML
        Under the menu: the install hint of a choice not installed, or that an address
        is only observed.
    manifest : ipywidgets.HTML
        The Kubernetes manifest (YAML) and whether it validates.
    shown : str or None
        The choice whose labels and defaults the fields show (set by the updater).
    defaults : dict of str to value
        The default last put in each widget: a value still equal to it was not typed by
        the user, so it follows the next choice's default.

    Only the panel's updater calls :meth:`render`; the rest is read from any thread.
    """

    def __init__(self):
        self.available = {choice.name: choice.available() for choice in BACKENDS}
        options = [(c.menu_label(self.available[c.name]), c.name) for c in BACKENDS]
        self.menu = dropdown(options, "local", "backend", "backend")
        self.fields, self.defaults = {}, {}
        for field in (f for choice in BACKENDS for f in choice.fields):
            name = slot(field)
            if name not in self.fields:
                self.fields[name] = self._widget(name, field)
                self.defaults[name] = field.default
        self.note = styled(w.HTML(""), "backend-note")
        self.manifest = styled(w.HTML(""), "manifest")
        self.shown, self._manifest_key = None, None
        self._rows = [w.HBox([self.fields[name] for name in row]) for row in FIELD_ROWS]

    @staticmethod
    def _widget(name, field):
        css = CSS.get(name, name.replace("_", "-"))
        if isinstance(field.default, int):
            return integer(field.default, css, field.label, 1, 256)
        widget = text(field.default, css, field.label, placeholder=field.placeholder)
        widget.layout.width = "22em"
        return widget

    @property
    def choice(self):
        return CHOICES[self.menu.value]

    def values(self) -> dict:
        """The chosen backend's fields as typed, by :func:`~elastic_nb.cluster.choices.
        open_backend` keyword."""
        return {field.name: self.fields[slot(field)].value for field in self.choice.fields}

    def top_rows(self):
        return [w.HBox([self.menu, self.fields["address"]]), self.note]

    def field_rows(self):
        return [*self._rows, self.manifest]

    # ------------------------------------------------------------------ updater
    def render(self, panel):
        """Fields, note and manifest of the chosen backend (the panel's updater only)."""
        choice = self.choice
        if self.shown != choice.name:
            self._show(choice)
        if not self.available[choice.name]:
            hint = html.escape(choice.missing()).replace(
                html.escape(choice.install_hint), f"<code>{html.escape(choice.install_hint)}</code>"
            )
            note = f"<span class='enb-missing'>⚠ {hint}</span>"
        else:
            note = html.escape(OBSERVE_ONLY) if choice.observe_only else ""
        _set(self.note, value=note)
        if choice.name == "kubernetes":
            self._render_manifest(panel)

    def _show(self, choice):
        """Show ``choice``'s fields with its labels; untouched values take its defaults."""
        fields = {slot(field): field for field in choice.fields}
        for name, widget in self.fields.items():
            field = fields.get(name)
            _set(widget.layout, display=None if field else "none")
            if field is None:
                continue
            _set(widget, description=field.label)
            if isinstance(widget, w.Text):
                _set(widget, placeholder=field.placeholder)
            if widget.value == self.defaults[name]:
                _set(widget, value=field.default)
                self.defaults[name] = field.default
        for row in self._rows:
            shown = any(child.layout.display != "none" for child in row.children)
            _set(row.layout, display=None if shown else "none")
        _set(self.manifest.layout, display=None if choice.name == "kubernetes" else "none")
        self.shown = choice.name

    def _render_manifest(self, panel):
        """The DaskCluster Launch would deploy, rebuilt only when a field it reads changed."""
        values = self.values()
        scaling = (panel.minimum.value, panel.maximum.value, panel.policy.value)
        key = (tuple(values.items()), scaling)
        if key == self._manifest_key:
            return
        self._manifest_key = key
        _set(self.manifest, value=manifest_html(values, *scaling))


def manifest_html(values, minimum, maximum, policy) -> str:
    """The manifest as YAML to ``kubectl apply``, then whether it validates; or why it
    could not be built (a bad field, a missing package)."""
    try:
        from ..cluster.kubernetes import to_yaml, validate_spec

        manifest = kubernetes_manifest(minimum, **values)
        validate_spec(manifest)
    except (ValueError, TypeError, ImportError) as err:
        return f"<span class='enb-manifest-error'>⚠ {html.escape(str(err))}</span>"
    scaled = f"# elastic_nb scales the workers from {minimum} to {maximum} ({policy} policy)\n"
    return (
        "<details open><summary>manifest: the DaskCluster Launch deploys "
        "(<code>kubectl apply -f</code>) · <span class='enb-manifest-valid'>✓ valid for the "
        "installed dask-kubernetes operator</span></summary><pre class='enb-manifest-yaml' "
        "style='max-height: 18em; overflow: auto; margin: 0'>"
        f"{html.escape(scaled + to_yaml(manifest))}</pre></details>"
    )
