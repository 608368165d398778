"""Replays into Kafka: Binance trade dumps, recorded websocket frames, and candles expanded to trades.

- ``SYMBOL-trades-*.csv`` (Binance's dump layout, no header): ``contracts.history.binance_dump_trades``.
- ``.jsonl`` / ``.jsonl.gz``: one raw frame per line, or one object per line holding the frame in
  ``raw`` and its receive time in ``recv_ts_ns`` (or ``ts``: seconds, ms or ns); replayed through the
  venue's live parser and the same pipeline as live (sequencer, dead letters, skipped channels).
- candle files (header ``open_time_ms,open,high,low,close,volume``, plain or .gz):
  ``contracts.history.candle_trades``, the deterministic expansion the offline builder also uses.

Input is streamed (memory stays flat however long the file); ``speed`` replays with the original
timing sped up N times, or as fast as the broker takes it (``None``).

Bad input: a row that does not parse goes to ``market.trades.dlq`` (reason ``file:line: why``) and the
replay goes on. A file that cannot be read to its end (a truncated gzip, bytes that are not text)
ends its replay with ``Report.problem`` set: what came before that point was produced and is counted.
An empty file (no trades, no bad rows) is a problem too.
"""

from __future__ import annotations

import gzip
import logging
import re
import threading
import time
import zlib
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import msgspec
from tqdm import tqdm

from contracts.errors import SettingsError
from contracts.history import binance_dump_trades, candle_trades, is_candle_file, open_text, symbol_from_dump_name
from contracts.messages import V1, DeadLetter, Trade
from contracts.serde import encode
from contracts.timeutil import now_ms
from ingestor.books.recorded import book_feed
from ingestor.books.recorded import report as book_report
from ingestor.metrics import Counts
from ingestor.pipeline import MAX_RAW, Pipeline
from ingestor.publisher import Publisher
from ingestor.resume import ResumePoint
from ingestor.venues import VENUES, venue

log = logging.getLogger(__name__)

_CANDLE_NAME = re.compile(r"_([A-Z0-9]+)_\d+[smhd]_")
_INTERVAL = re.compile(r"_(\d+)([smhd])_")
_UNIT_S = {"s": 1, "m": 60, "h": 3600, "d": 86400}
CHUNK = 16_384  # trades between progress updates, polls and stop checks
_UNREADABLE = (EOFError, gzip.BadGzipFile, zlib.error)  # a gzip stream cut short or corrupt


class Recorded(msgspec.Struct):
    """A recorded line: the frame and when it was received."""

    raw: str
    recv_ts_ns: int | None = None
    ts: int | float | None = None
    kind: str = "ws"
    venue: str | None = None  # written by `tickflow ingest record`
    symbol: str | None = None  # a REST depth snapshot's venue symbol


_recorded = msgspec.json.Decoder(Recorded)


@dataclass
class Report:
    path: Path
    mode: str
    counts: Counts = field(default_factory=Counts)
    seconds: float = 0.0
    problem: str | None = None  # why the file was not replayed to its end (or holds nothing)

    @property
    def rate(self) -> float:
        return self.counts.trades / self.seconds if self.seconds > 0 else 0.0


class Pacer:
    """Sleeps so that event times are replayed at ``speed`` times their original pace."""

    def __init__(self, speed: float, stop: threading.Event | None = None) -> None:
        self.speed = speed
        self.stop = stop or threading.Event()  # a stop ends the wait at once
        self.t0_event: int | None = None
        self.t0_wall = 0.0

    def wait(self, ts_ms: int) -> None:
        if self.t0_event is None:
            self.t0_event, self.t0_wall = ts_ms, time.monotonic()
            return
        due = self.t0_wall + (ts_ms - self.t0_event) / 1000.0 / self.speed
        delay = due - time.monotonic()
        if delay > 0:
            self.stop.wait(delay)


def detect(path: Path, from_candles: bool) -> str:
    """``candles``, ``dump`` or ``frames`` for a file."""
    name = path.name.lower()
    if from_candles:
        return "candles"
    if name.endswith((".jsonl", ".jsonl.gz", ".txt")):
        return "frames"
    if symbol_from_dump_name(path):
        return "dump"
    if is_candle_file(path):
        return "candles"
    return "dump"


