"""The remote control (``ControlServer``): real HTTP requests against a real local cluster.

Every refusal is checked to leave the cluster as it was: a request that got through would
change the manager's plan (``worker_spec``) or start a policy at once, before any worker
starts.
"""

import gc
import http.client
import json
import logging
import socket
import ssl
import threading

import pytest
from distributed import Security

from elastic_nb import ElasticCluster
from elastic_nb.cluster.control import MAX_BODY, ControlServer


@pytest.fixture(scope="module")
def cluster():
    """One local cluster of at most two worker processes, shared by the module."""
    with ElasticCluster.local(0, 2) as elastic:
        yield elastic


@pytest.fixture
def control(cluster):
    """A control endpoint on a fixed, empty cluster (whatever the last test left)."""
    cluster.scale(0)
    cluster.wait_for_width(0)
    with ControlServer(cluster) as server:
        yield server


def call(server, method, path, body=None, *, token=True, headers=None, context=None):
    """``(status, headers, JSON answer)`` of one request; ``token=True`` sends the right
    one, a str sends that one, None sends none."""
    headers = dict(headers or {})
    if token is not None:
        headers["Authorization"] = f"Bearer {server.token if token is True else token}"
    if body is not None and not isinstance(body, bytes):
        body = json.dumps(body).encode()
    if context is None:
        conn = http.client.HTTPConnection(server.host, server.port, timeout=10)
    else:
        conn = http.client.HTTPSConnection(server.host, server.port, timeout=10, context=context)
    try:
        conn.request(method, path, body=body, headers=headers)
        response = conn.getresponse()
        raw = response.read()
    finally:
        conn.close()
    assert response.getheader("Content-Type") == "application/json", raw
    return response.status, response.headers, json.loads(raw)


def plan(cluster):
    """Workers the manager is set to run: changed by ``scale`` at once, unlike ``width``."""
    return len(cluster.cluster.worker_spec)


def unchanged(cluster):
    """The state every test starts from: fixed at zero workers, none planned."""
    return plan(cluster) == 0 and cluster.adaptive is None and cluster.width == 0


# -------------------------------------------------------------- the token
@pytest.mark.parametrize("header", [None, "Basic dXNlcjpwYXNz", "Bearer", "Token abc"])
def test_a_request_without_the_token_is_refused_and_changes_nothing(control, cluster, header):
    headers = {} if header is None else {"Authorization": header}
    status, answer_headers, answer = call(
        control, "POST", "/scale", {"n": 2}, token=None, headers=headers
    )
    assert status == 401 and answer_headers["WWW-Authenticate"].startswith("Bearer")
    assert "Authorization: Bearer" in answer["error"]
    assert call(control, "GET", "/status", token=None)[0] == 401
    assert unchanged(cluster)


def test_a_wrong_token_is_forbidden_and_no_token_is_echoed(control, cluster):
    wrong = control.token[:-1] + ("x" if control.token[-1] != "x" else "y")
    for body in ({"n": 2}, {"minimum": 0, "maximum": 2}):
        status, _, answer = call(control, "POST", "/scale", body, token=wrong)
        assert status == 403 and answer == {"error": "wrong token"}
    assert call(control, "GET", "/status", token=control.token + "x")[0] == 403
    assert unchanged(cluster)
    # no answer, refusal or not, carries the token (or the wrong one)
    for method, path, body in [
        ("GET", "/nope", None),
        ("POST", "/scale", b"{"),
        ("GET", "/scale", None),
    ]:
        for token in (True, wrong):
            raw = json.dumps(call(control, method, path, body, token=token)[2])
            assert control.token not in raw and wrong not in raw


def test_tokens_are_random_or_long_enough(cluster):
    with ControlServer(cluster) as a, ControlServer(cluster) as b:
        assert a.token != b.token and len(a.token) >= 32
    secret = "s3cret-but-short"[:-1]
    for bad in (secret, "é" * 20, " padded-0123456789 ", "tab\tin-the-middle-0123"):
        with pytest.raises(ValueError, match="at least 16 printable ASCII") as info:
            ControlServer(cluster, token=bad)
        assert bad not in str(info.value)
    with pytest.raises(TypeError, match="token must be a str"):
        ControlServer(cluster, token=b"0123456789abcdef0123")
    with ControlServer(cluster, token="0123456789abcdef") as mine:
        assert call(mine, "GET", "/status", token="0123456789abcdef")[0] == 200


# -------------------------------------------------------------- the routes
def test_status_reports_the_cluster(control, cluster):
    status, _, answer = call(control, "GET", "/status")
    assert status == 200
    assert answer == {
        "width": 0,
        "minimum": cluster.minimum,
        "maximum": cluster.maximum,
        "adaptive": False,
        "policy": "default",
        "can_scale": True,
    }
    assert call(control, "GET", "/status?verbose=1")[0] == 200  # a query string is ignored


