"""The service's HTTP endpoint: ``/healthz`` (liveness), ``/readyz`` (readiness), ``/metrics``
(Prometheus). Bound to 127.0.0.1:9108 by default (``[serve] host``/``port``); a container sets
``ROLLUP_SERVE__HOST=0.0.0.0``.

``/healthz`` and ``/readyz`` answer 200 or 503 with a small JSON body saying why.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import orjson
from prometheus_client import CollectorRegistry
from prometheus_client.exposition import choose_encoder

from rollup.errors import ConfigError

log = logging.getLogger(__name__)

Probe = Callable[[], tuple[bool, dict[str, Any]]]
"""Whether the answer is good, and the JSON body explaining it."""


class Endpoints:
    def __init__(self, host: str, port: int, registry: CollectorRegistry, health: Probe, ready: Probe):
        try:
            self._server = ThreadingHTTPServer((host, port), _handler(registry, health, ready))
        except OSError as exc:
            raise ConfigError(
                f"serve: cannot listen on {host}:{port}: {exc.strerror or exc} "
                "(set [serve] host and port, or ROLLUP_SERVE__HOST and ROLLUP_SERVE__PORT)"
            ) from None
        self._server.daemon_threads = True
        self._thread = threading.Thread(target=self._server.serve_forever, name="http", daemon=True)

    @property
    def url(self) -> str:
        host, port = self._server.server_address[:2]
        shown = f"[{host!s}]" if ":" in str(host) else str(host)
        return f"http://{shown}:{port}"

    def start(self) -> None:
        self._thread.start()

    def close(self) -> None:
        self._server.shutdown()
        self._server.server_close()


def _handler(registry: CollectorRegistry, health: Probe, ready: Probe) -> type[BaseHTTPRequestHandler]:
    probes = {"/healthz": health, "/readyz": ready}

    class Handler(BaseHTTPRequestHandler):
        server_version = "rollup"

        def log_message(self, format: str, *args: Any) -> None:
            log.debug("http: " + format, *args)

        def do_GET(self) -> None:
            path = self.path.split("?", 1)[0]
            try:
                if path == "/metrics":
                    encoder, content_type = choose_encoder(self.headers.get("Accept", ""))
                    self._answer(200, encoder(registry), content_type)
                elif path in probes:
                    good, body = probes[path]()
                    self._answer(200 if good else 503, orjson.dumps(body), "application/json")
                else:
                    known = {"endpoints": ["/healthz", "/readyz", "/metrics"]}
                    self._answer(404, orjson.dumps(known), "application/json")
            except Exception:
                log.exception("http: %s failed", path, extra={"event": "http_error"})
                self._answer(500, b'{"error": "internal error, see the service log"}', "application/json")

        def _answer(self, status: int, body: bytes, content_type: str) -> None:
            self.send_response(status)
            self.send_header("Content-Type", content_type)
            self.send_header("Content-Length", str(len(body)))
            self.send_header("Cache-Control", "no-store")
            self.end_headers()
            self.wfile.write(body)

    return Handler
