"""Reaching a scheduler that runs already: TLS settings and a connection that fails clearly."""

from __future__ import annotations

import asyncio
import threading

from distributed import Client
from distributed.comm import connect as comm_connect
from distributed.security import Security


def check_security(security):
    """The :class:`~distributed.security.Security` to use, or None for plain TCP.

    Parameters
    ----------
    security : None, bool or Security
        None or False: no TLS; True: a temporary self-signed certificate
        (``Security.temporary()``, for a cluster elastic_nb starts); a ``Security``: that one.

    Raises
    ------
    TypeError
        For anything else.
    """
    if security is None or security is False:
        return None
    if security is True:
        return Security.temporary()
    if isinstance(security, Security):
        return security
    raise TypeError(
        f"security must be True, False or a distributed.security.Security, got {security!r}"
    )


async def _probe(address, timeout, security):
    args = security.get_connection_args("client") if security is not None else {}
    comm = await comm_connect(address, timeout=timeout, **args)
    await comm.close()


def in_fresh_loop(make_coroutine):
    """Run a coroutine to completion on a new event loop in its own thread: works whether
    or not this thread already runs a loop (a Jupyter kernel's main thread does)."""
    outcome = {}

    def run():
        try:
            asyncio.run(make_coroutine())
        except BaseException as err:  # handed back to the caller's thread
            outcome["error"] = err

    thread = threading.Thread(target=run, name="enb-probe", daemon=True)
    thread.start()
    thread.join()
    if "error" in outcome:
        raise outcome["error"]


def connect(address, timeout, security):
    """A client for the scheduler at ``address``.

    Parameters
    ----------
    address : str
        The scheduler's address, e.g. ``"tcp://10.0.0.5:8786"``.
    timeout : float
        Seconds to wait for it.
    security : Security or None
        TLS settings of the client.

    Raises
    ------
    ConnectionError
        Naming the address and the timeout, if no scheduler answers in time. Nothing is
        left behind: the address is probed with a plain comm on a throw-away event loop
        first (a ``Client`` that fails to connect leaves its IO-loop thread running).
    """
    try:
        in_fresh_loop(lambda: _probe(address, timeout, security))
        return Client(address, timeout=timeout, security=security)
    except (OSError, TimeoutError) as err:
        raise ConnectionError(
            f"could not connect to the Dask scheduler at {address!r} within {timeout:g} s "
            f"({type(err).__name__}: {err})"
        ) from err
