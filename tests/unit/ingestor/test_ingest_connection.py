"""The websocket loop on loopback: keep-alives when quiet, the silence watchdog, planned rotation."""

from __future__ import annotations

import dataclasses
import threading
import time
from collections.abc import Iterator

import pytest
from websockets.asyncio.server import ServerConnection

from ingestor.connection import Backoff, LiveClient
from ingestor.venues import venue
from tests.ws_loopback import LoopbackWebsocketServer


class QuietServer(LoopbackWebsocketServer):
    """Accepts connections on 127.0.0.1, records what clients send, sends one frame, then stays quiet."""

    def __init__(self) -> None:
        super().__init__()
        self.received: list[str] = []
        self.connections = 0

    async def _handler(self, ws: ServerConnection) -> None:
        self.connections += 1
        await ws.send('{"event":"subscribe","arg":{"channel":"trades","instId":"BTC-USDT"}}')
        async for message in ws:
            self.received.append(str(message))



@pytest.fixture
def server() -> Iterator[QuietServer]:
    s = QuietServer()
    s.start()
    yield s
    s.stop()


def run_client(client: LiveClient, seconds: float) -> None:
    thread = threading.Thread(target=client.run, daemon=True)
    thread.start()
    time.sleep(seconds)
    client.close()
    thread.join(10)
    assert not thread.is_alive()


def test_quiet_line_gets_keepalives_then_the_watchdog_reconnects(server: QuietServer) -> None:
    spec = dataclasses.replace(venue("okx"), keepalive_after_s=0.3)
    events: list[str] = []
    frames: list[str | bytes] = []
    client = LiveClient(spec, ["BTC-USDT"], lambda raw, _ms: frames.append(raw), lambda k, _d: events.append(k),
                        url=f"ws://127.0.0.1:{server.port}", watchdog_s=1.6, backoff=Backoff(0.05, 2.0, 0.2))
    run_client(client, 4.0)
    assert server.received.count("ping") >= 2  # OKX's text keep-alive while quiet
    assert any('"op":"subscribe"' in m for m in server.received)  # subscribed on every connection
    assert "stale" in events and "reconnect" in events
    assert server.connections >= 2 and len(frames) == server.connections


def test_connection_is_rotated_before_its_limit_without_a_disconnect(server: QuietServer) -> None:
    spec = dataclasses.replace(venue("binance"), max_connection_s=0.8)
    events: list[str] = []
    client = LiveClient(spec, ["BTC-USDT"], lambda _raw, _ms: None, lambda k, _d: events.append(k),
                        url=f"ws://127.0.0.1:{server.port}", watchdog_s=60)
    run_client(client, 2.5)
    assert server.connections >= 3
    assert set(events) == {"reconnect"} and len(events) == server.connections - 1