def test_scale_n_really_grows_and_shrinks_the_cluster(control, cluster):
    status, _, answer = call(control, "POST", "/scale", {"n": 2})
    assert status == 200 and answer["adaptive"] is False and plan(cluster) == 2
    cluster.wait_for_width(2, timeout=60)
    assert cluster.adaptive is None
    assert call(control, "GET", "/status")[2]["width"] == 2
    status, _, answer = call(control, "POST", "/scale", {"n": 0})
    assert status == 200 and plan(cluster) == 0
    cluster.wait_for_width(0, timeout=60)
    assert [d for d, _ in cluster.decisions][-2:] == ["scale", "scale"]


def test_minimum_and_maximum_make_the_cluster_adaptive(control, cluster):
    status, _, answer = call(control, "POST", "/scale", {"minimum": 0, "maximum": 1})
    assert status == 200 and answer["adaptive"] is True
    assert (answer["minimum"], answer["maximum"]) == (0, 1)
    adaptive = cluster.adaptive
    assert adaptive is not None and (adaptive.minimum, adaptive.maximum) == (0, 1)
    assert adaptive.periodic_callback is not None  # running, not only built
    # one bound alone keeps the other
    answer = call(control, "POST", "/scale", {"maximum": 2})[2]
    assert (answer["minimum"], answer["maximum"]) == (0, 2)
    assert (cluster.adaptive.minimum, cluster.adaptive.maximum) == (0, 2)
    assert cluster.adaptive is not adaptive
    assert call(control, "POST", "/scale", {"n": 0})[2]["adaptive"] is False
    assert cluster.adaptive is None


@pytest.mark.parametrize(
    ("body", "match"),
    [
        (b"{", "not JSON"),
        (b"\xff\xfe\x00", "not JSON"),
        (b"[2]", "JSON object"),
        (b"2", "JSON object"),
        ({}, "empty"),
        ({"n": 2, "maximum": 2}, "not both"),
        ({"workers": 3, "n": 1}, "unknown keys ['workers']"),
        ({"n": -1}, "n must be >= 0"),
        ({"n": "two"}, "n must be an integer"),
        ({"n": 1.5}, "n must be an integer"),
        ({"n": None}, "n must be an integer"),
        ({"n": 10**9}, "at most"),
        ({"minimum": 2, "maximum": 1}, "maximum must be >= minimum"),
        ({"maximum": 10**9}, "at most"),
    ],
)
def test_a_bad_body_is_a_400_naming_the_problem(control, cluster, body, match):
    status, _, answer = call(control, "POST", "/scale", body)
    assert status == 400 and match in answer["error"]
    assert unchanged(cluster)


def test_a_body_without_length_or_too_long_is_refused_unread(control, cluster):
    conn = http.client.HTTPConnection(control.host, control.port, timeout=10)
    auth = {"Authorization": f"Bearer {control.token}"}
    try:  # announces a megabyte and sends none of it: the answer must not wait for it
        conn.putrequest("POST", "/scale")
        for name, value in {**auth, "Content-Length": str(2**20)}.items():
            conn.putheader(name, value)
        conn.endheaders()
        response = conn.getresponse()
        assert response.status == 413 and str(MAX_BODY) in json.loads(response.read())["error"]
    finally:
        conn.close()
    status, _, answer = call(control, "POST", "/scale", b" " * (MAX_BODY + 1))
    assert status == 413
    status, _, answer = call(control, "POST", "/scale", headers={"Content-Length": "two"})
    assert status == 400 and "Content-Length" in answer["error"]
    conn = http.client.HTTPConnection(control.host, control.port, timeout=10)
    try:
        conn.putrequest("POST", "/scale")
        conn.putheader("Authorization", auth["Authorization"])
        conn.endheaders()
        assert conn.getresponse().status == 411
    finally:
        conn.close()
    assert unchanged(cluster)


def test_unknown_routes_and_wrong_methods(control, cluster):
    status, _, answer = call(control, "GET", "/api/v1/retire_workers")
    assert status == 404 and "GET /status, POST /scale" in answer["error"]
    assert call(control, "POST", "/", {"n": 1})[0] == 404
    for method, path, allowed in [("GET", "/scale", "POST"), ("POST", "/status", "GET")]:
        status, headers, answer = call(control, method, path, {"n": 1})
        assert status == 405 and headers["Allow"] == allowed
    assert call(control, "DELETE", "/scale")[0] == 405
    assert call(control, "PUT", "/scale", {"n": 1})[0] == 405
    assert unchanged(cluster)


def test_an_observe_only_cluster_is_a_conflict(cluster):
    observer = ElasticCluster.connect(cluster.scheduler_address, timeout=10)
    with observer, ControlServer(observer) as server:
        assert call(server, "GET", "/status")[2]["can_scale"] is False
        status, _, answer = call(server, "POST", "/scale", {"n": 1})
        assert status == 409 and "only observes" in answer["error"]
        assert call(server, "POST", "/scale", {"maximum": 1})[0] == 409
    assert plan(cluster) == 0


