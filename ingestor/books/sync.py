"""What every venue's book synchronisation shares: per-symbol state, publishing, and breaking a book.

A venue's sync (``binance.py``, ``okx.py``, ...) decides by the venue's rules when a symbol's book is
synchronised and which messages it applies. This module holds the rest: the ``Book``, the snapshot
published at every (re)synchronisation and after every ``snapshot_every`` deltas (split into parts
of at most ``MAX_LEVELS_PER_RECORD`` levels), the crossed-book check after every update, and the
events (``book_gap``, ``resync``, ``checksum_mismatch``, ``crossed_book``) on ``market.events``.

Each symbol is independent: breaking one symbol's book (a gap, a bad checksum) clears that book
alone, publishes nothing more for it until it is synchronised again, and asks the ``BookSink`` for a
fresh snapshot of that symbol alone (Binance: the REST snapshot; the others: resubscribe).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from typing import Protocol

from contracts.book import Book
from contracts.books import MAX_LEVELS_PER_RECORD, BookUpdate
from contracts.messages import V1, EventKind, MarketEvent
from contracts.timeutil import now_ms
from ingestor.venues.base import BookFrame, BookMessage, symbol_of

log = logging.getLogger(__name__)

SNAPSHOT_EVERY = 1_000  # deltas between the periodic snapshots of a symbol


class BookSink(Protocol):
    def book(self, update: BookUpdate) -> None: ...
    def event(self, e: MarketEvent) -> None: ...
    def resync(self, exchange: str, venue_symbol: str) -> None:
        """Ask for a fresh snapshot of one symbol (fetch it, or resubscribe)."""


@dataclass
class SymbolBook:
    """One symbol's book and where its synchronisation stands."""

    venue_symbol: str
    symbol: str
    book: Book
    synced: bool = False
    broken: bool = False  # it was synchronised once and broke: the next sync is a resync
    last_seq: int | None = None  # the venue's sequence of the last update applied
    fresh: bool = False  # just synchronised from a snapshot: the next update only has to bracket it
    counter: int = 0  # the ingestor's own count of published updates (seq where the venue has none)
    deltas: int = 0  # deltas since the last snapshot published
    buffer: list[BookFrame] = field(default_factory=list)  # Binance: diffs waiting for a snapshot
    asked: bool = False  # a snapshot was asked for and has not arrived


@dataclass
class BookCounts:
    updates: int = 0  # book records published (snapshot parts and deltas)
    snapshots: int = 0
    deltas: int = 0
    levels: int = 0  # level changes applied
    gaps: int = 0
    resyncs: int = 0
    checksums: int = 0  # venue checksums verified
    checksum_mismatches: int = 0
    crossed: int = 0
    unsynced: int = 0  # updates not applied because the symbol's book was not synchronised


