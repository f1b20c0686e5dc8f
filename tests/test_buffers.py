"""Bounded streams: the monitor's events and the cluster's decisions stay within their
bound, readers that follow them see every record still held exactly once, a reader that
fell behind is told how much it missed, and a listener subscribing while decisions are
being made gets each of them once, in order."""

import random
import threading
import time

import pytest

from elastic_nb import Monitor
from elastic_nb.cluster import MAX_DECISIONS, DecisionLog
from elastic_nb.observe.buffer import RingBuffer
from elastic_nb.observe.monitor import MAX_EVENTS
from elastic_nb.ui.plots import LivePlots


# ------------------------------------------------------------------ RingBuffer
def test_ring_buffer_holds_the_latest_and_numbers_them():
    buffer = RingBuffer(3)
    assert buffer.since(0) == ([], 0, 0, 0)
    assert [buffer.append(x) for x in "abcde"] == [0, 1, 2, 3, 4]
    assert list(buffer) == ["c", "d", "e"] and len(buffer) == 3 and buffer.total == 5
    assert buffer.first == buffer.dropped == 2
    assert buffer[-1] == "e" and buffer[0] == "c" and buffer[:2] == ["c", "d"]
    assert buffer == ["c", "d", "e"] and buffer == RingBuffer(3, "abcde")
    assert buffer.since(3) == (["d", "e"], 3, 5, 0)
    assert buffer.since(5) == ([], 5, 5, 0)  # up to date
    assert buffer.since(0) == (["c", "d", "e"], 2, 5, 2)  # fell behind: told how much
    assert buffer.since(99).cursor == 5  # a cursor from elsewhere comes back to the end
    assert buffer.find_last(lambda x: x < "e") == "d" and buffer.find_last(str.isdigit) is None


@pytest.mark.parametrize(("maxlen", "error"), [(0, ValueError), (2.5, TypeError)])
def test_ring_buffer_bound_is_checked(maxlen, error):
    with pytest.raises(error, match="maxlen must be"):
        RingBuffer(maxlen)


def test_a_reader_following_concurrent_writers_sees_each_record_once():
    buffer = RingBuffer(10_000)
    per_writer, writers = 2_000, 4

    def write(w):
        for i in range(per_writer):
            buffer.append((w, i))

    threads = [threading.Thread(target=write, args=(w,)) for w in range(writers)]
    for t in threads:
        t.start()
    seen, cursor = [], 0
    while any(t.is_alive() for t in threads) or cursor < buffer.total:
        batch = buffer.since(cursor)
        assert batch.missed == 0 and batch.start == cursor
        seen.extend(batch.records)
        cursor = batch.cursor
        list(buffer)  # iterating while others append never raises
    for t in threads:
        t.join()
    assert len(seen) == len(set(seen)) == per_writer * writers
    for w in range(writers):  # each writer's records in its own order
        assert [i for ww, i in seen if ww == w] == list(range(per_writer))


# --------------------------------------------------------------------- Monitor
def test_monitor_events_stay_bounded():
    assert Monitor().events.maxlen == MAX_EVENTS
    monitor = Monitor(max_events=10)
    for i in range(25):
        monitor.record("sample", workers=i % 3)
    assert len(monitor.events) == 10 and monitor.events.total == 25
    assert [e["workers"] for e in monitor.events] == [i % 3 for i in range(15, 25)]
    assert monitor.current_workers() == 24 % 3
    late = monitor.events_since(0)
    assert late.missed == 15 and len(late.records) == 10 and late.cursor == 25
    assert monitor.events_since(20).records == list(monitor.events)[5:]
    with pytest.raises(ValueError, match="max_events must be >= 1"):
        Monitor(max_events=0)


def test_reloading_keeps_the_latest_events(tmp_path):
    monitor = Monitor()
    for i in range(8):
        monitor.record("sample", workers=i)
    path = monitor.to_jsonl(tmp_path / "events.jsonl")
    reloaded = Monitor.read_jsonl(path, max_events=3)
    assert [e["workers"] for e in reloaded.events] == [5, 6, 7]


