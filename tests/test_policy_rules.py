"""Each decision rule of the policies on its own, on recorded data (no cluster).

The pace model and the width choices are pure functions; the policies are built with
``cluster=None`` (a pure object, as distributed allows) and fed recorder data.
"""

import gc
import logging
import math

import pytest
from hypothesis import given
from hypothesis import strategies as st

from elastic_nb.policies import (
    ActivityRecorder,
    DefaultPolicy,
    ElasticPolicy,
    IterationSample,
    Lease,
    LeaseBook,
    PaceModel,
    Param,
    PredictivePolicy,
    TrainingPolicy,
    check_policy_params,
    deadline_width,
    fit_pace,
    pace_width,
    resolve_policy,
    worth_growing,
)
from elastic_nb.policies.predictive import linear_forecast


# ----------------------------------------------------------------------- pace model
def test_pace_model_predicts_rounds_of_tasks():
    model = PaceModel(tasks=8, task_seconds=0.5, pause=1.0, overhead=0.25, threads_per_worker=2)
    assert model.useful_width == 4
    assert model.predict(1) == pytest.approx(1.0 + 4 * 0.5 + 0.25)  # 4 rounds of 2
    assert model.predict(4) == pytest.approx(1.0 + 1 * 0.5 + 0.25)
    assert model.predict(100) == model.predict(4)  # wider than the tasks gains nothing
    with pytest.raises(AttributeError):
        model.tasks = 3  # frozen


@pytest.mark.parametrize(
    ("field", "value", "error"),
    [
        ("tasks", 0, ValueError),
        ("tasks", 1.5, TypeError),
        ("threads_per_worker", 0, ValueError),
        ("task_seconds", -1.0, ValueError),
        ("pause", float("nan"), ValueError),
    ],
)
def test_pace_model_rejects_bad_fields_naming_them(field, value, error):
    fields = dict(tasks=4, task_seconds=0.1, pause=0.0, overhead=0.0, threads_per_worker=1)
    with pytest.raises(error, match=field):
        PaceModel(**{**fields, field: value})


@given(
    tasks=st.integers(1, 200),
    task_seconds=st.floats(0, 10),
    pause=st.floats(0, 10),
    threads=st.integers(1, 8),
    maximum=st.integers(1, 64),
    slowdown=st.floats(1, 3),
)
def test_pace_width_is_the_smallest_within_the_slowdown(
    tasks, task_seconds, pause, threads, maximum, slowdown
):
    model = PaceModel(tasks, task_seconds, pause, 0.0, threads)
    width, _ = pace_width(model, slowdown, maximum)
    widest = min(maximum, model.useful_width)
    assert 1 <= width <= widest
    assert model.predict(width) <= slowdown * model.predict(widest) + 1e-9
    if width > 1:
        assert model.predict(width - 1) > slowdown * model.predict(widest) + 1e-9


def test_deadline_width_smallest_that_makes_it_else_the_widest():
    model = PaceModel(tasks=8, task_seconds=0.3, pause=3.0, overhead=0.0, threads_per_worker=1)
    assert deadline_width(model, 27, 192, maximum=4)[0] == 1  # 27 x 5.4 s = 146 s
    assert deadline_width(model, 27, 110, maximum=4)[0] == 3  # 2: 27 x 4.2 s = 113 s
    width, why = deadline_width(model, 27, 10, maximum=4)
    assert width == 4 and "no width meets the deadline" in why


def test_worth_growing_only_when_the_iterations_left_pay_for_a_start():
    model = PaceModel(tasks=4, task_seconds=1.0, pause=0.0, overhead=0.0, threads_per_worker=1)
    # 2 -> 4 workers saves 1 s per iteration
    assert worth_growing(model, remaining=10, held=2, width=4, startup=3)
    assert not worth_growing(model, remaining=2, held=2, width=4, startup=3)
    assert worth_growing(model, remaining=math.inf, held=2, width=4, startup=3)
    assert worth_growing(model, remaining=1, held=0, width=4, startup=3)  # nothing held yet


def test_fit_pace_takes_medians_and_the_overhead_of_steady_iterations():
    samples = [
        IterationSample(None, 1.0, 8, 8 * 0.2, 4, True),  # 2 rounds = 0.4 s: 0.6 s overhead
        IterationSample(2.0, 5.0, 8, 8 * 0.2, 4, False),  # width changed: no overhead
        IterationSample(2.2, 1.0, 8, 8 * 0.2, 4, True),
    ]
    model = fit_pace(samples, [2.0, 2.2, 2.1], threads_per_worker=1, history=5)
    assert model.tasks == 8 and model.task_seconds == pytest.approx(0.2)
    assert model.pause == pytest.approx(2.1) and model.overhead == pytest.approx(0.6)
    assert fit_pace([], [1.0], 1) is None and fit_pace(samples, [], 1) is None


