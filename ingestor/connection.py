"""The websocket loop every live venue shares (websocket-client).

- Reconnects with exponential backoff and jitter, bounded by ``Backoff.cap_s``; the attempt count
  resets once a connection delivers a frame.
- A silence watchdog: no frame for ``watchdog_s`` means a stale feed; the connection is dropped and
  reopened.
- Keep-alives: the venue's text (OKX ``ping``, Kraken JSON ping) after ``keepalive_after_s`` of silence;
  websocket-client answers the server's pings (Binance) with pongs.
- Rotation: a connection older than the venue's limit (Binance: 24 h) is replaced before the server
  cuts it. Subscriptions are sent again on every connection.

Frames go to ``on_frame(raw, recv_ms)``; connection changes to ``on_event(kind, detail)``.
"""

from __future__ import annotations

import logging
import random
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass

import websocket

from contracts.messages import EventKind
from contracts.timeutil import now_ms
from ingestor.venues.base import VenueSpec

log = logging.getLogger(__name__)

TICK_S = 0.5  # how often a quiet loop looks at the clock and the stop flag


@dataclass(frozen=True)
class Backoff:
    base_s: float = 0.5
    factor: float = 2.0
    cap_s: float = 30.0

    def delay(self, attempt: int, rng: random.Random) -> float:
        """Attempt 0, 1, 2 ... -> a delay in [d/2, d] with d = min(cap, base * factor**attempt)."""
        d = min(self.cap_s, self.base_s * self.factor ** min(attempt, 60))
        return rng.uniform(d / 2, d)


class LiveClient:
    def __init__(self, spec: VenueSpec, symbols: list[str], on_frame: Callable[[str | bytes, int], None],
                 on_event: Callable[[EventKind, str], None], *, url: str | None = None,
                 backoff: Backoff | None = None, watchdog_s: float = 60.0, stop: threading.Event | None = None,
                 seed: int | None = None) -> None:
        self.spec = spec
        self.symbols = [spec.venue_symbol(s) for s in symbols]
        self.url = url or spec.url(self.symbols)
        self.on_frame = on_frame
        self.on_event = on_event
        self.backoff = backoff or Backoff()
        self.watchdog_s = watchdog_s
        self.stop = stop or threading.Event()
        self.rng = random.Random(seed)
        self.connections = 0
        self._ws: websocket.WebSocket | None = None

    def run(self) -> None:
        """Connect, read, reconnect, until ``stop`` is set."""
        attempt = 0
        while not self.stop.is_set():
            try:
                ws = websocket.create_connection(self.url, timeout=10, enable_multithread=True)
            except (OSError, websocket.WebSocketException) as err:
                delay = self.backoff.delay(attempt, self.rng)
                attempt += 1
                log.warning("Could not connect to %s (%s); retrying in %.1fs.", self.url, err, delay)
                self.stop.wait(delay)
                continue
            self.connections += 1
            if self.connections > 1:
                self.on_event("reconnect", f"connection {self.connections} to {self.url}")
            else:
                log.info("Connected to %s for %s.", self.url, ", ".join(self.symbols))
            self._ws = ws
            try:
                for text in self.spec.subscribe(self.symbols):
                    ws.send(text)
                got_frames, why, kind = self._read(ws)
            except (OSError, websocket.WebSocketException) as err:
                got_frames, why, kind = False, f"could not subscribe: {err}", "disconnect"
            finally:
                self._ws = None
                ws.close(timeout=1)
            if self.stop.is_set():
                break
            if got_frames:
                attempt = 0
            if kind == "reconnect":  # a planned rotation: straight back (the new connection says so)
                log.info("%s: %s.", self.spec.name, why)
                continue
            self.on_event(kind, why)
            delay = self.backoff.delay(attempt, self.rng)
            attempt += 1
            log.info("Reconnecting to %s in %.2fs.", self.url, delay)
            self.stop.wait(delay)

    def _read(self, ws: websocket.WebSocket) -> tuple[bool, str, EventKind]:
        ws.settimeout(TICK_S)
        opened = last = time.monotonic()
        pings = 0
        got = False
        while not self.stop.is_set():
            now = time.monotonic()
            if self.spec.max_connection_s and now - opened >= self.spec.max_connection_s:
                return got, f"rotating the connection after {now - opened:.0f}s, before the server cuts it", "reconnect"
            try:
                raw = ws.recv()
            except websocket.WebSocketTimeoutException:
                now = time.monotonic()
                silent = now - last
                if silent >= self.watchdog_s:
                    return got, f"no frame for {silent:.1f}s: the feed is stale", "stale"
                if silent >= self.spec.keepalive_after_s * (pings + 1):
                    text = self.spec.keepalive(pings)
                    pings += 1
                    if text is not None:
                        ws.send(text)
                continue
            except (OSError, websocket.WebSocketException) as err:
                return got, f"connection lost: {err or type(err).__name__}", "disconnect"
            if raw == "" and not ws.connected:
                return got, "the server closed the connection", "disconnect"
            last = time.monotonic()
            pings = 0
            got = True
            self.on_frame(raw, now_ms())
        return got, "stopped", "disconnect"

    def send(self, text: str) -> bool:
        """Send a frame on the open connection (False when there is none or it fails)."""
        ws = self._ws
        try:
            if ws is not None:
                ws.send(text)
                return True
        except (OSError, websocket.WebSocketException) as err:
            log.warning("Could not send to %s: %s.", self.url, err)
        return False

    def close(self) -> None:
        self.stop.set()
        ws = self._ws
        if ws is not None:
            ws.abort()
