"""A remote control for an ElasticCluster: ``POST /scale`` over HTTP, with a token.

The scheduler's own HTTP API (``http_api=True``) can retire workers but never add them;
this endpoint sets a fixed width or the adaptive range of a cluster elastic_nb manages, so
a script or another notebook can grow it too. It is off unless started, binds 127.0.0.1
unless told otherwise, and refuses every request without its bearer token.

- ``GET /status``: width, bounds, whether adaptive, policy, can_scale.
- ``POST /scale`` ``{"n": k}``: exactly ``k`` workers; ``{"minimum": a, "maximum": b}``:
  adaptive between them (an omitted or null bound stays as it was). Answers the status.

Refusals are JSON ``{"error": message}``: 401 without the token, 403 with a wrong one, 404
an unknown path, 405 a wrong method, 400 a bad body (or one the cluster's own checks
refuse), 411 no Content-Length, 413 a body over :data:`MAX_BODY`, 409 a cluster that only
observes its scheduler, 410 a cluster closed or garbage collected.
"""

from __future__ import annotations

import hmac
import json
import logging
import secrets
import socketserver
import ssl
import threading
import weakref
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import urlsplit

from .._validation import check_int
from ..policies import POLICIES
from .local import LOOPBACK

logger = logging.getLogger(__name__)

#: Bodies longer than this are refused unread: ``{"n": 2}`` needs a dozen bytes.
MAX_BODY = 64 * 2**10
#: Shortest token accepted from the user (a generated one has 43 characters).
MIN_TOKEN_LENGTH = 16
ROUTES = {"/status": "GET", "/scale": "POST"}
SCALE_KEYS = ("n", "minimum", "maximum")
#: Seconds a connection may stay silent before its handler thread gives up on it.
REQUEST_TIMEOUT = 10
#: Seconds between the accept loop's checks for :meth:`ControlServer.close` (its latency).
POLL_INTERVAL = 0.1


class RequestError(Exception):
    """A refusal: its HTTP status, a message for the client, and extra headers."""

    def __init__(self, status, message, headers=None):
        super().__init__(message)
        self.status, self.message, self.headers = status, message, headers or {}


