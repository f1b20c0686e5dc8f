"""An existing scheduler, reached by its address: observed, never scaled, failing clearly.

Each scheduler here is a real one, started the way a user (or a batch script) starts it:
``python -m distributed.cli.dask_scheduler`` and one ``dask_worker`` as separate processes,
each in its own process group (so a SIGKILL takes it whole), found through their scheduler
file. A fixture starts them, and kills and reaps them at teardown, also when a test failed.
"""

import datetime
import json
import os
import signal
import socket
import subprocess
import sys
import threading
import time
from contextlib import contextmanager, suppress

import numpy as np
import psutil
import pytest
from distributed.security import Security

from elastic_nb import ElasticCluster, LinearRegression, checkpoint, datasets

#: Seconds the connections here wait for their scheduler (the connect timeout, and the
#: client's reconnection window when the scheduler goes away).
TIMEOUT = 5.0
#: Seconds a connection may take past its timeout to fail: the handshake's slack (0.5 s),
#: closing the probe's event loop, thread start-up on a busy 2-core machine.
SLACK = 3.0
#: Seconds a fit whose scheduler was killed may take to raise: it should be at once (the
#: client cancels the fit's futures when the comm closes), and never more than the
#: client's reconnection window (TIMEOUT) plus scheduling noise.
LOST_WITHIN = TIMEOUT + 10.0
#: Seconds a scheduler, and then its first worker, may take to start.
START_WITHIN = 60.0


# ------------------------------------------------------------ real processes
def _start(args, log_path):
    with open(log_path, "wb") as log:  # the child keeps its own copy of the descriptor
        return subprocess.Popen(
            [sys.executable, "-m", *args],
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,  # its own process group: killpg takes all of it
        )


def _kill(process):
    """SIGKILL the process group of ``process`` and reap it (no zombie, no orphan)."""
    with suppress(ProcessLookupError):
        os.killpg(process.pid, signal.SIGKILL)
    process.wait(timeout=30)


class External:
    """A scheduler and one worker started as separate processes.

    State
    -----
    address : str
        The scheduler's address, from its scheduler file.
    scheduler, worker : subprocess.Popen
    security : Security or None
        What a client needs to connect (TLS only).
    logs : Path
        The folder of their combined output, quoted when something goes wrong.
    """

    def __init__(self, folder, tls=None):
        self.logs, self.security = folder, None
        self.scheduler = self.worker = None
        try:
            self._start(folder, tls)
        except BaseException:
            self.stop()
            raise

    def _start(self, folder, tls):
        file = folder / "scheduler.json"
        tls_args = []
        if tls is not None:
            ca, cert, key = tls
            tls_args = ["--tls-ca-file", ca, "--tls-cert", cert, "--tls-key", key]
            self.security = Security(
                tls_ca_file=ca, tls_client_cert=cert, tls_client_key=key, require_encryption=True
            )
        protocol = ["--protocol", "tls"] if tls else []
        self.scheduler = _start(
            ["distributed.cli.dask_scheduler", "--host", "127.0.0.1", "--port", "0",
             "--no-dashboard", "--idle-timeout", "600", "--scheduler-file", str(file),
             *protocol, *tls_args],
            folder / "scheduler.log",
        )  # fmt: skip
        self.address = self._wait_for_file(file)
        self.worker = _start(
            ["distributed.cli.dask_worker", "--scheduler-file", str(file), "--nthreads", "1",
             "--no-nanny", "--no-dashboard", "--death-timeout", "60", *tls_args],
            folder / "worker.log",
        )  # fmt: skip

    def _wait_for_file(self, file):
        deadline = time.monotonic() + START_WITHIN
        while time.monotonic() < deadline:
            if self.scheduler.poll() is not None:
                raise RuntimeError(f"the scheduler exited: {self.log('scheduler')}")
            if file.exists():
                try:
                    return json.loads(file.read_text())["address"]
                except (ValueError, KeyError):
                    pass  # still being written
            time.sleep(0.1)
        raise TimeoutError(f"no scheduler file within {START_WITHIN} s: {self.log('scheduler')}")

    def log(self, name):
        return (self.logs / f"{name}.log").read_text(errors="replace")[-3000:]

    def connect(self, **kwargs):
        """An ElasticCluster observing this scheduler, once its worker is connected."""
        kwargs.setdefault("security", self.security)
        cluster = ElasticCluster.connect(self.address, timeout=TIMEOUT, **kwargs)
        try:
            cluster.client.wait_for_workers(1, timeout=START_WITHIN)
        except BaseException:
            cluster.close()
            raise
        return cluster

    def kill_scheduler(self):
        _kill(self.scheduler)

    def stop(self):
        for process in (self.worker, self.scheduler):
            if process is not None:
                _kill(process)


@contextmanager
def external_scheduler(folder, tls=None):
    folder.mkdir(parents=True, exist_ok=True)
    external = External(folder, tls)  # kills what it started if it fails
    try:
        yield external
    finally:
        external.stop()


