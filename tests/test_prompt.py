"""Clusters elastic_nb starts send their messages at once, freeze their workers' startup
objects (elastic_nb.cluster.prompt) and profile every 100 ms (cluster.local.worker_config);
clusters it only wraps keep distributed's defaults."""

import dask.config
from distributed import LocalCluster

from elastic_nb import ElasticCluster


def _scheduler_intervals(dask_scheduler=None):
    streams = {**dask_scheduler.stream_comms, **dask_scheduler.client_comms}
    return {address: stream.interval for address, stream in streams.items()}


def _worker_interval(dask_worker=None):
    return dask_worker.batched_stream.interval


def _frozen_objects(dask_worker=None):
    import gc

    return gc.get_freeze_count()


def _profile_interval_ms(dask_worker=None):
    return dask_worker.periodic_callbacks["profile"].callback_time


def _intervals(client):
    return (
        client.scheduler_comm.interval,
        client.run_on_scheduler(_scheduler_intervals),
        client.run(_worker_interval),
    )


def test_an_owned_cluster_sends_at_once_on_every_stream_also_to_workers_that_join_later():
    with ElasticCluster(minimum=1, maximum=2) as elastic:
        elastic.scale(1)
        elastic.wait_for_workers(1)
        elastic.scale(2)
        elastic.wait_for_workers(2)
        ours, scheduler, workers = _intervals(elastic.client)
        assert ours == 0.0
        assert len(workers) == 2 and set(workers.values()) == {0.0}
        assert set(workers) <= set(scheduler)
        assert all(scheduler[w] == 0.0 for w in workers)
        assert all(n > 10_000 for n in elastic.client.run(_frozen_objects).values())


def test_a_wrapped_cluster_keeps_distributeds_intervals():
    with LocalCluster(
        n_workers=1, processes=True, host="127.0.0.1", dashboard_address="127.0.0.1:0"
    ) as local:
        wrapped = ElasticCluster(cluster=local, minimum=0, maximum=1)
        try:
            ours, scheduler, workers = _intervals(wrapped.client)
            profiling = set(wrapped.client.run(_profile_interval_ms).values())
            frozen = set(wrapped.client.run(_frozen_objects).values())
        finally:
            wrapped.close()
        assert ours == 0.01
        assert set(workers.values()) == {0.002}
        assert all(scheduler[w] == 0.005 for w in workers)
        assert profiling == {10}
        assert frozen == {0}


def test_an_owned_clusters_workers_profile_every_100_ms_unless_the_user_chose():
    with ElasticCluster(minimum=1, maximum=2) as elastic:
        elastic.scale(2)
        elastic.wait_for_workers(2)
        assert set(elastic.client.run(_profile_interval_ms).values()) == {100}
    with (
        dask.config.set({"distributed.worker.profile.interval": "20ms"}),
        ElasticCluster(minimum=1, maximum=1) as elastic,
    ):
        elastic.scale(1)
        elastic.wait_for_workers(1)
        assert set(elastic.client.run(_profile_interval_ms).values()) == {20}
