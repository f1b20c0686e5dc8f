"""Safe by default: loopback only; TLS on request, refusing clients without credentials."""

from urllib.parse import urlparse

import pytest
from distributed import Client
from distributed.security import Security
from helpers import assert_no_new_worker_processes, worker_pids

from elastic_nb import ElasticCluster


@pytest.mark.slow
def test_tls_cluster_works_and_refuses_a_client_without_credentials():
    before = worker_pids()
    with ElasticCluster(minimum=1, maximum=1, security=True) as cluster:
        assert cluster.scheduler_address.startswith("tls://")
        assert urlparse(cluster.scheduler_address).hostname == "127.0.0.1"
        assert cluster.client.submit(sum, [1, 2]).result(timeout=30) == 3
        workers = cluster.client.scheduler_info()["workers"]
        assert workers and all(address.startswith("tls://127.0.0.1:") for address in workers)
        with pytest.raises(OSError):  # TLS, but a certificate from another authority
            Client(cluster.scheduler_address, security=Security.temporary(), timeout=3)
        with pytest.raises(TypeError, match="TLS expects"):  # no TLS at all: cannot even try
            Client(cluster.scheduler_address, timeout=3)
        plain = cluster.scheduler_address.replace("tls://", "tcp://")
        with pytest.raises(OSError):  # plain TCP to the TLS port gets nowhere
            Client(plain, timeout=3)
    assert_no_new_worker_processes(before)