# ------------------------------------------------------------------------ recorder
def test_recorder_queries_on_recorded_activity():
    rec = ActivityRecorder()
    rec.threads.extend([(0.0, 2), (10.0, 4)])
    rec.done.extend([(1.0, 0.5), (2.0, 0.5), (11.0, 1.0)])
    rec.busy_starts.extend([0.5, 10.5])
    assert rec.mean_threads(5.0, 15.0) == (pytest.approx(3.0), False)
    assert rec.mean_threads(11.0, 12.0) == (pytest.approx(4.0), True)
    assert rec.work_between(0.0, 5.0) == (2, pytest.approx(1.0))
    assert rec.first_busy_start(5.0) == 10.5
    assert rec.last_activity(default=0) == 11.0
    assert rec.first_arrival_after(5.0) == 10.0
    assert rec.in_flight() == 0 and rec.threads_per_worker() == 1  # no scheduler yet


def test_recorder_subscribers_are_held_weakly():
    rec = ActivityRecorder()

    class Listener:
        calls = 0

        def on_busy(self):
            Listener.calls += 1

    listener = Listener()
    rec.subscribe(listener.on_busy)
    rec.transition("x", "released", "waiting")  # work arrives on an idle cluster
    rec.transition("x", "waiting", "released")
    assert Listener.calls == 1 and rec.subscribers == [listener.on_busy]
    del listener
    gc.collect()
    assert rec.subscribers == []


def test_a_failing_subscriber_is_logged_and_the_others_still_called(caplog):
    rec = ActivityRecorder()
    calls = []

    def broken():
        raise RuntimeError("boom")

    rec.subscribe(broken)
    rec.subscribe(lambda: calls.append(1))
    with caplog.at_level(logging.ERROR, logger="elastic_nb.policies.recorder"):
        rec.transition("x", "released", "waiting")
    assert "subscriber failed" in caplog.text and "boom" in caplog.text
    assert calls == [1] and rec.active == 1


# -------------------------------------------------------------------------- leases
def test_a_failing_lease_listener_is_logged_and_the_run_goes_on(caplog):
    book = LeaseBook()
    book.listeners.append(lambda lease, what: 1 / 0)
    with (
        caplog.at_level(logging.ERROR, logger="elastic_nb.policies.leases"),
        Lease(book, iterations=2) as run,
    ):
        run.step()
    assert run.done == 1 and not run.active and "ZeroDivisionError" in caplog.text


# ----------------------------------------------------------------- training rules
def _training(**kwargs):
    policy = TrainingPolicy(None, minimum=0, maximum=8, **kwargs)
    policy.recorder = ActivityRecorder()
    return policy


def test_training_without_a_lease_is_distributeds_target():
    policy = _training()
    policy.held, policy.provisional = 5, 3
    assert policy.without_lease(2, current=4)[0] == 2
    assert (policy.held, policy.provisional, policy.model) == (0, 0, None)
    Lease(policy.leases).close()
    assert "run ended" in policy.without_lease(2, current=4)[1]


def test_training_unmeasured_lease_never_scales_down():
    policy = _training()
    assert policy.hold_unmeasured(3, current=1)[0] == 3
    assert policy.hold_unmeasured(1, current=2)[0] == 3


def test_training_first_iteration_one_thread_per_task():
    policy = _training()
    lease = Lease(policy.leases, iterations=10)
    policy.recorder.done.extend([(lease.steps[0] + 0.1, 0.1)] * 6)
    lease.steps.append(lease.steps[0] + 0.2)  # one iteration of 6 tasks, done
    width, why = policy.first_iteration_width([lease], current=1)
    assert width == 6 and "6 task(s)" in why


def test_training_settle_grows_at_once():
    policy = _training()
    assert policy.settle(4, "pace", [], now=0, current=1) == (4, "pace")
    assert policy.held == 4


def test_training_settle_shrinks_only_when_two_iterations_agree():
    policy = _training()
    lease = Lease(policy.leases, iterations=10)
    policy.held = 4
    assert policy.settle(2, "pace", [lease], now=0, current=4)[0] == 4  # one vote: hold
    assert policy.settle(2, "pace", [lease], now=0, current=4)[0] == 4  # same iteration
    lease.step()
    width, why = policy.settle(2, "pace", [lease], now=0, current=4)
    assert width == 2 and "two iterations agree" in why


def test_training_settle_releases_workers_idle_for_the_cooldown():
    policy = _training(cooldown=5)
    lease = Lease(policy.leases, iterations=10)
    policy.held = 3
    policy.recorder.busy_starts.extend([10.0, 20.0, 30.0])
    policy.recorder.last_busy.update({"a": 31.0, "b": 31.0, "c": 2.0})
    width, why = policy.settle(1, "pace", [lease], now=32.0, current=3)
    assert width == 2 and "1 worker(s) idle" in why


def test_training_no_decrease_in_the_gap_between_iterations():
    policy = _training(cooldown=5)
    rec = policy.recorder
    assert not policy.in_gap(1, planned=3, now=10.0)  # no lease: as Adaptive
    Lease(policy.leases, iterations=10)
    rec.done.append((9.0, 0.1))
    assert policy.in_gap(1, planned=3, now=10.0)  # between iterations: wait
    assert not policy.in_gap(3, planned=3, now=10.0)  # not a decrease
    assert not policy.in_gap(1, planned=3, now=20.0)  # stalled for the cooldown
    rec.active = 4
    assert not policy.in_gap(1, planned=3, now=10.0)  # during an iteration