class ControlServer:
    """An HTTP endpoint that scales ``cluster``, served from a daemon thread.

    Standard library ``http.server`` in a thread (no new dependency): the ElasticCluster's
    methods are synchronous and block on the client's event loop, so they must not run on
    that loop; a thread server calls them safely, as a notebook cell does.

    Parameters
    ----------
    cluster : ElasticCluster
        What the requests scale; held weakly, so the server never keeps it alive.
    host : str
        Where to listen: 127.0.0.1 unless another address is given explicitly.
    port : int
        0 picks a free port (see :attr:`url`).
    token : str, optional
        What clients send as ``Authorization: Bearer <token>``, at least
        :data:`MIN_TOKEN_LENGTH` printable ASCII characters; omitted, a random one.
    ssl_context : ssl.SSLContext, optional
        Serve HTTPS with it: off loopback, the token would otherwise cross in clear.

    State
    -----
    token : str
        What every request must carry; never logged nor sent back.
    host, port : str, int
        The address bound.
    _cluster : weakref.ref
        The ElasticCluster, while it lives.
    _lock : threading.Lock
        Serializes the calls into the cluster (the server runs a thread per request).
    _server : ThreadingHTTPServer or None
        Listening until :meth:`close`; None after.
    _thread : threading.Thread
        Runs the server's accept loop.
    """

    def __init__(self, cluster, *, host=LOOPBACK, port=0, token=None, ssl_context=None):
        self.token = check_token(token)
        self._cluster = weakref.ref(cluster)
        self._lock = threading.Lock()
        self._tls = ssl_context is not None
        self._server = _bind(host, port, ssl_context)
        self._server.control = self
        self.host, self.port = self._server.server_address[:2]
        if not self._tls and host not in (LOOPBACK, "localhost"):
            logger.warning("control endpoint on %s without TLS: the token crosses in clear", host)
        name = f"elastic_nb-control-{self.port}"
        self._thread = threading.Thread(
            target=self._server.serve_forever, args=(POLL_INTERVAL,), name=name, daemon=True
        )
        self._thread.start()
        logger.info("control endpoint listening on %s", self.url)

    @property
    def url(self) -> str:
        """Base URL of the endpoint, e.g. ``http://127.0.0.1:40123``."""
        return f"{'https' if self._tls else 'http'}://{self.host}:{self.port}"

    @property
    def closed(self) -> bool:
        return self._server is None

    def close(self, timeout=5):
        """Stop listening, free the port and join the thread; later calls do nothing."""
        server, self._server = self._server, None
        if server is not None:
            server.shutdown()
            server.server_close()
            self._thread.join(timeout)
            logger.info("control endpoint %s closed", self.url)

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()

    def __repr__(self):
        return f"<ControlServer {self.url}{' closed' if self.closed else ''}>"

    # ------------------------------------------------------------- the routes
    def authorize(self, header):
        """401 without a bearer token, 403 with a wrong one: compared in constant time, so
        its characters cannot be found one by one from response times."""
        scheme, _, given = (header or "").strip().partition(" ")
        if scheme.lower() != "bearer" or not given.strip():
            message = "this endpoint needs the header 'Authorization: Bearer <token>'"
            raise RequestError(401, message, {"WWW-Authenticate": 'Bearer realm="elastic_nb"'})
        # http.server decodes headers as latin-1: this gives back the bytes sent
        if not hmac.compare_digest(given.strip().encode("latin-1"), self.token.encode()):
            raise RequestError(403, "wrong token")

    def live_cluster(self):
        """The ElasticCluster, or 410 if it was garbage collected or closed."""
        cluster = self._cluster()
        if cluster is None:
            raise RequestError(410, "the ElasticCluster this endpoint controlled is gone")
        if cluster.closed:
            raise RequestError(410, "the ElasticCluster this endpoint controls is closed")
        return cluster

    def status(self) -> dict:
        """``GET /status``."""
        cluster = self.live_cluster()
        with self._lock:
            return status_of(cluster)

    def scale(self, body) -> dict:
        """``POST /scale``: the cluster's own ``scale`` or ``adapt``, whose checks (a
        width the machine cannot hold, a negative one...) are answered 400."""
        request = check_scale_body(body)
        cluster = self.live_cluster()
        with self._lock:
            try:
                if "n" in request:
                    cluster.scale(request["n"])
                else:
                    cluster.adapt(minimum=request.get("minimum"), maximum=request.get("maximum"))
            except (ValueError, TypeError) as err:
                raise RequestError(400, str(err)) from err
            except RuntimeError as err:
                if not cluster.can_scale:  # observe-only: no request can ever succeed
                    raise RequestError(409, str(err)) from err
                raise
            return status_of(cluster)


def check_token(token) -> str:
    """``token`` if long enough, a random one for None; errors never repeat the token (it
    may be a real secret, mistyped)."""
    if token is None:
        return secrets.token_urlsafe(32)
    if not isinstance(token, str):
        raise TypeError(f"token must be a str, got {type(token).__name__}")
    printable = token.isascii() and token.isprintable() and token == token.strip()
    if len(token) < MIN_TOKEN_LENGTH or not printable:  # what any HTTP client can send
        raise ValueError(
            f"token must have at least {MIN_TOKEN_LENGTH} printable ASCII characters, not "
            f"starting or ending with a space (got {len(token)} characters); omit it to get "
            "a random one"
        )
    return token


def check_scale_body(body) -> dict:
    """``body`` if it is one of the two forms of ``POST /scale``, else 400 naming why."""
    forms = '{"n": 2} or {"minimum": 0, "maximum": 2}'
    if not isinstance(body, dict):
        raise RequestError(400, f"the body must be a JSON object like {forms}")
    unknown = sorted(set(body) - set(SCALE_KEYS))
    if unknown:
        raise RequestError(400, f"unknown keys {unknown}: expected {forms}")
    if not body:
        raise RequestError(400, f"the body is empty: expected {forms}")
    if "n" in body and len(body) > 1:
        raise RequestError(400, "give either n (a fixed width) or minimum/maximum, not both")
    return body


def status_of(cluster) -> dict:
    """The status: ``width`` counts the workers connected now (after a scale, the new
    ones arrive later; ``ElasticCluster.wait_for_width`` waits for them)."""
    names = {cls: name for name, cls in POLICIES.items()}
    return {
        "width": cluster.width,
        "minimum": cluster.minimum,
        "maximum": cluster.maximum,
        "adaptive": cluster.adaptive is not None,
        "policy": names.get(cluster.policy, cluster.policy.__name__),
        "can_scale": cluster.can_scale,
    }


