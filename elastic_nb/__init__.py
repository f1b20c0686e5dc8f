"""elastic_nb: elastic machine learning on Dask, from a Jupyter notebook."""

from importlib import import_module

__version__ = "0.1.0"

# Public name -> module that defines it. Imported on first use (PEP 562), so that the
# command line answers --help without loading dask, bokeh and ipywidgets.
_PUBLIC = {
    "ControlPanel": "ui.panel",
    "ElasticCluster": "cluster",
    "LinearRegression": "estimators",
    "LogisticRegression": "estimators",
    "MLPClassifier": "estimators",
    "MLPRegressor": "estimators",
    "Monitor": "observe.monitor",
    "DefaultPolicy": "policies",
    "PredictivePolicy": "policies",
    "TrainingPolicy": "policies",
    "checkpoint": None,
    "live_view": "ui.controls",
    "datasets": None,
    "engine": None,
    "estimators": None,
    "families": None,
    "linear": None,
    "optim": None,
}
__all__ = sorted(_PUBLIC)


def __getattr__(name):
    if name not in _PUBLIC:
        raise AttributeError(f"module 'elastic_nb' has no attribute {name!r}")
    module = import_module(f".{_PUBLIC[name] or name}", __name__)
    return module if _PUBLIC[name] is None else getattr(module, name)


def __dir__():
    return sorted([*globals(), *_PUBLIC])
