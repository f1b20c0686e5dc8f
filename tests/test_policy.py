"""Scaling policies: leases on a real local cluster, and the policy objects on recorded data."""

import json
import threading
import time
import urllib.error
import urllib.request
from urllib.parse import urlparse

import psutil
import pytest
from distributed import Adaptive
from helpers import assert_no_new_worker_processes, worker_pids

import elastic_nb
from elastic_nb import ElasticCluster
from elastic_nb.policies import (
    POLICIES,
    ActivityRecorder,
    Lease,
    LeaseBook,
    Param,
    PredictivePolicy,
    TrainingPolicy,
    check_policy_params,
    resolve_policy,
)

INTERVAL = 0.5  # seconds, ElasticCluster's default adapt interval


def nap(i, seconds):
    time.sleep(seconds)
    return i


def poll(condition, timeout, every=0.05):
    """Wait until ``condition()`` is true; return the seconds it took (raise after timeout)."""
    start = time.monotonic()
    while not condition():
        if time.monotonic() - start > timeout:
            raise AssertionError(f"condition not met within {timeout} s")
        time.sleep(every)
    return time.monotonic() - start


def running(cluster):
    return len(cluster.cluster.scheduler.workers)


@pytest.fixture(scope="module")
def elastic():
    """One real adaptive cluster of 1-3 worker processes under the training policy."""
    with ElasticCluster(minimum=1, maximum=3, policy="training") as cluster:
        cluster.adapt(policy="training", cooldown=5)
        cluster.wait_for_workers(1)
        yield cluster


# ------------------------------------------------------------------------- arguments
def test_policy_names_resolve_to_adaptive_subclasses():
    assert set(POLICIES) == {"default", "training", "predictive"}
    assert all(issubclass(cls, Adaptive) for cls in POLICIES.values())
    assert resolve_policy("training") is TrainingPolicy
    with pytest.raises(ValueError, match="policy must be one of 'default', 'training'"):
        resolve_policy("fastest")


@pytest.mark.parametrize(
    ("policy", "kwargs", "error", "match"),
    [
        (TrainingPolicy, {"cooldown": -1}, ValueError, "cooldown must be > 0"),
        (TrainingPolicy, {"cooldown": "10s"}, TypeError, "cooldown must be a number"),
        (TrainingPolicy, {"history": 0}, ValueError, "history must be >= 1"),
        (TrainingPolicy, {"cooldwon": 3}, TypeError, "unknown argument.*cooldwon"),
        (PredictivePolicy, {"window": 1}, ValueError, "window must be >= 2"),
        (PredictivePolicy, {"horizon": float("nan")}, ValueError, "horizon must be finite"),
        (PredictivePolicy, {"interval": "soon"}, ValueError, "interval must be a duration"),
        (PredictivePolicy, {"wait_count": 0}, ValueError, "wait_count must be >= 1"),
    ],
)
def test_bad_policy_parameters_name_the_argument(policy, kwargs, error, match):
    with pytest.raises(error, match=match):
        check_policy_params(policy, kwargs)


def test_bad_parameters_fail_before_the_running_policy_is_touched(elastic):
    adaptive = elastic.adaptive
    with pytest.raises(ValueError, match="cooldown must be > 0"):
        elastic.adapt(policy="training", cooldown=0)
    with pytest.raises(ValueError, match="policy must be one of"):
        elastic.adapt(policy="trianing")
    assert elastic.adaptive is adaptive and adaptive.state == "running"
    for kwargs, match in [
        ({"iterations": 0}, "iterations must be >= 1"),
        ({"iterations": 5, "slowdown": 0.5}, "slowdown must be >= 1.0"),
        ({"iterations": 5, "deadline": -3}, "deadline must be > 0"),
        ({"deadline": 60}, "deadline needs iterations="),
    ]:
        with pytest.raises(ValueError, match=match):
            elastic.training(**kwargs)
    assert elastic.leases.active() == []


def test_a_policy_class_or_subclass_is_accepted_by_adapt(elastic):
    """``adapt(policy=...)`` takes the public classes and subclasses of them, and their
    own parameters are checked and passed through."""

    class Steady(elastic_nb.TrainingPolicy):
        params = {**elastic_nb.TrainingPolicy.params, "margin": Param("margin", 1, kind="int")}

    try:
        with pytest.raises(ValueError, match="margin must be >= 0"):
            Param("margin", 1, kind="int", minimum=0).check(-1)
        adaptive = elastic.adapt(policy=Steady, cooldown=5, margin=2)
        assert isinstance(adaptive, Steady) and adaptive.margin == 2
        assert adaptive.leases is elastic.leases
        adaptive = elastic.adapt(policy=elastic_nb.PredictivePolicy, cooldown=1)
        assert type(adaptive) is PredictivePolicy and adaptive.cooldown == 1
    finally:
        elastic.adapt(policy="training", cooldown=5)
    assert type(elastic.adaptive) is TrainingPolicy