def test_live_plots_follow_a_bounded_monitor_and_skip_what_they_missed():
    monitor = Monitor(max_events=5)
    plots = LivePlots(monitor)
    for i in range(3):
        monitor.record("sample", workers=i)
    plots.refresh()
    assert plots.workers_source.data["workers"] == [0, 1, 2] and plots.missed == 0
    for i in range(3, 6):
        monitor.record("sample", workers=i)  # the buffer now drops event 0: no reader loses
    plots.refresh()
    assert plots.workers_source.data["workers"] == [0, 1, 2, 3, 4, 5] and plots.missed == 0
    for i in range(6, 18):  # more than the buffer holds between two refreshes
        monitor.record("sample", workers=i)
    plots.refresh()
    assert plots.missed == 7  # told, and goes on with what is still held
    assert plots.workers_source.data["workers"] == [0, 1, 2, 3, 4, 5, 13, 14, 15, 16, 17]
    monitor.record("sample", workers=99)
    plots.refresh()
    assert plots.workers_source.data["workers"][-2:] == [17, 99] and plots.missed == 7


# ----------------------------------------------------------------- DecisionLog
def test_decision_log_is_bounded_and_replays_what_it_holds():
    assert DecisionLog().records.maxlen == MAX_DECISIONS
    log = DecisionLog(maxlen=4)
    for i in range(10):
        log.record("target", target=i, reason=f"r{i}")
    assert len(log) == 4 and [d["target"] for _, d in log] == [6, 7, 8, 9]
    assert log[-1] == ("target", {"target": 9, "reason": "r9"})
    seen = []
    log.subscribe(lambda action, **d: seen.append(d["target"]))
    log.record("scale", target=10, reason="r10")
    assert seen == [6, 7, 8, 9, 10]


def test_a_broken_listener_does_not_stop_the_others(caplog):
    log, seen = DecisionLog(), []

    def broken(action, **details):
        raise RuntimeError("boom")

    log.subscribe(broken)
    log.subscribe(lambda action, **d: seen.append(action))
    log.record("scale-up", target=2, reason="work")
    assert seen == ["scale-up"] and "boom" in caplog.text


def test_a_listener_may_make_decisions_itself():
    log, seen = DecisionLog(), []

    def listener(action, **details):
        seen.append(action)
        if action == "scale-up":
            log.record("echo", reason="made by the listener")

    log.subscribe(listener)
    log.record("scale-up", target=2, reason="work")
    assert seen == ["scale-up", "echo"]


def check_subscribe_while_deciding(record, subscribe, total=600):
    """Threads make decisions while listeners subscribe (each replay slowed down, so
    decisions land in the middle of it); every listener must get every decision exactly
    once, in the order they were logged."""
    stop_at = time.monotonic() + 60
    decided = threading.Event()

    def decide(offset):
        for i in range(offset, total, 2):
            record(i)
            if i % 50 == 0:
                time.sleep(0.001)
        decided.set()

    listeners = []

    def subscribe_one():
        seen = []

        def listener(action, **details):
            if not seen:
                time.sleep(0.01)  # a slow replay: decisions arrive meanwhile
            if "i" in details:
                seen.append(details["i"])

        listeners.append(seen)
        subscribe(listener)

    deciders = [threading.Thread(target=decide, args=(k,)) for k in (0, 1)]
    for t in deciders:
        t.start()
    subscribers = []
    for _ in range(6):
        time.sleep(random.uniform(0, 0.01))
        thread = threading.Thread(target=subscribe_one)
        thread.start()
        subscribers.append(thread)
    for t in deciders + subscribers:
        t.join(timeout=max(0.1, stop_at - time.monotonic()))
    assert all(not t.is_alive() for t in deciders + subscribers)
    return listeners


def test_subscribing_while_decisions_are_made_loses_and_repeats_none():
    log = DecisionLog(maxlen=10_000)
    listeners = check_subscribe_while_deciding(
        lambda i: log.record("target", i=i, reason="test"), log.subscribe
    )
    logged = [d["i"] for _, d in log]
    assert sorted(logged) == list(range(600))
    for seen in listeners:
        assert seen == logged  # all of them, once each, in the log's order