@pytest.fixture(scope="module")
def external(tmp_path_factory):
    """A plain-TCP scheduler and worker for the module."""
    with external_scheduler(tmp_path_factory.mktemp("tcp")) as running:
        yield running


def write_tls_files(folder):
    """A certificate authority and one certificate it signed (for scheduler, worker and
    client alike; distributed does not check host names), as PEM files."""
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    def name(common):
        return x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common)])

    def certificate(subject, key, issuer, signer, ca):
        now = datetime.datetime.now(datetime.timezone.utc)
        builder = (
            x509.CertificateBuilder()
            .subject_name(name(subject))
            .issuer_name(name(issuer))
            .public_key(key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - datetime.timedelta(minutes=5))
            .not_valid_after(now + datetime.timedelta(days=1))
            .add_extension(x509.BasicConstraints(ca=ca, path_length=None), critical=True)
        )
        return builder.sign(signer, hashes.SHA256())

    ca_key, key = ec.generate_private_key(ec.SECP256R1()), ec.generate_private_key(ec.SECP256R1())
    ca = certificate("elastic-nb test CA", ca_key, "elastic-nb test CA", ca_key, ca=True)
    leaf = certificate("dask-internal", key, "elastic-nb test CA", ca_key, ca=False)
    pem = serialization.Encoding.PEM
    files = [folder / "ca.pem", folder / "cert.pem", folder / "key.pem"]
    files[0].write_bytes(ca.public_bytes(pem))
    files[1].write_bytes(leaf.public_bytes(pem))
    files[2].write_bytes(
        key.private_bytes(pem, serialization.PrivateFormat.PKCS8, serialization.NoEncryption())
    )
    return [str(f) for f in files]


@pytest.fixture(scope="module")
def tls_external(tmp_path_factory):
    """A TLS-only scheduler and worker, with certificates from a CA made for the module."""
    folder = tmp_path_factory.mktemp("tls")
    with external_scheduler(folder, tls=write_tls_files(folder)) as running:
        yield running


def regression(client, persisted=True):
    """A small problem made (and persisted) on ``client``'s worker, and its true coef; not
    persisted, each pass of a fit computes it again in a dask graph."""
    X, y, coef = datasets.make_regression(20_000, 4, chunks=5_000, noise=0.01)
    if persisted:
        X, y = client.persist([X, y])
    return X, y, coef


# ------------------------------------------------------------ 1. observed, and fits
@pytest.mark.timeout(120)
def test_a_fit_runs_on_an_external_scheduler_that_elastic_nb_only_observes(external):
    with external.connect() as cluster:
        assert cluster.scheduler_address == external.address
        assert not cluster.can_scale and cluster.cluster is None and not cluster.owns_cluster
        X, y, coef = regression(cluster.client)
        model = LinearRegression(solver="normal").fit(X, y)
        np.testing.assert_allclose(model.coef_, coef, atol=1e-3)
        for call in (lambda: cluster.scale(2), lambda: cluster.adapt(1, 2)):
            with pytest.raises(RuntimeError, match="only observes") as refused:
                call()
            assert "connected to a scheduler address" in str(refused.value)
            assert "cluster=" in str(refused.value)  # what to do instead
    # closing the observer left the scheduler and its worker running
    assert external.scheduler.poll() is None and external.worker.poll() is None
    again = ElasticCluster(address=external.address, connect_timeout=TIMEOUT)
    try:
        assert len(again.client.scheduler_info()["workers"]) == 1
    finally:
        again.close()


# ------------------------------------------------------------ 2. TLS
@pytest.mark.timeout(120)
def test_a_tls_scheduler_fits_with_its_credentials_and_refuses_without(tls_external):
    assert tls_external.address.startswith("tls://127.0.0.1:")
    with tls_external.connect() as cluster:
        X, y, coef = regression(cluster.client)
        model = LinearRegression(solver="gd", max_iter=50).fit(X, y)
        np.testing.assert_allclose(model.coef_, coef, atol=1e-2)
    refusals = {
        "no credentials": (tls_external.address, None, "without TLS credentials"),
        "another authority": (tls_external.address, Security.temporary(), "within"),
        "plain TCP": (tls_external.address.replace("tls://", "tcp://"), None, "within"),
        "TCP, but encryption required": (
            tls_external.address.replace("tls://", "tcp://"),
            tls_external.security,
            "encryption required",
        ),
    }
    for why, (address, security, says) in refusals.items():
        started = time.monotonic()
        with pytest.raises(ConnectionError, match=says) as refused:
            ElasticCluster.connect(address, timeout=TIMEOUT, security=security)
        elapsed = time.monotonic() - started
        assert address in str(refused.value), why
        assert elapsed < TIMEOUT + SLACK, (why, elapsed)


# ------------------------------------------------------------ 3. wrong addresses
@contextmanager
def silent_port():
    """A port that accepts connections (the kernel's backlog) and never answers, as a
    stopped scheduler or a service that waits for its client to speak first."""
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(8)
    try:
        yield f"tcp://127.0.0.1:{listener.getsockname()[1]}"
    finally:
        listener.close()