def _bind(host, port, ssl_context) -> _Server:
    """A server listening on ``host:port``, or an error naming them (nothing started)."""
    if not isinstance(host, str):
        raise TypeError(f"host must be an address like {LOOPBACK!r}, got {host!r}")
    if check_int("port", port, minimum=0) > 65535:
        raise ValueError(f"port must be <= 65535, got {port}")
    if ssl_context is not None and not isinstance(ssl_context, ssl.SSLContext):
        raise TypeError(f"ssl_context must be an ssl.SSLContext, got {ssl_context!r}")
    try:
        server = _Server((host, port), _Handler)
    except OSError as err:
        message = f"cannot serve the control endpoint on {host}:{port}: {err.strerror or err}"
        raise OSError(err.errno, message) from err
    server.ssl_context = ssl_context
    return server


class _Server(ThreadingHTTPServer):
    """A thread per request; errors go to the log, not stderr; TLS per connection."""

    daemon_threads = True
    ssl_context = control = None

    def server_bind(self):
        # HTTPServer's own looks the host's name up (a DNS query) it does not need
        socketserver.TCPServer.server_bind(self)
        self.server_name, self.server_port = self.server_address[:2]

    def get_request(self):
        conn, address = self.socket.accept()
        if self.ssl_context is not None:  # the handshake runs on the request's thread, at
            # its first read: a slow client cannot hold up the accept loop
            conn = self.ssl_context.wrap_socket(
                conn, server_side=True, do_handshake_on_connect=False
            )
        return conn, address

    def handle_error(self, request, client_address):
        logger.warning("control request from %s failed", client_address[0], exc_info=True)


class _Handler(BaseHTTPRequestHandler):
    """One request: authorize, route, answer JSON."""

    server_version, sys_version = "elastic_nb-control", ""
    timeout = REQUEST_TIMEOUT

    def dispatch(self):
        """Answer the request, whatever its method; the token is checked first."""
        control = self.server.control
        try:
            control.authorize(self.headers.get("Authorization"))
            path = urlsplit(self.path).path
            method = ROUTES.get(path)
            if method is None:
                routes = ", ".join(f"{m} {p}" for p, m in ROUTES.items())
                raise RequestError(404, f"no route {path[:100]!r}; the routes are {routes}")
            if method != self.command:
                raise RequestError(405, f"{path} takes {method} only", {"Allow": method})
            self.reply(200, control.status() if method == "GET" else control.scale(self.body()))
        except RequestError as err:
            self.reply(err.status, {"error": err.message}, err.headers)
        except Exception as err:
            logger.exception("control request %s %s failed", self.command, self.path[:100])
            self.reply(500, {"error": f"internal error ({type(err).__name__}); see the log"})

    do_GET = do_POST = do_PUT = do_DELETE = do_PATCH = dispatch

    def body(self):
        """The request's body as JSON (411, 413 or 400 if it cannot be)."""
        length = self.headers.get("Content-Length")
        if length is None:
            raise RequestError(411, "the request needs a Content-Length header")
        if not (length.isascii() and length.strip().isdecimal()):
            raise RequestError(400, "Content-Length must be a byte count")
        if int(length) > MAX_BODY:
            self.close_connection = True  # the body stays unread
            raise RequestError(413, f"the body has {length} bytes; at most {MAX_BODY} allowed")
        try:
            return json.loads(self.rfile.read(int(length)))
        except ValueError as err:  # JSONDecodeError and UnicodeDecodeError are ValueErrors
            raise RequestError(400, f"the body is not JSON: {err}") from err

    def reply(self, status, payload, headers=None):
        data = json.dumps(payload).encode()
        self.send_response(status)
        headers = {
            "Content-Type": "application/json",
            "Cache-Control": "no-store",
            **(headers or {}),
        }
        for name, value in {**headers, "Content-Length": str(len(data))}.items():
            self.send_header(name, value)
        self.end_headers()
        self.wfile.write(data)

    def log_message(self, format, *args):
        logger.info("%s %s", self.address_string(), format % args)
