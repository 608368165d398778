"""An HTTP server on 127.0.0.1 in a thread of its own that serves one recorded body (a venue's REST
depth snapshot), for tests of the live client's snapshot fetcher."""

from __future__ import annotations

import contextlib
import http.server
import threading
from collections.abc import Iterator


@contextlib.contextmanager
def serve_body(body: str, fail_first: int = 0) -> Iterator[tuple[str, list[str]]]:
    """Yield the server's base URL and the list of paths asked for; the first ``fail_first`` requests get a 503."""
    asked: list[str] = []
    data = body.encode()

    class Handler(http.server.BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            asked.append(self.path)
            self.send_response(503 if len(asked) <= fail_first else 200)
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        def log_message(self, *_args: object) -> None:
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}", asked
    finally:
        server.shutdown()
        server.server_close()
