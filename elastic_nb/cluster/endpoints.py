"""Where a cluster is watched and controlled from outside the notebook: the scheduler's
address, its dashboard (through jupyter-server-proxy behind JupyterHub or Binder), its own
HTTP API, and elastic_nb's control endpoint, which can also add workers."""

from __future__ import annotations

import os
import weakref
from urllib.parse import urlparse

from .control import ControlServer
from .local import LOOPBACK


class Endpoints:
    """The URLs of an :class:`~elastic_nb.ElasticCluster` (a mixin: it reads the cluster's
    ``client``, ``http_api`` and ``closed``, and keeps one state of its own).

    State
    -----
    control : ControlServer or None
        The control endpoint, once :meth:`serve_control` started it; closed with the
        cluster.
    """

    control = None

    @property
    def scheduler_address(self) -> str:
        return self.client.scheduler.address

    @property
    def dashboard_link(self) -> str:
        """Dashboard URL; behind JupyterHub/Binder, the jupyter-server-proxy path."""
        link = self.client.dashboard_link
        prefix = os.environ.get("JUPYTERHUB_SERVICE_PREFIX")
        if prefix and link:
            port = urlparse(link).port
            return f"{prefix.rstrip('/')}/proxy/{port}/status"
        return link

    @property
    def api_url(self) -> str | None:
        """Base URL of the scheduler's HTTP API (``http_api=True``), else None.

        Routes (distributed's own): ``GET {api_url}/get_workers``, ``GET
        {api_url}/adaptive_target``, ``GET {api_url}/check_idle`` and ``POST
        {api_url}/retire_workers`` with ``{"n": k}`` or ``{"workers": [addresses]}``.
        """
        if not self.http_api or self.closed:
            return None
        link = urlparse(self.client.dashboard_link)
        return f"{link.scheme}://{link.netloc}/api/v1"

    def serve_control(self, *, host=LOOPBACK, port=0, token=None, ssl_context=None):
        """Serve an HTTP endpoint that resizes this cluster from outside the notebook.

        ``POST {url}/scale`` with ``{"n": k}`` fixes the width, with ``{"minimum": a,
        "maximum": b}`` sets the adaptive range; ``GET {url}/status`` reports both. Every
        request needs ``Authorization: Bearer <token>``. Off until called; bound to
        127.0.0.1 unless ``host`` says otherwise (then pass ``ssl_context``). The scheduler's
        own HTTP API (``http_api=True``) can only retire workers; this one can add them.

        Parameters
        ----------
        host : str
            Where it listens.
        port : int
            0 picks a free one.
        token : str, optional
            At least 16 characters; omitted, a random one (``.control.token``).
        ssl_context : ssl.SSLContext, optional
            Serve HTTPS with it.

        Returns
        -------
        ControlServer
            Its ``url`` and ``token``; closed with the cluster (or by its ``close()``).
        """
        self._require_scaling("serve a control endpoint")
        if self.control is not None and not self.control.closed:
            raise RuntimeError(f"a control endpoint is already served at {self.control.url}")
        self.control = ControlServer(
            self, host=host, port=port, token=token, ssl_context=ssl_context
        )
        self._control_finalizer = weakref.finalize(self, self.control.close)
        self._announce(
            "control", url=self.control.url, reason=f"control endpoint at {self.control.url}"
        )
        return self.control
