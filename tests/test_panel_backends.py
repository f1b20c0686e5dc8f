"""The panel's backend menu, kernel-side: every choice listed in order, a choice whose
package is missing shown disabled with its install hint, only the chosen backend's fields
shown, bad values as one sentence in the panel, and the Kubernetes manifest view checked
against the CRD (no Kubernetes cluster here: Launch fails with the clear error)."""

import html
import importlib.util
import re
import time

import pytest
import yaml

from elastic_nb import ControlPanel
from elastic_nb.cluster.choices import BACKENDS, CHOICES, BackendChoice, open_backend, parse_mapping
from elastic_nb.ui.backends import slot

NAMES = ["local", "scheduler address", "slurm", "pbs", "sge", "gateway", "kubernetes"]
#: The widgets each choice shows (by slot), in display order.
VISIBLE = {
    "local": ["threads_per_worker", "memory_limit"],
    "scheduler address": ["address"],
    "slurm": ["threads_per_worker", "memory_limit", "queue", "walltime", "account"],
    "gateway": ["address", "proxy_address", "cluster_options"],
    "kubernetes": ["image", "namespace", "requests", "limits"],
}
VISIBLE["pbs"] = VISIBLE["sge"] = VISIBLE["slurm"]


def shown(panel):
    return [name for name, w in panel.backends.fields.items() if w.layout.display != "none"]


def choose(panel, name):
    panel.backend.value = name
    panel.refresh()
    return panel


def error_sentence(panel):
    """The panel's error summary (the folded traceback left out), unescaped."""
    match = re.search(r"<summary>⚠ (.*?)</summary>", panel.message.value, re.S)
    assert match, f"no error in the panel's message: {panel.message.value!r}"
    return html.unescape(match.group(1))


# ------------------------------------------------------------------- the data
def test_every_backend_is_offered_in_display_order(panel):
    assert [choice.name for choice in BACKENDS] == NAMES
    assert [value for _, value in panel.backend.options] == NAMES
    labels = dict((value, label) for label, value in panel.backend.options)
    assert labels["slurm"] == "SLURM" and labels["gateway"] == "dask-gateway"  # all installed
    assert panel.backend.value == "local" and shown(panel) == VISIBLE["local"]


def test_a_choice_of_a_package_that_does_not_exist_is_not_available():
    choice = BackendChoice("x", "X", ("elastic_nb_no_such_package",), 'pip install "x"')
    assert not choice.available() and choice.menu_label() == "X — not installed"
    assert choice.missing() == 'X needs elastic-nb-no-such-package: pip install "x"'
    assert CHOICES["local"].available() and CHOICES["scheduler address"].available()


def test_field_values_are_parsed_or_named():
    assert parse_mapping("requests", "cpu=500m, memory = 1Gi") == {"cpu": "500m", "memory": "1Gi"}
    assert parse_mapping("options", "worker_cores=2, worker_memory=0.5, gpu=true", True) == {
        "worker_cores": 2,
        "worker_memory": 0.5,
        "gpu": True,
    }
    assert parse_mapping("options", '{"worker_cores": 2}') == {"worker_cores": 2}
    assert parse_mapping("limits", "  ") == {}
    with pytest.raises(ValueError, match="cluster_options must be key=value pairs"):
        parse_mapping("cluster_options", "cores 2")
    with pytest.raises(ValueError, match="options is not a JSON object"):
        parse_mapping("options", "{cores: 2}")
    with pytest.raises(ValueError, match="minimum must be a whole number, got 'two'"):
        open_backend("local", "two", 2)
    with pytest.raises(ValueError, match="backend must be one of 'local'"):
        open_backend("yarn", 0, 2)
    with pytest.raises(TypeError, match="SLURM has no field 'threads_per_worker'"):
        open_backend("slurm", 0, 2, threads_per_worker=2)
    with pytest.raises(ValueError, match="cores must be >= 1, got 0"):
        open_backend("pbs", 0, 2, cores="0")