def closed_port():
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return f"tcp://127.0.0.1:{probe.getsockname()[1]}"  # closed again on return


def _running():
    return set(threading.enumerate()), {p.pid for p in psutil.Process().children(recursive=True)}


def _new_since(before, timeout=5.0):
    """The threads and child processes that are new since ``before`` (a :func:`_running`),
    once they had ``timeout`` seconds to end."""
    deadline = time.monotonic() + timeout
    while True:
        threads, children = _running()
        threads = sorted(t.name for t in threads - before[0])
        children = sorted(children - before[1])
        if (not threads and not children) or time.monotonic() > deadline:
            return threads, children
        time.sleep(0.1)


@pytest.mark.timeout(60)
@pytest.mark.parametrize("where", ["closed port", "unresolvable host", "silent port"])
def test_a_wrong_address_is_a_connection_error_naming_it_within_the_timeout(where):
    with silent_port() as silent:
        address = {
            "closed port": closed_port(),
            "unresolvable host": "tcp://no-such-host.invalid:8786",
            "silent port": silent,
        }[where]
        timeout = 2.0
        before = _running()
        started = time.monotonic()
        with pytest.raises(ConnectionError, match="could not connect") as refused:
            ElasticCluster.connect(address, timeout=timeout)
        elapsed = time.monotonic() - started
    assert address in str(refused.value) and "within 2 s" in str(refused.value)
    assert elapsed < timeout + SLACK, elapsed
    threads, children = _new_since(before)
    assert threads == [] and children == [], (threads, children)


# ------------------------------------------------------------ 4. the scheduler killed mid-fit
@pytest.fixture
def doomed(tmp_path):
    """A scheduler (and worker) of its own for a test that kills it."""
    with external_scheduler(tmp_path / "doomed") as running:
        yield running


KILL_AFTER = 4
ITERATIONS = 12


@pytest.mark.timeout(120)
@pytest.mark.parametrize(
    ("data", "when"), [("persisted", "between"), ("lazy", "between"), ("persisted", "in flight")]
)
def test_a_scheduler_killed_mid_fit_stops_it_clearly_and_resume_continues(
    doomed, external, tmp_path, data, when
):
    """SIGKILL to the scheduler after KILL_AFTER iterations, from the fit's callback
    (``between`` two iterations) or from a timer it starts (``in flight``, during the next
    one's tasks): the fit raises a ConnectionError naming the scheduler within LOST_WITHIN
    seconds, the estimator keeps its previous fit, the checkpoint holds the last completed
    iteration (although it saves every 3), and a resume against another scheduler ends
    with bit-for-bit the undisturbed model. ``persisted`` runs one task per worker over
    persisted chunks, ``lazy`` a dask graph per pass."""
    folder, killed_at = tmp_path / "checkpoint", []
    timer = threading.Timer(0.005, lambda: kill())

    def kill():
        killed_at.append(time.monotonic())
        doomed.kill_scheduler()

    def kill_the_scheduler(record):
        if record["iteration"] == KILL_AFTER:
            kill() if when == "between" else timer.start()

    model = LinearRegression(solver="adam", learning_rate=0.05, max_iter=2, tol=0)
    with doomed.connect() as cluster:
        X, y, _ = regression(cluster.client, persisted=data == "persisted")
        model.fit(X, y)  # the last successful fit
        before = (model.coef_.copy(), model.n_iter_)
        model.set_params(max_iter=ITERATIONS, callback=kill_the_scheduler)
        try:
            with pytest.raises(ConnectionError) as lost:
                model.fit(X, y, checkpoint=folder, checkpoint_every=3)
            took = time.monotonic() - killed_at[0]
        finally:
            timer.cancel()
            if timer.is_alive():
                timer.join()
    message, done = str(lost.value), lost.value.iteration
    assert f"lost the connection to the Dask scheduler at {doomed.address!r}" in message
    assert f"after iteration {done}" in message and str(folder) in message, message
    assert KILL_AFTER <= done < ITERATIONS, message
    assert took < LOST_WITHIN, took
    print(f"\n{data}, {when}: raised {took:.3f} s after the kill, after iteration {done}")
    np.testing.assert_array_equal(model.coef_, before[0])  # the previous fit, untouched
    assert model.n_iter_ == before[1]
    saved = checkpoint.load(folder)
    assert saved.state["iteration"] == done == len(saved.history)

    model.set_params(callback=None)
    with external.connect() as cluster:
        X, y, _ = regression(cluster.client, persisted=data == "persisted")
        resumed = model.fit(X, y, checkpoint=folder, resume=True)
        undisturbed = LinearRegression(
            solver="adam", learning_rate=0.05, max_iter=ITERATIONS, tol=0
        ).fit(X, y)
    assert [r["iteration"] for r in resumed.history_] == list(range(1, ITERATIONS + 1))
    assert resumed.history_[:done] == saved.history
    np.testing.assert_array_equal(resumed.coef_, undisturbed.coef_)
    assert resumed.intercept_ == undisturbed.intercept_
