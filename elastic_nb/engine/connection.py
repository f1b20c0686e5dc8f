"""A scheduler lost during a fit, as one clear error that names it.

When a client loses its scheduler, distributed cancels every future the client holds
(reason ``"scheduler-connection-lost"``), retries the connection for the client's
``timeout`` and then closes the client. What reaches the fit is a ``CancelledError``
listing futures, a ``CommClosedError``, an ``OSError`` or a ``TimeoutError`` from
wherever it happened to be. :class:`SchedulerWatch` turns each of those into one
:class:`SchedulerLost` that names the scheduler, and refuses to start a call on a client
that has lost it (the persisted chunks are gone with the futures: no retry could finish
it, and waiting would only delay the error by the reconnection window).
"""

from __future__ import annotations

import asyncio
import concurrent.futures

#: What distributed raises in a client whose scheduler went away (``CommClosedError`` is an
#: ``OSError``). Raised while the client still runs, they are the task's or the data's own
#: errors (a missing file, say) and pass through unchanged.
LOST = (concurrent.futures.CancelledError, asyncio.CancelledError, OSError, TimeoutError)


class SchedulerLost(ConnectionError):
    """The Dask scheduler at ``address`` went away during a fit.

    State
    -----
    address : str
        The scheduler's address.
    status : str
        The client's status when the loss was seen (``"connecting"`` while distributed
        retries, ``"closed"`` after).
    iteration : int or None
        The last iteration the fit completed, set by the fit (None: none, or a one-pass fit).
    checkpoint : Path or None
        The checkpoint file holding that iteration, set by a fit that saves checkpoints.
    """

    def __init__(self, address, status):
        super().__init__(address, status)
        self.address, self.status = address, status
        self.iteration = self.checkpoint = None

    def __str__(self):
        text = (
            f"lost the connection to the Dask scheduler at {self.address!r} during the fit "
            f"(client status: {self.status})"
        )
        if self.iteration is not None:
            text += f"; the fit stopped after iteration {self.iteration}"
        if self.checkpoint is not None:
            text += (
                f"; the checkpoint {str(self.checkpoint)!r} holds it: fit(..., "
                "checkpoint=<that folder>, resume=True) on another cluster continues from it"
            )
        return text


def compute_client(array):
    """The distributed client ``array.compute()`` runs on, or None (a local scheduler)."""
    import dask.base
    from distributed import Client

    get = dask.base.get_scheduler(collections=[array])
    owner = getattr(get, "__self__", None)
    return owner if isinstance(owner, Client) else None


class SchedulerWatch:
    """``with watch:`` around each reducer call on ``client`` (None: no scheduler to lose).

    State
    -----
    client : distributed.Client or None
    address : str or None
        The scheduler's address, read once: a closed client forgets it.
    """

    def __init__(self, client):
        self.client = client
        self.address = None if client is None else client.scheduler.address

    def __enter__(self):
        if self.client is not None and self.client.status != "running":
            raise SchedulerLost(self.address, self.client.status)
        return self

    def __exit__(self, kind, error, traceback):
        if self.client is None or not isinstance(error, LOST):
            return False
        status = self.client.status
        if status == "running" and "scheduler-connection-lost" not in str(error):
            return False
        raise SchedulerLost(self.address, status) from error