# --------------------------------------------------------------- not installed
@pytest.fixture
def without_jobqueue(monkeypatch):
    """dask-jobqueue as if it were not installed: find_spec does not find it (and neither
    can an import of it), the rest of the world unchanged."""
    real = importlib.util.find_spec

    def find_spec(name, *args, **kwargs):
        return None if name.split(".")[0] == "dask_jobqueue" else real(name, *args, **kwargs)

    monkeypatch.setattr(importlib.util, "find_spec", find_spec)


def test_a_missing_package_is_shown_disabled_with_its_install_hint(without_jobqueue, panel_factory):
    panel = panel_factory()
    labels = dict((value, label) for label, value in panel.backend.options)
    assert [labels[k] for k in ("slurm", "pbs", "sge")] == [
        "SLURM — not installed",
        "PBS — not installed",
        "SGE — not installed",
    ]
    assert labels["gateway"] == "dask-gateway"
    assert not panel.launch_button.disabled  # local is chosen
    choose(panel, "slurm")
    assert panel.launch_button.disabled
    note = html.unescape(panel.backends.note.value)
    assert 'SLURM needs dask-jobqueue: <code>pip install "elastic-nb[hpc]"</code>' in note
    assert shown(panel) == VISIBLE["slurm"]  # the fields are there to read, not to launch
    with pytest.raises(ImportError, match=r'pip install "elastic-nb\[hpc\]"'):
        panel.launch()  # the same from code: refused, and said in the panel
    assert 'pip install "elastic-nb[hpc]"' in error_sentence(panel) and panel.cluster is None
    with pytest.raises(ImportError, match="SLURM needs dask-jobqueue"):
        open_backend("slurm", 0, 2)
    choose(panel, "local")
    assert not panel.launch_button.disabled and panel.backends.note.value == ""


@pytest.fixture
def panel_factory():
    """Panels made inside a test (after its monkeypatching), closed at its end."""
    made = []

    def make(**kwargs):
        made.append(ControlPanel(rows=40_000, chunk_rows=5_000, features=4, **kwargs))
        return made[-1]

    yield make
    for panel in made:
        panel.close()


# ---------------------------------------------------------------------- fields
@pytest.mark.parametrize("name", NAMES)
def test_only_the_chosen_backends_fields_are_shown_under_its_labels(panel, name):
    choose(panel, name)
    assert shown(panel) == VISIBLE[name]
    labels = {slot(f): f.label for f in CHOICES[name].fields}
    assert {k: panel.backends.fields[k].description for k in shown(panel)} == labels
    manifest = panel.backends.manifest.layout.display != "none"
    assert manifest == (name == "kubernetes")
    hidden_rows = [row for row in panel.backends._rows if row.layout.display == "none"]
    assert all(c.layout.display == "none" for row in hidden_rows for c in row.children)
    assert panel.backends.values().keys() == {f.name for f in CHOICES[name].fields}


def test_untouched_fields_follow_the_backend_and_typed_ones_stay(panel):
    assert panel.memory.value == "auto"
    choose(panel, "slurm")
    assert panel.memory.description == "memory/job" and panel.memory.value == "2GiB"
    assert panel.threads.description == "cores/job"
    choose(panel, "local")
    assert panel.memory.value == "auto" and panel.threads.description == "threads/worker"
    choose(panel, "slurm")
    panel.memory.value, panel.backends.fields["queue"].value = "8GiB", "debug"
    choose(panel, "pbs")
    assert panel.memory.value == "8GiB" and panel.backends.fields["queue"].value == "debug"
    choose(panel, "local")
    assert panel.memory.value == "8GiB"  # typed by the user: kept


def test_an_observed_address_says_it_only_observes(panel, cluster):
    choose(panel, "scheduler address")
    assert "observe only" in html.unescape(panel.backends.note.value)
    assert panel.minimum.disabled and panel.maximum.disabled and panel.policy.disabled
    panel.address.value = cluster.scheduler_address
    panel.launch_button.click()
    assert panel.cluster is not None and not panel.cluster.can_scale, panel.message.value
    message = html.unescape(panel.message.value)
    assert message.startswith(f"connected to {cluster.scheduler_address}; observe only")
    assert "Scale and the policy are off" in message
    assert panel.refresh().scale_button.disabled and panel.backend.disabled
    panel.shutdown()
    assert not cluster.closed  # only the panel's client closed
    assert not panel.backend.disabled


