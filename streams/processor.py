"""What the Faust worker does with a batch of trade records, without Kafka: pure and deterministic.

``Processor.apply(records)`` decodes raw ``market.trades`` values, updates the bar state of their keys,
computes features for every closed bar and returns the records to publish: bars, feature vectors,
``late`` market events and dead letters. Each key's state remembers the offset of the last trade it
applied, so a trade re-delivered after a crash is skipped: at-least-once delivery plus this check and
deterministic outputs make the published records idempotent (the same key and window always give the
same record). ``take_dirty`` hands out, and the ``loader`` given at construction hands back, the bytes
kept in the Faust table.

A trade produced twice (a replay run again, an ingestor restarted on the same data) is a new record with
new offsets. Each key's state also keeps the highest numeric trade id it applied: a trade whose id is at or
below it is dropped and counted (``duplicates``), the rule the ingestor's sequencer applies per venue
symbol (Binance, Coinbase, Kraken and OKX number trades upwards per product). Constant memory per key, and
restored with the state after a restart. Trades with non-numeric ids are not checked.

Book features (schema v2): ``apply_books`` queues each key's ``market.books`` records on its
``BookTrack`` (``streams.features.book_features``), and a closing bar reads the book as of its end. Trades
wait until the books have caught up with them (``streams.book_gate``), so a bar's book features do not
depend on how the two topics interleaved in the worker's reads.

Live keys' bars close on the wall clock (``advance_live``); ``close_ahead`` does that work a few
milliseconds before they are due and holds the records back (``streams.close_ahead``), undoing it for a
key if a trade that still counts in them arrives meanwhile, so what is published equals closing on time.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any

import msgspec

from contracts import V1, Bar, ContractError, DeadLetter, FeatureVector, MarketEvent, SourceOffset, Trade, decode
from contracts.books import BookUpdate
from contracts.feature_schema import STREAMS_SCHEMA, V2
from contracts.serde import encode
from contracts.topics import MARKET_BOOKS, MARKET_EVENTS, MARKET_TRADES, SIGNALS_BARS, SIGNALS_FEATURES, market_key
from streams.bars import NO_WATERMARK, ClosedBar, KeyBars
from streams.book_gate import BookGate
from streams.close_ahead import CloseAhead, Held
from streams.features.book_features import NO_BOOK, BookTrack
from streams.features.engine import FeatureEngine
from streams.spec import DEFAULT_BOOK_BACKLOG_MAX

log = logging.getLogger(__name__)

_SOURCE = MARKET_TRADES.name
_DLQ = MARKET_TRADES.dlq.name
_BOOKS = MARKET_BOOKS.name
_BOOKS_DLQ = MARKET_BOOKS.dlq.name


@dataclass(frozen=True, slots=True)
class Output:
    """One record to publish: topic, key, value, partition (None: the producer's partitioner)."""

    topic: str
    key: bytes | None
    value: bytes
    partition: int | None


@dataclass(slots=True)
class KeyState:
    """Everything the worker keeps for one ``exchange:symbol``."""

    exchange: str
    symbol: str
    bars: KeyBars
    engines: dict[int, FeatureEngine]
    partition: int = -1
    last_offset: int = -1
    lag_ms: int = 2**62  # wall-clock arrival minus event time of the newest trade (live detection)
    late_pending: int = 0
    last_id: int = -1  # the highest numeric trade id applied
    # encoded engine states, reused until the engine changes (engines change once per bar, trades far more often)
    encoded: dict[int, bytes] = field(default_factory=dict)

    def to_bytes(self) -> bytes:
        enc = self.encoded
        for i, e in self.engines.items():
            if i not in enc:
                enc[i] = msgspec.msgpack.encode(e.to_builtins())
        return msgspec.msgpack.encode({
            "x": self.exchange, "s": self.symbol, "p": self.partition, "o": self.last_offset, "l": self.lag_ms,
            "t": self.last_id, "b": self.bars.to_builtins(),
            "e": [[i, msgspec.Raw(enc[i])] for i in sorted(self.engines)]})

    @classmethod
    def from_bytes(cls, data: bytes) -> KeyState:
        s: dict[str, Any] = msgspec.msgpack.decode(data)
        return cls(s["x"], s["s"], KeyBars.from_builtins(s["b"]),
                   {int(i): FeatureEngine.from_builtins(e) for i, e in s["e"]}, s["p"], s["o"], s["l"],
                   last_id=s.get("t", -1))  # states stored before trade ids were kept have none


class Processor:
    """Bars and features for every key seen; the state of each key is independent of the others.

    ``loader`` returns the stored state of a key not in memory (None: the key is new). With ``books``, the
    worker also hands over its ``market.books`` records (``apply_books``, ``books_at_end``) and trades wait
    for the books to catch up with them (``streams.book_gate``); without, book features are null.
    """

    def __init__(self, intervals_s: tuple[int, ...], grace_ms: int,
                 loader: Callable[[bytes], bytes | None] | None = None, books: bool = False,
                 book_backlog_max: int = DEFAULT_BOOK_BACKLOG_MAX) -> None:
        self.intervals_s = intervals_s
        self.grace_ms = grace_ms
        self.book_backlog_max = book_backlog_max
        self.loader = loader
        self.keys: dict[bytes, KeyState] = {}
        self._market_keys: dict[tuple[str, str], bytes] = {}
        self.books: dict[bytes, BookTrack] = {}  # rebuilt from market.books, not stored in the table
        self._restored: dict[bytes, int] = {}  # the trade watermark in the table of a key with books, not loaded
        self.gate = BookGate(grace_ms) if books else None
        self.dirty: set[bytes] = set()
        self.ahead = CloseAhead(grace_ms)  # keys whose bars were closed ahead of time
        self.skipped = 0  # re-delivered trades (offset already applied)
        self.duplicates = 0  # trades produced again (trade id already applied)
        self.late = 0
        self.behind: set[int] = set()  # trade partitions not read to their end since they were assigned

    def catching_up(self, partitions: Iterable[int]) -> None:
        """``partitions`` were just assigned and are read from their committed offsets: their keys are not live
        until ``caught_up``. A backlog (a rebalance's pause under live load) holds trades whose windows a
        wall-clock close would shut before they are applied: they would be dropped as late."""
        self.behind = set(partitions)

    def caught_up(self, partition: int) -> None:
        """``partition`` was read to its end: its keys are live again when their trades are recent."""
        self.behind.discard(partition)

    def _live(self, ks: KeyState, live_lag_ms: int) -> bool:
        return ks.lag_ms <= live_lag_ms and ks.partition not in self.behind

    def key(self, exchange: str, symbol: str) -> bytes:
        """``market_key(exchange, symbol)``, made once per market."""
        key = self._market_keys.get((exchange, symbol))
        if key is None:
            key = self._market_keys[(exchange, symbol)] = market_key(exchange, symbol)
        return key

    def state(self, key: bytes, exchange: str, symbol: str) -> KeyState:
        ks = self.keys.get(key)
        if ks is None and self.loader is not None:
            stored = self.loader(key)
            if stored is not None:
                self.load_state(key, stored)
                ks = self.keys.get(key)
        if ks is None:
            ks = self.keys[key] = KeyState(exchange, symbol, KeyBars(self.intervals_s, self.grace_ms),
                                           {i: FeatureEngine() for i in self.intervals_s})
        return ks

    def _stored_watermark(self, key: bytes) -> int:
        """The trade watermark of the key's state in the table, read but not installed: the key is loaded when
        its first trade is applied (installed now, its stored lag could make it live and close its bars on
        the wall clock while its trades wait for the books)."""
        stored = None if self.loader is None else self.loader(key)
        if stored is None:
            return NO_WATERMARK
        ks = KeyState.from_bytes(stored)
        return ks.bars.max_ts - self.grace_ms if self._fits(ks) else NO_WATERMARK

    def _fits(self, ks: KeyState) -> bool:
        return ks.bars.intervals_ms == tuple(sorted(i * 1000 for i in self.intervals_s)) \
            and ks.bars.grace_ms == self.grace_ms

    def load_state(self, key: bytes, data: bytes) -> None:
        """Install a key's state from the table; a state built for other intervals or grace is dropped."""
        ks = KeyState.from_bytes(data)
        if not self._fits(ks):
            log.warning("The stored state of %s was built for other intervals or grace; starting it afresh.",
                        key.decode())
            return
        self.keys[key] = ks

    def apply(self, records: Iterable[tuple[int, int, bytes]], now_ms: int) -> list[Output]:
        """Apply ``(partition, offset, raw value)`` trade records in order; return what to publish."""
        out: list[Output] = []
        touched: set[bytes] = set()
        gate = self.gate
        for partition, offset, raw in records:
            try:
                t = decode(raw, Trade)
            except ContractError as err:
                log.warning("Sending %s[%d]@%d to %s: %s", _SOURCE, partition, offset, _DLQ, err)
                dead = DeadLetter(schema_version=V1, source=_SOURCE, raw=raw.decode("utf-8", "replace"),
                                  reason=str(err), ts=now_ms, partition=partition, offset=offset)
                out.append(Output(_DLQ, None, encode(dead), None))
                continue
            key = self.key(t.exchange, t.symbol)
            if gate is not None and not gate.admit(partition, offset, key, t):
                continue
            self._apply_trade(partition, offset, key, t, now_ms, out, touched)
        return self._finish(out, touched)

    def apply_books(self, records: Iterable[tuple[int, int, bytes]], now_ms: int) -> list[Output]:
        """Take ``(partition, offset, raw value)`` book records in order; return what the trades they let
        through publish (and the dead letters of records that are not a BookUpdate)."""
        out: list[Output] = []
        gate = self.gate
        longest = max(self.intervals_s) * 1000
        for partition, offset, raw in records:
            try:
                u = decode(raw, BookUpdate)
            except ContractError as err:
                log.warning("Sending %s[%d]@%d to %s: %s", _BOOKS, partition, offset, _BOOKS_DLQ, err)
                dead = DeadLetter(schema_version=V1, source=_BOOKS, raw=raw.decode("utf-8", "replace"),
                                  reason=str(err), ts=now_ms, partition=partition, offset=offset)
                out.append(Output(_BOOKS_DLQ, None, encode(dead), None))
                continue
            key = self.key(u.exchange, u.symbol)
            track = self.books.get(key)
            if track is None:
                track = self.books[key] = BookTrack(longest, self.book_backlog_max)
                self._restored[key] = self._stored_watermark(key)
            ks = self.keys.get(key)
            # every bar still to close for the key ends after its trade watermark (a trade at or before it is late)
            if track.receive(u, self._restored[key] if ks is None else ks.bars.max_ts - self.grace_ms):
                out.append(self._backlog_event(key, u, track, partition, offset))
            if gate is not None:
                gate.book_read(partition, key, u.ts_event)
        return out + self._release(now_ms)

    def books_at_end(self, partitions: Iterable[int], now_ms: int) -> list[Output]:
        """The books partitions read to their end: their trades wait no longer."""
        if self.gate is None:
            return []
        for p in partitions:
            self.gate.books_at_end(p)
        return self._release(now_ms)

    def first_waiting(self, partition: int) -> int | None:
        """The offset of the first trade of ``partition`` waiting for the books (None: none waits)."""
        return None if self.gate is None else self.gate.first_waiting(partition)

    def forget(self) -> None:
        """Drop every key's state and book (partitions revoked: the table and market.books hold them)."""
        self.keys.clear()
        self.books.clear()
        self._restored.clear()
        if self.gate is not None:
            self.gate.clear()

    def _release(self, now_ms: int) -> list[Output]:
        out: list[Output] = []
        touched: set[bytes] = set()
        if self.gate is not None:
            for partition, offset, key, t in self.gate.release():
                self._apply_trade(partition, offset, key, t, now_ms, out, touched)
        return self._finish(out, touched)

    def _finish(self, out: list[Output], touched: set[bytes]) -> list[Output]:
        for key in touched:
            ks = self.keys[key]
            if ks.late_pending:
                out.append(self._late_event(key, ks))
        self.dirty |= touched
        return out

    def _apply_trade(self, partition: int, offset: int, key: bytes, t: Trade, now_ms: int, out: list[Output],
                     touched: set[bytes]) -> None:
        ks = self.keys.get(key) or self.state(key, t.exchange, t.symbol)
        if ks.partition == partition and offset <= ks.last_offset:
            self.skipped += 1  # re-delivered after a restart: already applied
            return
        tid = t.trade_id
        if tid.isdecimal():  # what int() reads
            n = int(tid)
            # produced again: an id this key applied, at or before the newest event time it applied (ids of
            # another source, such as candle-derived trades after a venue's ticks, come with later times)
            if n <= ks.last_id and t.ts_event <= ks.bars.max_ts:
                self.duplicates += 1
                return
        else:
            n = -1
        ahead = self.ahead
        undo = ahead.before_trade(key, t.ts_event, out) if ahead.held else None  # a replay holds none
        if undo is not None:  # it still counts in a bar closed ahead of time
            ks = self._undo_close_ahead(key, undo, out, touched)
        ks.partition, ks.last_offset = partition, offset
        if n > ks.last_id:
            ks.last_id = n
        if t.ts_event > ks.bars.max_ts:
            ks.lag_ms = now_ms - t.ts_event
        closed: list[ClosedBar] = []
        _, dropped = ks.bars.add(t.ts_event, t.price, t.size, t.side == "buy", partition, offset, closed)
        if dropped:
            ks.late_pending += 1
        if closed:
            self._emit(key, ks, closed, out)
        if ahead.held:
            ahead.applied(key, partition, offset, t, now_ms)
        touched.add(key)

    def advance_live(self, now_ms: int, live_lag_ms: int) -> list[Output]:
        """Close, on the wall clock, the due bars of live keys (newest trade within live_lag_ms of now, its
        partition read to its end since it was assigned), releasing first those closed ahead of time
        (``close_ahead``) that are now due."""
        out: list[Output] = []
        watermark = now_ms - self.grace_ms
        self.dirty.update(self.ahead.release_due(watermark, out))
        for key, ks in self.keys.items():
            if not self._live(ks, live_lag_ms) or self.ahead.wall(key, watermark):
                continue
            closed = ks.bars.advance(watermark)
            if closed:
                self._emit(key, ks, closed, out)
                self.dirty.add(key)
        return out

    def close_ahead(self, due_ms: int, live_lag_ms: int) -> int:
        """Close now the bars of live keys that are due at ``due_ms`` on the wall clock, and hold their records
        back until ``advance_live`` reaches ``due_ms``: the work is done before the bars are due, not after.

        Until then a held key's state is not handed out by ``take_dirty``. A trade for a held key that would
        still count in one of those bars (event time before their end) undoes the close: the key's state
        from before is restored and the trades applied since are applied again, so what is published equals
        what closing at ``due_ms`` gives. A trade whose event time closes them anyway releases them at once.
        Returns how many keys are held.
        """
        watermark = due_ms - self.grace_ms
        for key, ks in self.keys.items():
            if not self._live(ks, live_lag_ms) or key in self.ahead:
                continue
            end = ks.bars.next_close_at()
            if end is None or end > watermark:
                continue
            before = ks.to_bytes()
            outputs: list[Output] = []
            self._emit(key, ks, ks.bars.advance(watermark), outputs)
            self.ahead.hold(key, watermark, before, outputs)
        return len(self.ahead.held)

    def release_held(self) -> list[Output]:
        """Undo every close made ahead of time (on a revoke or a stop); returns what re-applying gives."""
        out: list[Output] = []
        touched: set[bytes] = set()
        for key, held in self.ahead.take_all():
            self._undo_close_ahead(key, held, out, touched)
        self.dirty |= touched
        return out

    def _undo_close_ahead(self, key: bytes, held: Held, out: list[Output], touched: set[bytes]) -> KeyState:
        """Restore the key's state from before the close and apply the trades since again."""
        ks = self.keys[key] = KeyState.from_bytes(held.before)
        for partition, offset, t, then_ms in held.since:
            self._apply_trade(partition, offset, key, t, then_ms, out, touched)
        if held.live_watermark is not None:  # the wall clock moved on meanwhile (short of the held bars)
            closed = ks.bars.advance(held.live_watermark)
            if closed:
                self._emit(key, ks, closed, out)
        return ks

    def next_live_deadline(self, live_lag_ms: int) -> int | None:
        """The wall-clock ms at which the next bar of a live key is due (its end plus grace)."""
        ends = [e for ks in self.keys.values() if self._live(ks, live_lag_ms)
                for e in (ks.bars.next_close_at(),) if e is not None]
        ends += self.ahead.watermarks()
        return min(ends) + self.grace_ms if ends else None

    def take_dirty(self) -> list[tuple[bytes, int, bytes]]:
        """(key, partition, state bytes) of every key changed since the last call, except held keys: their
        state must not be stored before their held records are published."""
        held = self.ahead.unstored(self.dirty)
        rows = [(k, self.keys[k].partition, self.keys[k].to_bytes()) for k in sorted(self.dirty - held)]
        self.dirty = held
        return rows

    def _late_event(self, key: bytes, ks: KeyState) -> Output:
        n, ks.late_pending = ks.late_pending, 0
        self.late += n
        late_by_interval = ", ".join(f"{ims // 1000} s: {c}" for ims, c in zip(ks.bars.intervals_ms, ks.bars.late,
                                                                               strict=True))
        event = MarketEvent(schema_version=V1, exchange=ks.exchange, symbol=ks.symbol, kind="late",
                            ts=max(ks.bars.max_ts, 0), count=n,
                            detail=f"{n} trades arrived after their window closed (grace {self.grace_ms} ms, "
                                   f"up to {_SOURCE}[{ks.partition}]@{ks.last_offset}); dropped so far per "
                                   f"interval: {late_by_interval}")
        log.warning("%s: %s", key.decode(), event.detail)
        return Output(MARKET_EVENTS.name, key, encode(event), ks.partition)

    def _backlog_event(self, key: bytes, u: BookUpdate, track: BookTrack, partition: int, offset: int) -> Output:
        detail = (f"more than {self.book_backlog_max} book records waited for trades (STREAMS__BOOK_BACKLOG_MAX; up "
                  f"to {_BOOKS}[{partition}]@{offset}): the oldest were applied at once, {track.applied_early} so "
                  f"far; bars ending by ts {track.early_until} get null book features")
        log.warning("%s: %s", key.decode(), detail)
        event = MarketEvent(schema_version=V1, exchange=u.exchange, symbol=u.symbol, kind="book_backlog",
                            ts=track.early_until, count=track.applied_early, detail=detail)
        return Output(MARKET_EVENTS.name, key, encode(event), partition)

    def _emit(self, key: bytes, ks: KeyState, closed: list[ClosedBar], out: list[Output]) -> None:
        track = self.books.get(key)
        book_values: dict[tuple[int, int], list[float | None]] = {}
        if track is not None:  # the book only moves forward: advance it through the bars' ends in order
            for b in sorted(closed, key=lambda c: c.window_end):
                book_values[(b.interval_s, b.window_start)] = track.values(b.window_start, b.window_end)
        for b in closed:
            bar = Bar(schema_version=V1, exchange=ks.exchange, symbol=ks.symbol, interval_s=b.interval_s,
                      window_start=b.window_start, window_end=b.window_end, open=b.open, high=b.high, low=b.low,
                      close=b.close, volume=b.volume, vwap=b.vwap, trades=b.trades, buy_volume=b.buy_volume,
                      sell_volume=b.sell_volume)
            out.append(Output(SIGNALS_BARS.name, key, encode(bar), b.partition))
            values = ks.engines[b.interval_s].update(b)
            ks.encoded.pop(b.interval_s, None)
            trade_values = [None if math.isnan(v) else v for v in values]
            ready = None not in trade_values
            features = dict(zip(V2, trade_values + book_values.get((b.interval_s, b.window_start), NO_BOOK),
                                strict=True))
            fv = FeatureVector(schema_version=V1, exchange=ks.exchange, symbol=ks.symbol, interval_s=b.interval_s,
                               ts=b.window_end, feature_schema=STREAMS_SCHEMA, ready=ready, features=features,
                               close=b.close,
                               source=[SourceOffset(_SOURCE, b.partition, b.first_offset),
                                       SourceOffset(_SOURCE, b.partition, b.last_offset)])
            out.append(Output(SIGNALS_FEATURES.name, key, encode(fv), b.partition))
