"""The live view's HTTP server (standard library): the page, its JSON state and a health probe.

- ``GET /``           the page; the current state is inlined, so it renders without a request
- ``GET /api/state``  the state as JSON (the page polls it)
- ``GET /healthz``    ``{"ok": true, ...}`` while the Kafka feed runs; 503 once it failed

A connection that sends no complete request within ``request_timeout_s`` (10 s) is closed, so idle
clients do not hold a thread each; a client that goes away mid-response is logged at debug level.
"""

from __future__ import annotations

import json
import logging
import sys
from functools import cache
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from importlib import resources
from typing import Any

from tickflow.view.feed import TopicFeed
from tickflow.view.state import ViewState

log = logging.getLogger(__name__)


@cache
def _template() -> str:
    return resources.files("tickflow.view").joinpath("page.html").read_text(encoding="utf-8")


def render_page(state: dict[str, Any], poll_ms: int) -> str:
    """The page with ``state`` inlined (``</`` escaped so that no value can close the script tag)."""
    inline = json.dumps(state).replace("</", "<\\/")
    return _template().replace("__INITIAL_STATE__", inline).replace("__POLL_MS__", str(int(poll_ms)))


class ViewServer(ThreadingHTTPServer):
    daemon_threads = True
    request_timeout_s = 10.0  # per socket operation of a request: reading it, writing the answer

    def __init__(self, host: str, port: int, state: ViewState, feed: TopicFeed | None, source: str,
                 poll_ms: int = 1000) -> None:
        super().__init__((host, port), _Handler)
        self.state = state
        self.feed = feed
        self.source = source
        self.poll_ms = poll_ms

    def snapshot(self) -> dict[str, Any]:
        return {**self.state.snapshot(), "source": self.source}

    def handle_error(self, request: Any, client_address: Any) -> None:
        """A client that went away or timed out is routine; anything else is a bug and logged with its trace."""
        err = sys.exc_info()[1]
        if isinstance(err, ConnectionError | TimeoutError):
            log.debug("view client %s: %s", client_address, err)
            return
        log.exception("The view failed on a request from %s.", client_address)


class _Handler(BaseHTTPRequestHandler):
    server: ViewServer

    def setup(self) -> None:
        super().setup()
        self.connection.settimeout(self.server.request_timeout_s)

    def do_GET(self) -> None:
        path = self.path.split("?", 1)[0]
        if path in ("/", "/index.html"):
            self._send(HTTPStatus.OK, "text/html; charset=utf-8",
                       render_page(self.server.snapshot(), self.server.poll_ms).encode())
        elif path == "/api/state":
            self._send(HTTPStatus.OK, "application/json", json.dumps(self.server.snapshot()).encode())
        elif path == "/healthz":
            feed = self.server.feed
            failed = feed is not None and feed.error is not None
            body = {"ok": not failed, "records": sum(self.server.state.counts.values()),
                    "error": str(feed.error) if feed is not None and feed.error is not None else None}
            status = HTTPStatus.SERVICE_UNAVAILABLE if failed else HTTPStatus.OK
            self._send(status, "application/json", json.dumps(body).encode())
        else:
            self._send(HTTPStatus.NOT_FOUND, "text/plain; charset=utf-8", b"not found\n")

    def _send(self, status: HTTPStatus, ctype: str, body: bytes) -> None:
        self.send_response(status)
        self.send_header("Content-Type", ctype)
        self.send_header("Content-Length", str(len(body)))
        self.send_header("Cache-Control", "no-store")
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, format: str, *args: Any) -> None:
        log.debug("view %s - %s", self.address_string(), format % args)
