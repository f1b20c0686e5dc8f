# dask-gateway-server configuration for tests on one machine: everything on 127.0.0.1,
# clusters as local processes (UnsafeLocalBackend: same user, no isolation — tests only),
# any user name accepted (SimpleAuthenticator, no password).
# Copied from the recipe in the project's shared notes; tests/services.py starts it.
# Start:  dask-gateway-server -f gateway_config.py     (pip install "dask-gateway-server[local]")
# Client: Gateway("http://127.0.0.1:18000", proxy_address="gateway://127.0.0.1:18786",
#                 auth=dask_gateway.BasicAuth("alice", ""))
import os
import sys

from dask_gateway_server.options import Float, Integer, Options

c = get_config()  # noqa: F821  (provided by traitlets when the server loads this file)
port = int(os.environ.get("ENB_GATEWAY_PORT", "18000"))
c.DaskGateway.address = f"127.0.0.1:{port + 1}"  # the gateway's private API
c.Proxy.address = f"127.0.0.1:{port}"  # HTTP: the REST API and dashboards
c.Proxy.tcp_address = f"127.0.0.1:{port + 786}"  # TLS-over-TCP to the schedulers
c.DaskGateway.backend_class = "dask_gateway_server.backends.local.UnsafeLocalBackend"
c.DaskGateway.authenticator_class = "dask_gateway_server.auth.SimpleAuthenticator"
# distributed >= 2026.6 has no `dask-scheduler` / `dask-worker` scripts (the gateway's default)
c.ClusterConfig.scheduler_cmd = [sys.executable, "-m", "distributed.cli.dask_scheduler"]
c.ClusterConfig.worker_cmd = [sys.executable, "-m", "distributed.cli.dask_worker"]
c.ClusterConfig.worker_cores = 1
c.ClusterConfig.worker_memory = "1 G"
c.ClusterConfig.adaptive_period = 0.5
c.ClusterConfig.idle_timeout = 0
c.UnsafeLocalBackend.clusters_directory = os.environ.get("ENB_GATEWAY_DIR", "/tmp/enb-gateway")


def _worker_resources(options):
    """What users may choose per cluster, as a real deployment offers (checked by the server)."""
    return {"worker_cores": options.worker_cores, "worker_memory": f"{options.worker_memory} G"}


c.Backend.cluster_options = Options(
    Integer("worker_cores", default=1, min=1, max=2, label="Worker cores"),
    Float("worker_memory", default=1, min=0.5, max=4, label="Worker memory (GiB)"),
    handler=_worker_resources,
)
