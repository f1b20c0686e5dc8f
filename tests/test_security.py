"""Safe by default: loopback only; TLS on request, refusing clients without credentials."""

import subprocess
import sys
import textwrap
from urllib.parse import urlparse

import pytest
from helpers import assert_no_new_worker_processes, worker_pids

from elastic_nb import ElasticCluster

#: Each refused client is tried in a fresh interpreter: a Client whose constructor failed
#: is garbage-collected later, and its __del__ can deadlock distributed's loop runner if
#: that happens inside the next Client's start-up in the same process.
ATTEMPT = textwrap.dedent("""
    import sys
    from distributed import Client
    from distributed.security import Security
    address, credentials = sys.argv[1], sys.argv[2]
    security = Security.temporary() if credentials == "foreign" else None
    try:
        Client(address, security=security, timeout=3)
    except Exception as err:
        print("OSError" if isinstance(err, OSError) else type(err).__name__, err)
        sys.exit(3)
    print("connected")
""")


def attempt(address, credentials):
    done = subprocess.run(
        [sys.executable, "-c", ATTEMPT, address, credentials],
        capture_output=True,
        text=True,
        timeout=120,
    )
    return done.returncode, done.stdout.strip()


@pytest.mark.slow
def test_tls_cluster_works_and_refuses_a_client_without_credentials():
    before = worker_pids()
    with ElasticCluster(minimum=1, maximum=1, security=True) as cluster:
        assert cluster.scheduler_address.startswith("tls://")
        assert urlparse(cluster.scheduler_address).hostname == "127.0.0.1"
        assert cluster.client.submit(sum, [1, 2]).result(timeout=30) == 3
        workers = cluster.client.scheduler_info()["workers"]
        assert workers and all(address.startswith("tls://127.0.0.1:") for address in workers)
        # TLS, but a certificate from another authority: the handshake is refused
        code, said = attempt(cluster.scheduler_address, "foreign")
        assert code == 3 and ("OSError" in said or "TimeoutError" in said), said
        # no TLS configuration at all: the client cannot even try
        code, said = attempt(cluster.scheduler_address, "none")
        assert code == 3 and "TLS expects" in said, said
        # plain TCP to the TLS port gets nowhere
        plain = cluster.scheduler_address.replace("tls://", "tcp://")
        code, said = attempt(plain, "none")
        assert code == 3 and ("OSError" in said or "TimeoutError" in said), said
    assert_no_new_worker_processes(before)
