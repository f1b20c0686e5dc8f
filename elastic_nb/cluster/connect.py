"""Reaching a scheduler that runs already: TLS settings and a connection that fails clearly."""

from __future__ import annotations

import asyncio
import threading

from distributed import Client
from distributed.comm import connect as comm_connect
from distributed.security import Security

#: Seconds the handshake may take past the connect timeout.
HANDSHAKE_SLACK = 0.5
#: Seconds the probe's thread may outlive the connect timeout (closing its loop) before
#: the caller stops waiting for it.
PROBE_SLACK = 2.0


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


def _connection_args(address, security):
    """The comm arguments the ``Client`` will use: ``security``, or else dask's TLS config
    (``Client(security=None)`` reads it), so the probe tries what the client will.

    Raises
    ------
    ConnectionError
        For a ``tls://`` address without TLS credentials: distributed would raise a
        TypeError about an ``ssl_context`` that does not say what to pass.
    """
    args = (security if security is not None else Security()).get_connection_args("client")
    if address.startswith("tls://") and args.get("ssl_context") is None:
        raise ConnectionError(
            f"cannot connect to the Dask scheduler at {address!r} without TLS credentials: "
            "pass security=distributed.security.Security(tls_ca_file=..., "
            "tls_client_cert=..., tls_client_key=..., require_encryption=True)"
        )
    return args


async def _probe(address, timeout, args):
    """Connect and shake hands once, within ``timeout`` + HANDSHAKE_SLACK: distributed's
    ``connect`` bounds the TCP (and TLS) connection by ``timeout`` but not the handshake's
    read, so a port that accepts and never answers (a dashboard's HTTP port, a stopped
    scheduler) would hang. The slack lets a refused connection time out as distributed's
    own OSError, which names the cause."""
    bound = timeout + HANDSHAKE_SLACK
    try:
        comm = await asyncio.wait_for(comm_connect(address, timeout=timeout, **args), bound)
    except asyncio.TimeoutError:  # the builtin TimeoutError from Python 3.11
        raise TimeoutError(
            "something accepted the connection but did not answer Dask's handshake"
        ) from None
    await comm.close()


def in_fresh_loop(make_coroutine, timeout=None):
    """Run a coroutine to completion on a new event loop in its own thread: works whether
    or not this thread already runs a loop (a Jupyter kernel's main thread does).

    Waits at most ``timeout`` seconds (None: until it ends), then raises TimeoutError: a
    name lookup blocks a thread that nothing can interrupt, and it would keep the loop
    from closing; the (daemon) thread then ends when the resolver gives up."""
    outcome = {}

    def run():
        try:
            asyncio.run(make_coroutine())
        except BaseException as err:  # handed back to the caller's thread
            outcome["error"] = err

    thread = threading.Thread(target=run, name="enb-probe", daemon=True)
    thread.start()
    thread.join(timeout)
    if thread.is_alive():
        raise TimeoutError(f"no answer within {timeout:g} s")
    if "error" in outcome:
        raise outcome["error"]


def connect(address, timeout, security):
    """A client for the scheduler at ``address``.

    Parameters
    ----------
    address : str
        The scheduler's address, e.g. ``"tcp://10.0.0.5:8786"``.
    timeout : float
        Seconds to wait for it. The client keeps it as its reconnection window too: if
        the scheduler goes away, distributed cancels the client's futures at once and
        retries for that long before it closes the client.
    security : Security or None
        TLS settings of the client.

    Raises
    ------
    ConnectionError
        Naming the address (and the timeout), if no Dask scheduler answers there in time,
        or something else does, or a ``tls://`` address comes without TLS credentials.
        Nothing is left behind: the address is probed with a plain comm on a throw-away
        event loop first (a ``Client`` that fails to connect leaves its IO-loop thread
        running).
    """
    args = _connection_args(address, security)
    try:
        in_fresh_loop(
            lambda: _probe(address, timeout, args), timeout=timeout + HANDSHAKE_SLACK + PROBE_SLACK
        )
    except (OSError, TimeoutError) as err:
        raise ConnectionError(
            f"could not connect to the Dask scheduler at {address!r} within {timeout:g} s "
            f"({type(err).__name__}: {err})"
        ) from err
    except Exception as err:  # an answer not in Dask's protocol, or settings refusing it
        raise ConnectionError(
            f"could not connect to the Dask scheduler at {address!r}: the handshake failed "
            f"({type(err).__name__}: {err})"
        ) from err
    return Client(address, timeout=timeout, security=security)