def test_training_does_not_grow_when_the_rest_of_the_run_would_not_pay():
    policy = _training(startup=30)
    rec = policy.recorder
    t0 = 1000.0
    rec.threads.append((t0, 1))
    lease = Lease(policy.leases, iterations=3)
    lease.steps = [t0]
    for k in range(2):  # two iterations of 4 tasks x 1 s on one worker, 1 s pauses
        begin = t0 + 0.1 + k * 5.1
        rec.busy_starts.append(begin)
        rec.done.extend((begin + i + 1, 1.0) for i in range(4))
        lease.steps.append(begin + 4.0)
    rec.busy_starts.append(lease.steps[-1] + 1.0)
    policy.held = 1
    width, why = policy.lease_width(lease, now=lease.steps[-1] + 1.0)
    assert width == 1 and "would not pay" in why  # 1 iteration left saves 3 s < 30 s
    policy.startup = 1.0
    assert policy.lease_width(lease, now=lease.steps[-1] + 1.0)[0] == 4


# --------------------------------------------------------------- predictive rules
def test_linear_forecast_is_the_trend_line():
    assert linear_forecast([], 5) == 0.0
    assert linear_forecast([(0, 2.0), (1, 3.0)], 5) == 3.0  # too few for a trend
    assert linear_forecast([(0, 1.0), (1, 2.0), (2, 3.0)], 5) == pytest.approx(6.0)


def test_predictive_cap_is_the_work_in_flight_never_below_the_demand():
    assert PredictivePolicy.cap(46, demand=1, usable=1) == 1
    assert PredictivePolicy.cap(46, demand=5, usable=1) == 5  # distributed's own target
    assert PredictivePolicy.cap(3, demand=1, usable=10) == 3


def test_predictive_one_task_never_asks_for_more_than_one_worker():
    """The issue's case: one task, a rising trend extrapolated 3 s ahead at 20 ms."""
    policy = PredictivePolicy(None, minimum=0, maximum=50, horizon=3, cooldown=1)
    targets = []
    for i in range(20):
        t = i * 0.02
        policy.observe(t, 0 if i < 5 else 1)
        targets.append(policy.plan_target(t, current=0, usable=0 if i < 5 else 1)[0])
    assert max(targets) == 1


def test_predictive_settle_up_at_once_down_after_the_cooldown():
    policy = PredictivePolicy(None, minimum=0, maximum=10, cooldown=2)
    assert policy.settle(0.0, 4, current=1, why="w")[0] == 4
    assert policy.settle(1.0, 1, current=4, why="w")[0] == 4  # below since 1.0
    assert policy.settle(2.5, 2, current=4, why="w")[0] == 4
    target, why = policy.settle(3.0, 2, current=4, why="w")
    assert target == 2 and "scale down" in why  # to the width wanted now
    assert policy.below_since is None and policy.held == 2


def test_predictive_headroom_is_the_median_shortfall():
    policy = PredictivePolicy(None)
    assert policy.headroom() == 0.0
    policy.errors.extend([-1.0, 2.0, 3.0])
    assert policy.headroom() == 2.0


# ----------------------------------------------------------- params and registry
def test_params_default_and_check_naming_the_argument():
    assert Param("x", 3, kind="int", minimum=1).check(None) == 3
    with pytest.raises(ValueError, match="x must be >= 1"):
        Param("x", 3, kind="int", minimum=1).check(0)
    assert TrainingPolicy(None).cooldown == 10.0
    assert PredictivePolicy(None, window=3).samples.maxlen == 3


def test_policies_and_their_subclasses_resolve():
    class Patient(TrainingPolicy):
        params = {**TrainingPolicy.params, "patience": Param("patience", 2, kind="int")}

    assert resolve_policy(Patient) is Patient
    check_policy_params(Patient, {"patience": 3, "cooldown": 1, "wait_count": 2})
    with pytest.raises(TypeError, match="patience must be an integer"):
        check_policy_params(Patient, {"patience": "3"})
    assert Patient(None, patience=4).patience == 4
    with pytest.raises(TypeError, match="policy must be a name"):
        resolve_policy(3)
    assert issubclass(DefaultPolicy, ElasticPolicy)


def test_public_names():
    import elastic_nb
    from elastic_nb import policies

    for name in ("TrainingPolicy", "PredictivePolicy", "DefaultPolicy"):
        assert getattr(elastic_nb, name) is getattr(policies, name)
        assert name in elastic_nb.__all__


def test_another_policys_leftover_parameters_are_dropped_unknown_ones_rejected(caplog):
    """``Cluster.adapt`` keeps earlier options: switching policy brings the old one's along."""
    with caplog.at_level(logging.INFO, logger="elastic_nb.policies.base"):
        policy = DefaultPolicy(None, cooldown=3, window=4, memory_ratio=3)
    assert "DefaultPolicy ignores cooldown, window" in caplog.text
    assert policy._workers_to_close_kwargs == {"memory_ratio": 3}
    with pytest.raises(TypeError, match="unknown argument.*colldown"):
        TrainingPolicy(None, colldown=3)
