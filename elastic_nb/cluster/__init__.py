"""Start, wrap or connect to a Dask cluster and make it elastic.

The package's public face: :class:`ElasticCluster` (in :mod:`.core`) with its three modes
(:mod:`.backends`, :mod:`.local`), the checks a local launch passes first
(:mod:`.capacity`), how local workers start (:mod:`.forkserver`), reaching a running
scheduler (:mod:`.connect`) and the bounded decision log (:mod:`.decisions`).
"""

from .backends import AddressBackend, Backend, ManagerBackend
from .capacity import MIN_WORKER_MEMORY, check_local_capacity, check_memory_limit
from .core import ElasticCluster
from .decisions import MAX_DECISIONS, DecisionLog
from .forkserver import WORKER_PRELOAD
from .local import HTTP_API_ROUTE, LOOPBACK, LocalBackend

__all__ = [
    "HTTP_API_ROUTE",
    "LOOPBACK",
    "MAX_DECISIONS",
    "MIN_WORKER_MEMORY",
    "WORKER_PRELOAD",
    "AddressBackend",
    "Backend",
    "DecisionLog",
    "ElasticCluster",
    "LocalBackend",
    "ManagerBackend",
    "check_local_capacity",
    "check_memory_limit",
]