class _Stub:
    """Enough of an ElasticCluster for the server to hold and ask whether it is closed."""

    closed = False


def test_the_server_does_not_keep_the_cluster_alive():
    stub = _Stub()
    with ControlServer(stub) as server:
        stub.closed = True
        status, _, answer = call(server, "POST", "/scale", {"n": 1})
        assert status == 410 and "closed" in answer["error"]
        del stub
        gc.collect()
        assert not [o for o in gc.get_objects() if isinstance(o, _Stub)]
        status, _, answer = call(server, "GET", "/status")
        assert status == 410 and "gone" in answer["error"]
        assert call(server, "GET", "/status", token=None)[0] == 401  # still the token first


# -------------------------------------------------------------- the server
def test_it_binds_loopback_by_default_and_says_where(control):
    assert control._server.socket.getsockname()[0] == "127.0.0.1"
    assert control.url == f"http://127.0.0.1:{control.port}" and control.port > 0


def test_close_frees_the_port_and_stops_the_thread(cluster):
    server = ControlServer(cluster)
    thread, port = server._thread, server.port
    assert thread.is_alive() and thread.daemon
    assert call(server, "GET", "/status")[0] == 200
    server.close()
    assert not thread.is_alive() and server.closed
    server.close()  # again: nothing to do
    with pytest.raises(ConnectionRefusedError):
        socket.create_connection(("127.0.0.1", port), timeout=5)
    with socket.socket() as probe:  # free for a server (which, as any, reuses the address
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # its connections left)
        probe.bind(("127.0.0.1", port))
        probe.listen()
    with ControlServer(cluster, port=port) as again:
        assert call(again, "GET", "/status")[0] == 200


def test_a_port_in_use_is_a_clear_error_and_starts_nothing(cluster):
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        before = set(threading.enumerate())
        with pytest.raises(OSError, match=f"control endpoint on 127.0.0.1:{port}"):
            ControlServer(cluster, port=port)
        assert set(threading.enumerate()) == before
    with pytest.raises(ValueError, match="port must be <= 65535"):
        ControlServer(cluster, port=70000)


def test_requests_go_to_the_log_not_stderr(control, caplog, capfd):
    capfd.readouterr()
    with caplog.at_level(logging.INFO, logger="elastic_nb.cluster.control"):
        call(control, "GET", "/status")
        call(control, "GET", "/status", token="not-the-token-at-all")
    out, err = capfd.readouterr()
    assert "GET /status" not in err + out
    logged = [r.getMessage() for r in caplog.records if r.name == "elastic_nb.cluster.control"]
    assert any('"GET /status HTTP/1.1" 200' in m for m in logged)
    assert any('"GET /status HTTP/1.1" 403' in m for m in logged)
    assert not any(control.token in m or "not-the-token" in m for m in logged)


def test_tls(cluster, tmp_path):
    security = Security.temporary()
    cert, key = tmp_path / "cert.pem", tmp_path / "key.pem"
    cert.write_text(security.tls_scheduler_cert)
    key.write_text(security.tls_scheduler_key)
    served = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    served.load_cert_chain(cert, key)
    client = ssl.create_default_context(cadata=security.tls_ca_file)
    client.check_hostname = False  # the temporary certificate names "dask-internal"
    with ControlServer(cluster, ssl_context=served) as server:
        assert server.url.startswith("https://127.0.0.1:")
        assert call(server, "GET", "/status", context=client)[0] == 200
        with pytest.raises(ssl.SSLError):  # a client that does not trust the certificate
            call(server, "GET", "/status", context=ssl.create_default_context())
        assert call(server, "GET", "/status", context=client)[0] == 200  # still serving


# ------------------------------------------------------ through the ElasticCluster
def test_serve_control_is_off_until_asked_and_closes_with_the_cluster():
    with ElasticCluster.local(0, 1) as cluster:
        assert cluster.control is None  # off by default
        server = cluster.serve_control(token="a-token-of-sixteen+")
        assert server.url.startswith("http://127.0.0.1:")
        with pytest.raises(RuntimeError, match="already served"):
            cluster.serve_control()
        status, _, answer = call(server, "POST", "/scale", {"n": 1})
        assert status == 200 and answer["width"] in (0, 1)
        cluster.wait_for_width(1, timeout=30)
        assert ("control", server.url) in [(a, d.get("url")) for a, d in cluster.decisions]
    assert server.closed
    with pytest.raises(OSError):
        socket.create_connection((server.host, server.port), timeout=2).close()


def test_an_observe_only_cluster_serves_no_control_endpoint(cluster):
    with (
        ElasticCluster.connect(cluster.scheduler_address) as observer,
        pytest.raises(RuntimeError, match="only observes"),
    ):
        observer.serve_control()