def test_unreachable_address_fails_clearly_within_the_timeout():
    before, threads = worker_pids(), threading.active_count()
    start = time.monotonic()
    with pytest.raises(ConnectionError, match=r"could not connect .*127\.0\.0\.1:1.* within 2 s"):
        ElasticCluster(address="tcp://127.0.0.1:1", connect_timeout=2)
    assert time.monotonic() - start < 10
    assert worker_pids() == before
    poll(lambda: threading.active_count() <= threads, timeout=10)


# ------------------------------------------------------------------ real cluster, lease
def test_lease_reaches_the_width_holds_it_and_releases_it(elastic):
    """6 tasks of 0.2 s per iteration with 0.5 s pauses need all 3 workers to keep pace."""
    client = elastic.client
    poll(lambda: running(elastic) == 1, timeout=30)  # start from the minimum
    targets = []
    elastic.subscribe(
        lambda action, **d: (
            targets.append((time.monotonic(), d["target"])) if action == "target" else None
        )
    )
    widths = []  # (workers at the start, workers at the end) of every iteration
    with elastic.training(iterations=8) as run:
        first_submission = time.monotonic()
        for _ in range(run.iterations):
            start = running(elastic)
            client.gather(client.map(nap, range(6), seconds=0.2, pure=False))
            widths.append((start, running(elastic)))
            run.step()
            time.sleep(0.5)  # the client's own pause between iterations (workload, not a wait)
    ended = time.monotonic()

    # the decision to go to the maximum came within 2 adapt intervals of the first iteration
    reached = [t for t, n in targets if n == 3 and t >= first_submission]
    assert reached and reached[0] - first_submission <= 2 * INTERVAL + 0.25, targets
    # it was carried out, and the cluster never shrank between iterations
    assert max(end for _, end in widths) == 3
    full = next(i for i, (_, end) in enumerate(widths) if end == 3)
    assert all(start >= 3 for start, _ in widths[full + 1 :]), widths
    assert all(b[0] >= a[1] for a, b in zip(widths, widths[1:], strict=False)), widths
    assert elastic.adaptive.model.tasks == 6

    # after the lease, back to the minimum within the cooldown
    poll(lambda: running(elastic) == 1, timeout=elastic.adaptive.cooldown)
    assert time.monotonic() - ended <= elastic.adaptive.cooldown
    actions = [a for a, _ in elastic.decisions]
    assert "lease" in actions and "lease-end" in actions and "scale-down" in actions


def test_a_worker_killed_during_a_lease_is_replaced(elastic):
    client = elastic.client
    with elastic.training(iterations=100) as run:
        client.gather(client.map(nap, range(6), seconds=0.2, pure=False))
        run.step()
        poll(lambda: running(elastic) == 3, timeout=30)
        address, pid = next(iter(client.run(_getpid).items()))
        psutil.Process(pid).kill()
        poll(lambda: not psutil.pid_exists(pid), timeout=10)
        # the run goes on, and the cluster gets its width back without the dead worker
        client.gather(client.map(nap, range(6), seconds=0.2, pure=False))
        run.step()
        poll(lambda: running(elastic) == 3 and address not in elastic.cluster.scheduler.workers, 30)
    poll(lambda: running(elastic) == 1, timeout=elastic.adaptive.cooldown)


def test_a_run_submitting_work_is_answered_at_once_not_at_the_next_interval():
    """With a 30 s interval only the recorder's wake-up can decide within a second."""
    with ElasticCluster(minimum=1, maximum=2, policy="training", interval="30s") as cluster:
        cluster.wait_for_workers(1)
        targets = []
        cluster.subscribe(
            lambda action, **d: targets.append(d["target"]) if action == "target" else None
        )
        client = cluster.client
        with cluster.training(iterations=3):
            futures = client.map(nap, range(4), seconds=1.0, pure=False)
            poll(lambda: 2 in targets, timeout=1.0)
            client.gather(futures)
        # without a lease, work arriving waits for the interval as distributed's does
        targets.clear()
        client.gather(client.map(nap, range(4), seconds=0.5, pure=False))
        assert targets == []


def _getpid():
    import os

    return os.getpid()


# ----------------------------------------------------------- policy objects, recorded
def test_predictive_policy_scales_before_a_rising_demand_arrives():
    """Demand rising by one worker a second: the forecast is ahead of it, with hysteresis."""
    policy = PredictivePolicy(None, minimum=1, maximum=20, window=4, horizon=3, cooldown=5)
    assert policy.state == "inactive"  # no cluster: a pure object
    series = [(float(t), 1.0 + t) for t in range(8)]  # demand 1, 2, ..., 8 at t = 0..7
    targets = []
    for t, demand in series:
        policy.observe(t, demand)
        targets.append(policy.plan_target(t, current=targets[-1] if targets else 1)[0])
    # from the third sample on, the target is the demand 3 s later, before it arrives
    for (t, demand), target in list(zip(series, targets, strict=True))[2:]:
        assert target >= demand + 3 - 1e-9, (t, demand, target)
    assert targets == sorted(targets)  # never down on a rising series

    # a sudden drop: held for the cooldown, then lowered (no flap on one low sample)
    current = targets[-1]
    policy.observe(8, 2)
    assert policy.plan_target(8, current)[0] == current
    policy.observe(9, 8)  # back up: no scale-down happened in between
    assert policy.plan_target(9, current)[0] >= current
    for t in range(10, 20):
        policy.observe(t, 2)
        last = policy.plan_target(t, current)[0]
    assert last < current


