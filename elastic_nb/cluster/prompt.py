"""Prompt messages on the clusters elastic_nb starts: distributed's batched sends at 0 ms.

distributed batches the messages of its streams: after a message, the next one waits until
a fixed interval has passed (the client's 10 ms, the scheduler's 5 ms to a worker and 2 ms
to a client, a worker's 2 ms). The intervals are constants in distributed's code, with no
config key, so they are set here on the stream objects. An iteration of a small fit is
one round trip through all of them, and the next submission comes within the interval of
the last: it always waits. At 0 a stream still batches what gathers while it writes.
Measured (``benchmarks/latency.py``): a two-task round trip takes 7.7 ms instead of 12.1.

A worker also freezes the objects it holds once started (``gc.freeze``): its ~190,000
objects of modules and distributed's machinery live as long as it does, yet each full
collection scanned them all, 90-105 ms (measured) in which the worker answers nothing;
frozen, 0.1 ms. Objects made later are collected as before. On the tiny problem of
``benchmarks/solvers.py``: 5-6% more iterations per second.

Only clusters elastic_nb starts and owns get this; a scheduler someone else runs is left
as it is.
"""

from __future__ import annotations

import gc

from distributed.diagnostics.plugin import SchedulerPlugin, WorkerPlugin

#: Seconds a stream waits after a message before it sends the next one.
PROMPT_INTERVAL = 0.0


class PromptSchedulerStreams(SchedulerPlugin):
    """Sets the scheduler's streams to workers (each as it joins) and to the clients
    connected when it is registered to :data:`PROMPT_INTERVAL`."""

    name = "elastic-nb-prompt-streams"

    async def start(self, scheduler):
        for stream in [*scheduler.stream_comms.values(), *scheduler.client_comms.values()]:
            stream.interval = PROMPT_INTERVAL

    def add_worker(self, scheduler, worker):
        scheduler.stream_comms[worker].interval = PROMPT_INTERVAL


class PromptWorkerStream(WorkerPlugin):
    """Sets a worker's stream to the scheduler to :data:`PROMPT_INTERVAL` and freezes the
    objects the worker holds (every worker, those that join later included)."""

    name = "elastic-nb-prompt-stream"

    def setup(self, worker):
        worker.batched_stream.interval = PROMPT_INTERVAL
        gc.freeze()


def make_prompt(client) -> None:
    """Every stream between ``client``, its scheduler and their workers sends at once."""
    client.register_plugin(PromptSchedulerStreams())
    client.register_plugin(PromptWorkerStream())
    client.scheduler_comm.interval = PROMPT_INTERVAL
