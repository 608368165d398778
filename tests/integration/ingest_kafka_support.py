"""Helpers of the ingestor's integration tests: a loopback websocket server, topic reading, bars."""

from __future__ import annotations

import asyncio
import csv
import gzip
import json
import time
from collections.abc import Callable

from confluent_kafka import KafkaException
from websockets.asyncio.server import ServerConnection

from contracts import DeadLetter, MarketEvent, Trade, decode
from contracts.topic_reader import end_offsets, read_to_end
from contracts.topics import MARKET_EVENTS, MARKET_TRADES
from tests.helpers import DATA
from tests.ws_loopback import LoopbackWebsocketServer

TICKS = DATA / "ticks"
TRADES_CSV = next(TICKS.glob("BTCUSDT-trades-*.csv"))
FRAMES = next(TICKS.glob("binance_spot_btcusdt_*_timed.jsonl.gz"))
N_TRADES = 19_904


def recorded_ws_frames() -> list[str]:
    """The raw websocket frames of the recording, in arrival order (the REST snapshot left out)."""
    with gzip.open(FRAMES, "rt") as f:
        return [d["raw"] for d in map(json.loads, f) if d["kind"] == "ws"]


def csv_trades() -> list[tuple[int, float, float, int, str]]:
    """(id, price, qty, time, taker side) of the Binance dump, read independently of tickflow."""
    with TRADES_CSV.open() as f:
        return [(int(r[0]), float(r[1]), float(r[2]), int(r[4]), "sell" if r[5] == "True" else "buy")
                for r in csv.reader(f)]


# A plan: for connection number n (0, 1, ...), the slice of frames to send, then whether to close.
Plan = Callable[[int], tuple[int, int, bool]]


class LoopbackServer(LoopbackWebsocketServer):
    """A websocket server on 127.0.0.1 that sends recorded frames to each connection by a plan."""

    serve_options = {"compression": None, "max_queue": None}

    def __init__(self, frames: list[str], plan: Plan) -> None:
        super().__init__()
        self.frames, self.plan = frames, plan
        self.connections = 0
        self.opened_at: list[float] = []
        self.closed_at: list[float] = []
        self.sent = 0

    async def _handler(self, ws: ServerConnection) -> None:
        n = self.connections
        self.connections += 1
        self.opened_at.append(time.monotonic())
        start, end, close = self.plan(n)
        for i, frame in enumerate(self.frames[start:end]):
            await ws.send(frame)
            self.sent += 1
            if not i % 500:
                await asyncio.sleep(0)
        if close:
            self.closed_at.append(time.monotonic())
            await ws.close()
            return
        await ws.wait_closed()

    def __enter__(self) -> LoopbackServer:
        self.start()
        return self

    def __exit__(self, *_exc: object) -> None:
        self.stop()

    @property
    def url(self) -> str:
        return f"ws://127.0.0.1:{self.port}/stream?streams=btcusdt@trade"


class Marks:
    """The end offsets of the ingestor's topics now: read what a test adds after this point, once what
    wrote it has flushed (to the end offsets then, so no idle wait: an extra record shows in the count)."""

    def __init__(self, bootstrap: str) -> None:
        self.bootstrap = bootstrap
        self.start = {name: self._ends(name) for name in (MARKET_TRADES.name, MARKET_EVENTS.name,
                                                          MARKET_TRADES.dlq.name)}

    def _ends(self, topic: str) -> dict[int, int]:
        deadline = time.monotonic() + 30  # a fresh broker may still be electing partition leaders
        while True:
            try:
                return end_offsets(self.bootstrap, topic)
            except KafkaException:
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.5)

    def read(self, topic: str) -> list[bytes]:
        return [m.value() or b"" for m in read_to_end(self.bootstrap, topic, start=self.start[topic])]

    def trades(self) -> list[Trade]:
        return [decode(v, Trade) for v in self.read(MARKET_TRADES.name)]

    def events(self) -> list[MarketEvent]:
        return [decode(v, MarketEvent) for v in self.read(MARKET_EVENTS.name)]

    def dead_letters(self) -> list[DeadLetter]:
        return [decode(v, DeadLetter) for v in self.read(MARKET_TRADES.dlq.name)]


def minute_bars(trades: list[tuple[int, float, float, int]]) -> dict[int, tuple[float, float, float, float, float]]:
    """1-minute OHLCV of (id, price, size, ts) in trade-id order."""
    bars: dict[int, list[float]] = {}
    for _id, price, size, ts in sorted(trades):
        minute = ts - ts % 60_000
        bar = bars.get(minute)
        if bar is None:
            bars[minute] = [price, price, price, price, size]
        else:
            bar[1] = max(bar[1], price)
            bar[2] = min(bar[2], price)
            bar[3] = price
            bar[4] += size
    return {m: (b[0], b[1], b[2], b[3], b[4]) for m, b in bars.items()}
