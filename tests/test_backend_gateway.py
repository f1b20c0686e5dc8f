"""dask-gateway for real: a ``dask-gateway-server`` on 127.0.0.1 (tests/services.py) starts
TLS schedulers and worker processes; elastic_nb's policy drives them from the client."""

import pytest
from helpers import Peak
from services import wait_until

from elastic_nb import ElasticCluster, LinearRegression
from elastic_nb.cluster.gateway import quiet_gateway
from elastic_nb.datasets import make_regression

pytestmark = pytest.mark.timeout(240)


@pytest.mark.slow
def test_a_fit_under_a_lease_grows_the_gateway_cluster_and_shuts_it_down(gateway):
    with ElasticCluster.gateway(minimum=0, maximum=2, **gateway.kwargs()) as cluster:
        assert cluster.owns_cluster and cluster.scheduler_address.startswith("gateway://")
        assert cluster.security.get_connection_args("client")["require_encryption"]  # TLS
        assert [c.name for c in gateway.list_clusters()] == [cluster.cluster.name]
        X, y, _ = make_regression(40_000, 4, chunks=5_000)
        with (
            Peak(lambda: cluster.width, every=0.2) as watch,
            cluster.training(iterations=15) as run,
        ):
            model = LinearRegression(solver="gd", max_iter=15, tol=0, callback=run.callback)
            model.fit(X, y)
        assert watch.most >= 2, f"the gateway cluster reached only {watch.most} worker(s)"
        assert model.n_iter_ == 15
        cluster.wait_for_width(0, timeout=60)  # released after the run, to the minimum
        assert cluster.cluster.count == 0
        actions = [a for a, _ in cluster.decisions]
        assert "scale-up" in actions and "scale-down" in actions
    wait_until(lambda: not gateway.list_clusters(), 30, "the gateway cluster was not shut down")


@pytest.mark.slow
def test_a_users_gateway_cluster_is_adapted_and_left_running(gateway):
    from dask_gateway import GatewayCluster

    users = GatewayCluster(**gateway.kwargs(), shutdown_on_close=True)
    try:
        with ElasticCluster.wrap(users, minimum=1, maximum=1) as cluster:
            assert not cluster.owns_cluster
            cluster.wait_for_workers(1, timeout=60)
            assert cluster.client.submit(sum, [1, 2]).result() == 3
        assert [c.name for c in gateway.list_clusters()] == [users.name]
    finally:
        users.shutdown()
        quiet_gateway(users.gateway)
    wait_until(lambda: not gateway.list_clusters(), 30, "the user's cluster was not shut down")


def test_the_gateways_own_options_are_offered_and_unknown_ones_refused(gateway):
    with pytest.raises(ValueError, match=r"refused the cluster: Unknown fields \['bogus'\]"):
        ElasticCluster.gateway(cluster_options={"bogus": 1}, **gateway.kwargs())
    options = {"worker_cores": 1, "worker_memory": 0.5}
    with ElasticCluster.gateway(maximum=1, cluster_options=options, **gateway.kwargs()) as c:
        assert not c.closed
    assert not gateway.list_clusters()


def test_no_gateway_at_the_address_is_a_clear_error(gateway):
    kwargs = {**gateway.kwargs(), "address": "http://127.0.0.1:9"}
    with pytest.raises(ConnectionError, match="no dask-gateway answers at 'http://127.0.0.1:9'"):
        ElasticCluster.gateway(**kwargs)


def test_gateway_arguments_are_checked_first():
    pytest.importorskip("dask_gateway")
    with pytest.raises(TypeError, match="address must be a URL string"):
        ElasticCluster.gateway(address=8000)
    with pytest.raises(TypeError, match="cluster_options must be a dict"):
        ElasticCluster.gateway(address="http://127.0.0.1:9", cluster_options=["cores"])
    with pytest.raises(ValueError, match="maximum must be >= minimum"):
        ElasticCluster.gateway(address="http://127.0.0.1:9", minimum=3, maximum=1)