def test_predictive_feedback_adds_the_shortfall_as_headroom():
    policy = PredictivePolicy(None, minimum=1, maximum=500, window=3, horizon=1, cooldown=5)
    # demand jumps by 5 every second while the trend of the last 3 samples lags behind
    for t in range(10):
        policy.observe(t, 5.0 * t * t / 4)
        policy.plan_target(t, current=1)
    assert policy.errors and min(policy.errors) > 0
    demand_next = 5.0 * 10 * 10 / 4
    policy.observe(10, 5.0 * 10 * 10 / 4)
    assert policy.plan_target(10, current=1)[0] >= demand_next


def test_training_pace_model_on_recorded_iterations():
    """Three recorded iterations of 8 tasks × 0.3 s with 3 s pauses on 4 workers."""
    recorder = ActivityRecorder()
    t0 = 1000.0
    recorder.threads.append((t0, 4))
    steps = [t0]
    t = t0
    for k in range(3):
        begin = t + (3.0 if k else 0.1)
        recorder.busy_starts.append(begin)
        for task in range(8):
            recorder.done.append((begin + 0.3 * (task // 4 + 1), 0.3))
        t = begin + 0.65
        steps.append(t)
    policy = TrainingPolicy(None, minimum=1, maximum=4)
    policy.recorder = recorder
    lease = LeaseBook()
    run = Lease(lease, iterations=30)
    run.steps = steps
    # the run's declaration: 27 iterations left at the median measured pace
    assert run.remaining == 27 and run.seconds_per_iteration == pytest.approx(3.65)
    assert run.remaining_seconds == pytest.approx(27 * 3.65)
    model = policy.fit_model(run, threads_per_worker=1)
    assert model.tasks == 8 and model.task_seconds == pytest.approx(0.3)
    assert model.pause == pytest.approx(3.0)
    # 2 rounds on 4 workers, 3 rounds on 3: within 10 %; 4 rounds on 2 is not
    width, why = policy.pace_width(run, model, now=t)
    assert width == 3, why
    run.slowdown = 1.3
    assert policy.pace_width(run, model, now=t)[0] == 2
    # a deadline instead of a pace: 27 iterations of 8 × 0.3 s + 3 s on 1 worker (146 s)
    # fit the 192 s left; 10 s before the deadline they need all 4
    fast = Lease(lease, iterations=30, deadline=200)
    fast.steps, fast.started_at = steps, t0
    assert policy.pace_width(fast, model, now=t)[0] == 1
    assert policy.pace_width(fast, model, now=t0 + 190)[0] == 4


# --------------------------------------------------------------------- remote control
def test_http_api_is_served_on_loopback_only_when_asked():
    before = worker_pids()
    with ElasticCluster(minimum=2, maximum=2, http_api=True) as cluster:
        cluster.scale(2)
        cluster.wait_for_workers(2)
        assert urlparse(cluster.api_url).hostname == "127.0.0.1"
        with urllib.request.urlopen(f"{cluster.api_url}/get_workers", timeout=10) as r:
            assert json.load(r)["num_workers"] == 2
        with urllib.request.urlopen(f"{cluster.api_url}/adaptive_target", timeout=10) as r:
            assert "workers" in json.load(r)
        request = urllib.request.Request(
            f"{cluster.api_url}/retire_workers", data=json.dumps({"n": 1}).encode(), method="POST"
        )
        with urllib.request.urlopen(request, timeout=30) as r:
            assert len(json.load(r)) == 1
        poll(lambda: len(cluster.client.scheduler_info()["workers"]) == 1, timeout=30)
    with ElasticCluster(minimum=1, maximum=1) as plain:
        link = urlparse(plain.dashboard_link)
        assert plain.api_url is None
        with pytest.raises(urllib.error.HTTPError) as refused:
            urllib.request.urlopen(f"{link.scheme}://{link.netloc}/api/v1/get_workers", timeout=10)
        assert refused.value.code == 404
    assert_no_new_worker_processes(before)


# ------------------------------------------------------------------ vertical scaling
def test_resize_workers_rolls_them_to_new_resources():
    before = worker_pids()
    with ElasticCluster(minimum=1, maximum=2) as cluster:
        cluster.scale(2)
        cluster.wait_for_workers(2)
        old = set(cluster.client.scheduler_info()["workers"])
        cluster.resize_workers(threads_per_worker=2, memory_limit="1GiB")
        workers = cluster.client.scheduler_info()["workers"]
        assert len(workers) == 2 and not old & set(workers)
        assert {w["nthreads"] for w in workers.values()} == {2}
        assert {w["memory_limit"] for w in workers.values()} == {2**30}
        assert cluster.decisions[-1][0] == "resize"
        with pytest.raises(ValueError, match="threads_per_worker must be >= 1"):
            cluster.resize_workers(threads_per_worker=0)
    assert_no_new_worker_processes(before)