def venue_from_name(path: Path) -> str | None:
    name = path.name.lower()
    for v in sorted(VENUES, key=len, reverse=True):
        if any(name.startswith(v + sep) or name.startswith(v.replace("_", "") + sep) for sep in "_.-"):
            return v
    return None


def _recorded_venue(path: Path) -> str | None:
    """The venue a `tickflow ingest record` file names on its first line."""
    with open_text(path) as f:
        first = f.readline()
    try:
        name = _recorded.decode(first).venue
    except msgspec.DecodeError:
        return None
    return name if name in VENUES else None


def replay_file(path: Path, publisher: Publisher, *, venue_name: str | None, symbol: str | None,
                speed: float | None, from_candles: bool = False, stop: threading.Event | None = None,
                progress: bool = True, resume: ResumePoint | None = None) -> Report:
    """Replay one file into ``publisher``; the caller flushes. With ``resume``, the trades market.trades
    already holds are skipped (``ingestor.resume``)."""
    if not path.is_file():
        raise SettingsError(f"{path} is not a file")
    stop = stop or threading.Event()
    start = time.perf_counter()
    report = Report(path, "?")
    try:
        report.mode = detect(path, from_candles)
        _replay(path, report, publisher, venue_name, symbol, speed, stop, progress, resume)
    except _UNREADABLE as err:
        report.problem = f"is truncated or not valid gzip ({err})"
    except UnicodeDecodeError as err:
        report.problem = f"is not a text file (byte {err.object[err.start]:#04x} is not UTF-8)"
    c = report.counts
    if report.problem is None and not (c.trades or c.dead_lettered or c.frames or c.skipped):
        report.problem = "is empty: it holds no trades"
    report.seconds = time.perf_counter() - start
    return report


def _replay(path: Path, report: Report, publisher: Publisher, venue_name: str | None, symbol: str | None,
            speed: float | None, stop: threading.Event, progress: bool, resume: ResumePoint | None) -> None:
    mode = report.mode
    pacer = Pacer(speed, stop) if speed else None
    with tqdm(desc=path.name[:40], unit=" trades", unit_scale=True, disable=not progress, mininterval=1.0,
              leave=False) as bar:
        if mode == "frames":
            if resume is not None:
                raise SettingsError(f"--resume replays trade dumps and candle files; {path.name} holds frames")
            name = venue_name or venue_from_name(path) or _recorded_venue(path)
            if name is None:
                raise SettingsError(f"say which venue recorded {path.name} with --venue ({', '.join(VENUES)})")
            _frames(path, Pipeline(venue(name), publisher, report.counts), publisher, pacer, stop, bar)
        else:
            exchange = venue_name or "binance"
            venue_symbol = symbol or symbol_from_dump_name(path) or _candle_symbol(path)
            if not venue_symbol:
                raise SettingsError(f"say which symbol {path.name} holds with --symbol (e.g. BTCUSDT)")

            def bad_row(lineno: int, raw: str, reason: str) -> None:
                report.counts.dead_lettered += 1
                publisher.dead_letter(DeadLetter(schema_version=V1, source=exchange, raw=raw[:MAX_RAW],
                                                 reason=reason, ts=now_ms()))
                log.warning("Dead-lettered %s", reason)

            if mode == "candles":
                trades = candle_trades(path, venue_symbol, _interval_s(path), exchange=exchange, bad_row=bad_row)
            else:
                trades = binance_dump_trades(path, venue_symbol, exchange=exchange, bad_row=bad_row)
            before = resume.skipped if resume else 0
            produce_trades(trades, publisher, pacer, stop, bar, report.counts, resume)
            if resume is not None and resume.skipped > before:
                report.counts.skipped += resume.skipped - before
                report.counts.skipped_by["already on market.trades"] = resume.skipped - before


