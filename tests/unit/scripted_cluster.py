"""A scripted Elasticsearch/OpenSearch HTTP endpoint on 127.0.0.1, for the sinks' error paths.

It answers what a test scripts, per kind of request, and records every request. The real client
libraries talk to it over real sockets, so their own error handling is part of what is tested.
"""

from __future__ import annotations

import gzip
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import orjson

Answer = tuple[int, Any] | str
"""``(status, JSON body)``, ``"drop"`` (close the connection without answering) or ``"slow"``
(answer 200 after ``Cluster.slow_seconds``)."""


@dataclass
class Request:
    method: str
    path: str
    headers: dict[str, str]
    body: bytes

    @property
    def kind(self) -> str:
        if self.path.startswith("/_bulk"):
            return "bulk"
        if self.path.startswith("/_index_template/"):
            return "get_template" if self.method == "GET" else "put_template"
        if self.path.split("?")[0].endswith("/_mapping"):
            return "put_mapping"
        return "info" if self.path.split("?")[0] == "/" else "other"

    def documents(self) -> list[tuple[dict[str, Any], dict[str, Any]]]:
        """A bulk body as (action, document) pairs."""
        lines = [orjson.loads(line) for line in self.body.splitlines() if line]
        return list(zip(lines[::2], lines[1::2], strict=True))


def created(request: Request) -> Answer:
    """Every document of a bulk request accepted."""
    items = [
        {"index": {"_index": a["index"]["_index"], "_id": a["index"]["_id"], "status": 201}}
        for a, _ in request.documents()
    ]
    return 200, {"errors": False, "took": 1, "items": items}


def item_statuses(
    *statuses: int, error_type: str = "document_parsing_exception"
) -> Callable[[Request], Answer]:
    """A bulk answer giving the n-th document the n-th status (the last one repeats)."""

    def answer(request: Request) -> Answer:
        items = []
        for n, (action, _) in enumerate(request.documents()):
            status = statuses[min(n, len(statuses) - 1)]
            outcome: dict[str, Any] = {
                "_index": action["index"]["_index"],
                "_id": action["index"]["_id"],
                "status": status,
            }
            if status >= 300:
                outcome["error"] = {"type": error_type, "reason": f"refused document {n}"}
            items.append({"index": outcome})
        return 200, {"errors": any(s >= 300 for s in statuses), "took": 1, "items": items}

    return answer


def error(status: int, kind: str, reason: str) -> Answer:
    return status, {
        "error": {"root_cause": [{"type": kind, "reason": reason}], "type": kind, "reason": reason},
        "status": status,
    }


INFO: Answer = (
    200,
    {
        "name": "scripted",
        "cluster_name": "test",
        "version": {"number": "8.15.0"},
        "tagline": "You Know, for Search",
    },
)


@dataclass
class Cluster:
    """Scripted answers per request kind: each list is consumed in order, its last entry repeats."""

    answers: dict[str, list[Answer | Callable[[Request], Answer]]] = field(
        default_factory=lambda: {
            "info": [INFO],
            "get_template": [
                error(404, "resource_not_found_exception", "index template matching [x] not found")
            ],
            "put_template": [(200, {"acknowledged": True})],
            "put_mapping": [error(404, "index_not_found_exception", "no such index")],
            "bulk": [created],
        }
    )
    requests: list[Request] = field(default_factory=list)
    slow_seconds: float = 1.0
    url: str = ""
    _server: ThreadingHTTPServer | None = None

    def script(self, kind: str, *answers: Answer | Callable[[Request], Answer]) -> None:
        self.answers[kind] = list(answers)

    def of_kind(self, kind: str) -> list[Request]:
        return [request for request in self.requests if request.kind == kind]

    def _next(self, request: Request) -> Answer:
        queue = self.answers.get(request.kind) or [(200, {})]
        answer = queue.pop(0) if len(queue) > 1 else queue[0]
        return answer(request) if callable(answer) else answer

    def start(self) -> None:
        cluster = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"
            wbufsize = -1  # headers and body in one send: no Nagle / delayed-ACK stall per answer

            def log_message(self, format: str, *args: Any) -> None:  # quiet
                pass

            def _handle(self) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                body = self.rfile.read(length) if length else b""
                if self.headers.get("Content-Encoding") == "gzip":
                    body = gzip.decompress(body)
                request = Request(
                    self.command, self.path, {k.lower(): v for k, v in self.headers.items()}, body
                )
                cluster.requests.append(request)
                answer = cluster._next(request)
                if answer == "drop":
                    self.close_connection = True
                    return
                if answer == "slow":
                    time.sleep(cluster.slow_seconds)
                    answer = (200, {})
                assert not isinstance(answer, str)
                status, payload = answer
                data = orjson.dumps(payload)
                try:
                    self.send_response(status)
                    self.send_header("Content-Type", "application/json")
                    self.send_header("X-Elastic-Product", "Elasticsearch")
                    self.send_header("Content-Length", str(len(data)))
                    self.end_headers()
                    if self.command != "HEAD":
                        self.wfile.write(data)
                except (BrokenPipeError, ConnectionResetError):
                    self.close_connection = True  # the client gave up waiting ("slow")

            do_GET = do_PUT = do_POST = do_DELETE = do_HEAD = _handle  # noqa: N815 - http.server's names

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._server.daemon_threads = True
        self.url = f"http://127.0.0.1:{self._server.server_address[1]}"
        threading.Thread(target=self._server.serve_forever, args=(0.01,), daemon=True).start()

    def stop(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