@pytest.mark.parametrize(
    ("name", "field", "value", "expected"),
    [
        ("slurm", "walltime", "soon", "walltime must look like 'HH:MM:SS', got 'soon'"),
        ("sge", "memory_limit", "lots", "memory must be a size such as '4GiB', got 'lots'"),
        ("gateway", "cluster_options", "cores", "cluster_options must be key=value pairs"),
        ("gateway", "proxy_address", "", None),  # default: the address must answer first
        ("kubernetes", "requests", "cpu=3", "requests['cpu'] (3) exceeds limits['cpu'] (2)"),
        ("kubernetes", "namespace", "My Space", "namespace must be at most 63 lowercase"),
    ],
)
def test_a_bad_field_is_one_sentence_in_the_panel(panel, name, field, value, expected):
    choose(panel, name)
    panel.backends.fields[field].value = value
    if expected is None:  # nothing at the gateway's address: ConnectionError, said
        panel.address.value = "http://127.0.0.1:9"
        expected = "no dask-gateway answers at 'http://127.0.0.1:9'"
    started = time.monotonic()
    panel.launch_button.click()  # must not raise
    assert time.monotonic() - started < 20
    assert expected in error_sentence(panel)
    assert panel.cluster is None and not panel.refresh().launch_button.disabled


# ------------------------------------------------------------------ Kubernetes
def test_the_kubernetes_manifest_view_is_the_manifest_launch_deploys(panel):
    pytest.importorskip("dask_kubernetes", reason='the k8s extra: pip install "elastic-nb[k8s]"')
    from elastic_nb.cluster.kubernetes import DEFAULT_IMAGE, DEFAULT_RESOURCES, validate_spec

    choose(panel, "kubernetes")
    fields = panel.backends.fields
    assert parse_mapping("requests", fields["requests"].value) == DEFAULT_RESOURCES["requests"]
    assert parse_mapping("limits", fields["limits"].value) == DEFAULT_RESOURCES["limits"]
    panel.minimum.value, panel.maximum.value = 0, 3
    fields["namespace"].value, fields["image"].value = "ml-team", DEFAULT_IMAGE
    fields["requests"].value, fields["limits"].value = "cpu=500m, memory=1Gi", "memory=2Gi"
    view = panel.refresh().backends.manifest.value
    assert "✓ valid for the installed dask-kubernetes operator" in view
    text = html.unescape(re.search(r"<pre[^>]*>(.*)</pre>", view, re.S).group(1))
    assert text.startswith("# elastic_nb scales the workers from 0 to 3 (training policy)")
    manifest = yaml.safe_load(text)
    validate_spec(manifest)  # what the user would `kubectl apply` is what the CRD accepts
    assert manifest["metadata"]["namespace"] == "ml-team"
    assert manifest["spec"]["worker"]["replicas"] == 0
    (worker,) = manifest["spec"]["worker"]["spec"]["containers"]
    assert worker["image"] == DEFAULT_IMAGE
    assert worker["resources"] == {
        "requests": {"cpu": "500m", "memory": "1Gi"},
        "limits": {"memory": "2Gi"},
    }
    fields["limits"].value = "cpu=250m"
    view = html.unescape(panel.refresh().backends.manifest.value)
    assert "⚠ requests['cpu'] (500m) exceeds limits['cpu'] (250m)" in view


def test_kubernetes_launch_without_a_cluster_is_a_clear_error(panel, monkeypatch, tmp_path):
    pytest.importorskip("dask_kubernetes", reason='the k8s extra: pip install "elastic-nb[k8s]"')
    monkeypatch.setenv("KUBECONFIG", str(tmp_path / "missing-kubeconfig"))
    monkeypatch.delenv("KUBERNETES_SERVICE_HOST", raising=False)
    choose(panel, "kubernetes")
    started = time.monotonic()
    panel.launch_button.click()  # must not raise
    assert time.monotonic() - started < 10
    sentence = error_sentence(panel)
    assert sentence.startswith("no Kubernetes cluster reachable") and "KUBECONFIG" in sentence
    assert panel.cluster is None and not panel.refresh().launch_button.disabled