def produce_trades(trades: Iterator[Trade], publisher: Publisher, pacer: Pacer | None,
                   stop: threading.Event, bar: tqdm, counts: Counts, resume: ResumePoint | None = None) -> None:
    """The hot loop: about 4 microseconds a trade, so nothing here that is not needed. ``counts`` holds
    what was produced even when reading the file fails part way."""
    producer = publisher.producer
    produce = producer.produce
    topic = publisher.trades_topic
    key = b""
    key_symbol = ""
    n = 0
    try:
        for t in trades:
            if t.symbol != key_symbol:
                key_symbol, key = t.symbol, publisher.key(t.exchange, t.symbol)
            if resume is not None and resume.held(key, t):
                continue
            if pacer is not None:
                pacer.wait(t.ts_event)
                if stop.is_set():  # paced, a stop is seen at the next trade, not CHUNK trades later
                    log.warning("Stopping the replay after %d trades, as asked.", n)
                    break
            value = encode(t)
            try:
                produce(topic, value, key)
            except BufferError:
                while True:
                    producer.poll(0.05)
                    try:
                        produce(topic, value, key)
                        break
                    except BufferError:
                        continue
            n += 1
            if not n % CHUNK:
                producer.poll(0)
                bar.update(CHUNK)
                if stop.is_set():
                    log.warning("Stopping the replay after %d trades, as asked.", n)
                    break
    finally:
        bar.update(n % CHUNK)
        publisher.produced += n
        counts.trades += n
        counts.frames += n


def _frames(path: Path, pipeline: Pipeline, publisher: Publisher, pacer: Pacer | None, stop: threading.Event,
            bar: tqdm) -> None:
    counts = pipeline.counts
    shown = 0
    books = book_feed(pipeline.venue, publisher)
    for lineno, raw, recv_ms, kind, book_symbol in recorded_frames(path):
        if kind != "ws":
            if books is not None:
                books.on_frame(raw, recv_ms if recv_ms is not None else now_ms(), kind, book_symbol)
            counts.frames += 1
            counts.skipped += 1
            counts.skipped_by[kind] = counts.skipped_by.get(kind, 0) + 1
            continue
        if recv_ms is None:
            recv_ms = now_ms()
        if pacer is not None:
            pacer.wait(recv_ms)
            if stop.is_set():
                log.warning("Stopping the replay at line %d, as asked.", lineno)
                break
        pipeline.on_frame(raw, recv_ms)
        if books is not None:
            books.on_frame(raw, recv_ms)
        if not lineno % 4096:
            publisher.poll()
            bar.update(counts.trades - shown)
            shown = counts.trades
            if stop.is_set():
                log.warning("Stopping the replay at line %d, as asked.", lineno)
                break
    bar.update(counts.trades - shown)
    book_report(books, path.name)


def recorded_frames(path: Path) -> Iterator[tuple[int, str, int | None, str, str | None]]:
    """(line number, frame, receive ms or None, kind, a REST snapshot's symbol) of each line of a recording;
    the offline builder of recordings (``tickflow.recording``) reads them through this too."""
    with open_text(path) as f:
        for lineno, line in enumerate(f, start=1):
            text = line.rstrip("\r\n")
            if not text:
                continue
            raw, recv_ms, kind, book_symbol = text, None, "ws", None
            if text.startswith("{") and '"raw"' in text:
                try:
                    rec = _recorded.decode(text)
                    raw, kind, book_symbol = rec.raw, rec.kind, rec.symbol
                    recv_ms = _recv_ms(rec)
                except msgspec.DecodeError:
                    pass  # not a recorded-line object: the line is the frame itself
            yield lineno, raw, recv_ms, kind, book_symbol


def _recv_ms(rec: Recorded) -> int | None:
    if rec.recv_ts_ns is not None:
        return rec.recv_ts_ns // 1_000_000
    ts = rec.ts
    if ts is None:
        return None
    if ts < 1e11:  # seconds
        return round(ts * 1000)
    ts = int(ts)
    if ts < 10**14:  # milliseconds
        return ts
    if ts < 10**17:  # microseconds
        return ts // 1000
    return ts // 1_000_000


def _candle_symbol(path: Path) -> str | None:
    match = _CANDLE_NAME.search(path.name)
    return match.group(1) if match else None


def _interval_s(path: Path) -> int:
    match = _INTERVAL.search(path.name)
    return int(match.group(1)) * _UNIT_S[match.group(2)] if match else 60