class VenueSync:
    """Base of the venue syncs: ``on_message`` is the venue's rule, the rest is here."""

    keep_text = False  # keep each level's text (venues whose checksum is over the text)

    def __init__(self, exchange: str, sink: BookSink, counts: BookCounts | None = None,
                 snapshot_every: int = SNAPSHOT_EVERY) -> None:
        if snapshot_every < 1:
            raise ValueError(f"snapshot_every {snapshot_every} must be at least 1")
        self.exchange = exchange
        self.sink = sink
        self.counts = counts or BookCounts()
        self.snapshot_every = snapshot_every
        self.symbols: dict[str, SymbolBook] = {}

    def on_message(self, msg: BookMessage, recv_ms: int) -> None:
        raise NotImplementedError

    def new_connection(self) -> None:
        """A new websocket connection: every book starts again from its snapshot."""
        for st in self.symbols.values():
            self._unsync(st)

    def state(self, venue_symbol: str) -> SymbolBook:
        st = self.symbols.get(venue_symbol)
        if st is None:
            st = self.symbols[venue_symbol] = SymbolBook(venue_symbol, symbol_of(venue_symbol), Book(self.keep_text))
        return st

    # -- applying and publishing ----------------------------------------------------------------------
    def load_snapshot(self, st: SymbolBook, f: BookFrame) -> None:
        """Replace the book with a snapshot's levels (not yet published)."""
        st.book.clear()
        self.apply(st, f)

    def apply(self, st: SymbolBook, f: BookFrame) -> None:
        bids, asks = st.book.bids, st.book.asks
        if f.bids_text is not None and f.asks_text is not None and self.keep_text:
            for (p, s), text in zip(f.bids, f.bids_text, strict=True):
                bids.set(p, s, text)
            for (p, s), text in zip(f.asks, f.asks_text, strict=True):
                asks.set(p, s, text)
        else:
            st.book.apply(f.bids, f.asks)
        self.counts.levels += len(f.bids) + len(f.asks)

    def synced(self, st: SymbolBook, seq: int | None, ts_event: int, recv_ms: int, detail: str,
               checksum: int | None = None) -> None:
        """The book is synchronised: publish it whole (and say so when this is a resync)."""
        st.synced, st.asked, st.last_seq, st.fresh = True, False, seq, True
        if self._crossed(st, ts_event):
            return
        if st.broken:
            st.broken = False
            self.counts.resyncs += 1
            self.event(st, "resync", ts_event, detail=detail)
        self.publish_snapshot(st, ts_event, recv_ms, checksum)

    def publish_snapshot(self, st: SymbolBook, ts_event: int, recv_ms: int, checksum: int | None = None,
                         periodic: bool = False) -> None:
        """The whole book. A periodic one repeats the book as it stands, with the last update's ``seq``."""
        if not periodic:
            st.counter += 1
        seq = st.last_seq if st.last_seq is not None else st.counter
        bids, asks = st.book.bids.top(), st.book.asks.top()
        parts = max(1, -(-(len(bids) + len(asks)) // MAX_LEVELS_PER_RECORD))
        per = -(-len(bids) // parts), -(-len(asks) // parts)
        for i in range(parts):
            self._send(BookUpdate(
                schema_version=V1, exchange=self.exchange, symbol=st.symbol, venue_symbol=st.venue_symbol,
                kind="snapshot", seq=seq, bids=bids[i * per[0]:(i + 1) * per[0]],
                asks=asks[i * per[1]:(i + 1) * per[1]], checksum=checksum, part=i, last=i == parts - 1,
                ts_event=ts_event, ts_ingest=recv_ms))
        st.deltas = 0
        self.counts.snapshots += 1

    def publish_delta(self, st: SymbolBook, f: BookFrame, recv_ms: int,
                      extra_asks: list[tuple[float, float]] | None = None,
                      extra_bids: list[tuple[float, float]] | None = None) -> None:
        """Publish an applied delta (``extra_*``: removals the venue implies without sending them)."""
        if self._crossed(st, f.ts_event):
            return
        st.counter += 1
        seq = f.seq if f.seq is not None else st.counter
        self._send(BookUpdate(
            schema_version=V1, exchange=self.exchange, symbol=st.symbol, venue_symbol=st.venue_symbol,
            kind="delta", seq=seq, first_seq=f.first_seq, prev_seq=f.prev_seq,
            bids=f.bids + extra_bids if extra_bids else f.bids, asks=f.asks + extra_asks if extra_asks else f.asks,
            checksum=f.checksum or None, ts_event=f.ts_event, ts_ingest=recv_ms))
        self.counts.deltas += 1
        st.deltas += 1
        if st.deltas >= self.snapshot_every:
            self.publish_snapshot(st, f.ts_event, recv_ms, f.checksum or None, periodic=True)

    def _send(self, update: BookUpdate) -> None:
        self.counts.updates += 1
        self.sink.book(update)

    # -- breaking a book --------------------------------------------------------------------------------
    def break_book(self, st: SymbolBook, kind: EventKind, ts: int, detail: str, first_missing: str | None = None,
                   last_missing: str | None = None, count: int = 0) -> None:
        """This symbol's book is wrong or incomplete: say why, drop it, ask for a fresh snapshot."""
        log.warning("%s %s: %s, %s; its book is dropped until it is synchronised again.", self.exchange,
                    st.symbol, kind, detail)
        self.event(st, kind, ts, detail, first_missing, last_missing, count)
        self._unsync(st)
        self.ask_snapshot(st)

    def ask_snapshot(self, st: SymbolBook) -> None:
        if not st.asked:
            st.asked = True
            self.sink.resync(self.exchange, st.venue_symbol)

    def _unsync(self, st: SymbolBook) -> None:
        if st.synced:
            st.broken = True
        st.synced, st.asked, st.last_seq = False, False, None
        st.book.clear()
        st.buffer.clear()

    def _crossed(self, st: SymbolBook, ts: int) -> bool:
        if not st.book.crossed():
            return False
        self.counts.crossed += 1
        self.break_book(st, "crossed_book", ts,
                        f"best bid {st.book.bids.best()} >= best ask {st.book.asks.best()} at seq {st.last_seq}")
        return True

    def event(self, st: SymbolBook, kind: EventKind, ts: int, detail: str, first_missing: str | None = None,
              last_missing: str | None = None, count: int = 0) -> None:
        if kind == "book_gap":
            self.counts.gaps += 1
        self.sink.event(MarketEvent(schema_version=V1, exchange=self.exchange, symbol=st.symbol, kind=kind,
                                    ts=ts or now_ms(), first_missing=first_missing, last_missing=last_missing,
                                    count=count, detail=detail[:500]))
