"""The view's HTTP server: an idle connection is closed after the request timeout (it kept one thread per
idle connection forever), and a client that goes away prints no BrokenPipeError traceback (49 were
printed under test load)."""

from __future__ import annotations

import socket
import struct
import threading
import time
from collections.abc import Iterator

import pytest

from tickflow.view.server import ViewServer
from tickflow.view.state import ViewState


@pytest.fixture
def server() -> Iterator[ViewServer]:
    srv = ViewServer("127.0.0.1", 0, ViewState(), None, source="test")
    srv.request_timeout_s = 0.5
    thread = threading.Thread(target=srv.serve_forever, daemon=True)
    thread.start()
    yield srv
    srv.shutdown()
    srv.server_close()


def test_an_idle_connection_is_closed_after_the_request_timeout(server: ViewServer) -> None:
    with socket.create_connection(("127.0.0.1", server.server_address[1]), timeout=5) as s:
        started = time.monotonic()
        s.sendall(b"GET /api/sta")  # a request that never ends
        assert s.recv(1024) == b""  # closed by the server, not by this socket's 5 s timeout
        assert time.monotonic() - started < 4


def test_clients_that_go_away_print_no_traceback(server: ViewServer, capsys: pytest.CaptureFixture[str]) -> None:
    for _ in range(30):
        s = socket.create_connection(("127.0.0.1", server.server_address[1]), timeout=5)
        s.sendall(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")
        s.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))  # reset, not a clean close
        s.close()
    time.sleep(1.0)
    with socket.create_connection(("127.0.0.1", server.server_address[1]), timeout=5) as s:  # it still serves
        s.sendall(b"GET /healthz HTTP/1.0\r\n\r\n")
        assert s.recv(1024).startswith(b"HTTP/1.0 200")
    err = capsys.readouterr().err
    assert "Traceback" not in err and "BrokenPipeError" not in err and "ConnectionResetError" not in err, err[:2000]
