"""Shared by the book tests: the bundled recordings, read as (kind, raw, recv_ms) frames, and a sink that
keeps what a book feed publishes."""

from __future__ import annotations

import gzip
import json
from dataclasses import dataclass, field
from pathlib import Path

from contracts.books import BookUpdate
from contracts.messages import DeadLetter, MarketEvent
from ingestor.books.feed import BookFeed
from ingestor.venues import venue

DATA = Path(__file__).resolve().parents[3] / "data"
BINANCE = next((DATA / "ticks").glob("binance_spot_btcusdt_*_timed.jsonl.gz"))
OKX = DATA / "ws_samples" / "recorded" / "okx_v5_public_20220513_recv_raw.jsonl.gz"
COINBASE = next((DATA / "ws_samples" / "recorded").glob("coinbase_advanced_20260809_*.jsonl.gz"))


@dataclass
class Frame:
    kind: str
    raw: str
    recv_ms: int
    symbol: str | None = None


def timed_frames(path: Path) -> list[Frame]:
    """A ``{"recv_ts_ns","kind","raw"}`` recording."""
    out = []
    with gzip.open(path, "rt") as f:
        for line in f:
            rec = json.loads(line)
            out.append(Frame(rec["kind"], rec["raw"], rec["recv_ts_ns"] // 1_000_000, rec.get("symbol")))
    return out


def raw_frames(path: Path) -> list[Frame]:
    """A recording of raw frames, one a line (receive times: the line number)."""
    with gzip.open(path, "rt") as f:
        return [Frame("ws", line.rstrip("\n"), i) for i, line in enumerate(f) if line.strip()]


@dataclass
class Sink:
    books: list[BookUpdate] = field(default_factory=list)
    events: list[MarketEvent] = field(default_factory=list)
    dead: list[DeadLetter] = field(default_factory=list)
    resyncs: list[tuple[str, str]] = field(default_factory=list)

    def book(self, update: BookUpdate) -> None:
        self.books.append(update)

    def event(self, e: MarketEvent) -> None:
        self.events.append(e)

    def dead_letter(self, d: DeadLetter) -> None:
        self.dead.append(d)

    def resync(self, exchange: str, venue_symbol: str) -> None:
        self.resyncs.append((exchange, venue_symbol))

    def kinds(self) -> list[str]:
        return [e.kind for e in self.events]


def run(venue_name: str, frames: list[Frame], snapshot_every: int = 1_000) -> tuple[BookFeed, Sink]:
    sink = Sink()
    feed = BookFeed(venue(venue_name), sink, snapshot_every)
    for f in frames:
        feed.on_frame(f.raw, f.recv_ms, f.kind, f.symbol)
    return feed, sink
