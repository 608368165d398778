"""`tickflow ingest record`: raw frames with their receive time to .jsonl.gz, rotated by size or time.

Each line is ``{"recv_ts_ns": ..., "venue": ..., "raw": "<frame exactly as received>"}``, which
`tickflow ingest replay` reads back through the same parser as live. The recorder runs the venue's book
sync on the frames, so that it fetches a REST depth snapshot (Binance) or resubscribes a book when live
would: a fetched snapshot is recorded as ``"kind": "rest_depth_snapshot"`` with its ``"symbol"``. Files are named
``<out stem>.<n>.jsonl.gz`` when rotated (the first keeps the name given).
"""

from __future__ import annotations

import gzip
import logging
import threading
import time
from pathlib import Path
from typing import IO, cast

import msgspec

from contracts.books import BookUpdate
from contracts.messages import DeadLetter, EventKind, MarketEvent
from ingestor.books.feed import BookFeed, has_books
from ingestor.books.snapshots import REST_KIND, SnapshotRequests, with_snapshot_address
from ingestor.connection import LiveClient
from ingestor.venues import venue

log = logging.getLogger(__name__)


class Line(msgspec.Struct, omit_defaults=True):
    recv_ts_ns: int
    venue: str
    raw: str
    kind: str = "ws"
    symbol: str | None = None  # a REST depth snapshot's venue symbol


class SnapshotsOnly:
    """The recorder's book sink: it publishes nothing, it only asks for the snapshots live would."""

    def __init__(self, resync: SnapshotRequests) -> None:
        self.resync = resync.resync

    def book(self, update: BookUpdate) -> None:
        pass

    def event(self, e: MarketEvent) -> None:
        log.info("%s %s: %s (%s).", e.exchange, e.symbol, e.kind, e.detail)

    def dead_letter(self, d: DeadLetter) -> None:
        pass  # recorded as received; the replay dead-letters it


class RotatingWriter:
    def __init__(self, out: Path, venue_name: str, rotate_bytes: int, rotate_s: float) -> None:
        self.out, self.venue = out, venue_name
        self.rotate_bytes, self.rotate_s = rotate_bytes, rotate_s
        self.index = 0
        self.frames = 0
        self.files: list[Path] = []
        self._f: IO[bytes] | None = None
        self._written = 0
        self._opened = 0.0
        self._encoder = msgspec.json.Encoder()

    def _path(self) -> Path:
        if self.index == 0:
            return self.out
        name = self.out.name.removesuffix(".gz").removesuffix(".jsonl")
        return self.out.with_name(f"{name}.{self.index}.jsonl.gz")

    def _open(self) -> IO[bytes]:
        path = self._path()
        path.parent.mkdir(parents=True, exist_ok=True)
        self.files.append(path)
        self._written, self._opened = 0, time.monotonic()
        log.info("Recording %s frames to %s.", self.venue, path)
        return cast(IO[bytes], gzip.open(path, "wb", compresslevel=6))

    def write(self, raw: str | bytes, recv_ms: int, kind: str = "ws", symbol: str | None = None) -> None:
        if self._f is None:
            self._f = self._open()
        elif self._written >= self.rotate_bytes or time.monotonic() - self._opened >= self.rotate_s:
            self._f.close()
            self.index += 1
            self._f = self._open()
        text = raw if isinstance(raw, str) else raw.decode("utf-8", "replace")
        line = self._encoder.encode(Line(time.time_ns(), self.venue, text, kind, symbol)) + b"\n"
        self._f.write(line)
        self._written += len(line)
        self.frames += 1

    def close(self) -> None:
        if self._f is not None:
            self._f.close()
            self._f = None


def run_record(venue_name: str, symbols: list[str], out: Path, *, url: str | None, rotate_bytes: int,
               rotate_s: float, duration_s: float, stop: threading.Event, rest_url: str | None = None) -> int:
    spec = with_snapshot_address(venue(venue_name), url, rest_url)
    writer = RotatingWriter(out, spec.name, rotate_bytes, rotate_s)
    lock = threading.Lock()

    books: BookFeed | None = None

    def on_frame(raw: str | bytes, recv_ms: int) -> None:
        with lock:
            writer.write(raw, recv_ms)
            if books is not None:
                books.on_frame(raw, recv_ms)

    def on_snapshot(raw: str, recv_ms: int, venue_symbol: str) -> None:
        with lock:
            writer.write(raw, recv_ms, REST_KIND, venue_symbol)
            if books is not None:
                books.on_frame(raw, recv_ms, REST_KIND, venue_symbol)

    def on_event(kind: EventKind, detail: str) -> None:
        log.info("%s: %s (%s).", spec.name, kind, detail)
        if kind == "reconnect" and books is not None:
            with lock:
                books.new_connection()

    client = LiveClient(spec, symbols, on_frame, on_event, url=url, stop=stop)
    if has_books(spec):
        books = BookFeed(spec, SnapshotsOnly(SnapshotRequests(spec, on_snapshot, client.send, stop)))
    thread = threading.Thread(target=client.run, name="recorder", daemon=True)
    thread.start()
    deadline = time.monotonic() + duration_s if duration_s > 0 else None
    while not stop.wait(0.5):
        if deadline is not None and time.monotonic() >= deadline:
            break
    client.close()
    thread.join(timeout=15)
    with lock:
        writer.close()
    print(f"recorded {writer.frames:,} frames to {', '.join(str(p) for p in writer.files) or '(nothing)'}")
    return 0
