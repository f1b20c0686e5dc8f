"""elastic_nb: elastic machine learning on Dask, from a Jupyter notebook."""

from . import datasets
from .cluster import ElasticCluster
from .models import LinearRegression
from .monitor import Monitor

__all__ = ["ControlPanel", "ElasticCluster", "LinearRegression", "Monitor", "datasets"]
__version__ = "0.1.0"


def __getattr__(name):
    # The panel pulls in ipywidgets and bokeh; import it only when asked for.
    if name == "ControlPanel":
        from .widgets import ControlPanel

        return ControlPanel
    raise AttributeError(f"module 'elastic_nb' has no attribute {name!r}")
