"""Frames in, books out: the venue's book parser, then its sync, publishing to ``market.books``.

The one path live feeds, recordings and the tests share. A book frame that does not parse goes to
``market.books.dlq`` with the reason (a frame that is not a book frame is left to the trade
pipeline, which dead-letters what it cannot read on ``market.trades.dlq``). Nothing a venue sends
raises out of ``on_frame``.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Protocol

from contracts.books import BookUpdate
from contracts.messages import V1, DeadLetter, MarketEvent
from contracts.serde import encode
from contracts.topics import MARKET_BOOKS
from ingestor.books.binance import BinanceSync
from ingestor.books.coinbase import CoinbaseSync
from ingestor.books.kraken import KrakenSync
from ingestor.books.okx import OkxSync
from ingestor.books.sync import SNAPSHOT_EVERY, BookCounts, BookSink, VenueSync
from ingestor.venues.base import ParseError, VenueSpec

log = logging.getLogger(__name__)

MAX_RAW = 1_000_000  # dead letters keep at most this many characters of a frame

SYNCS: dict[str, type[VenueSync]] = {"binance": BinanceSync, "okx": OkxSync, "kraken": KrakenSync,
                                     "coinbase_advanced": CoinbaseSync}


class FeedSink(BookSink, Protocol):
    def dead_letter(self, d: DeadLetter) -> None: ...


class Producing(Protocol):
    """What the feed needs of ``ingestor.publisher.Publisher``."""

    def produce(self, topic: str, value: bytes, key: bytes | None) -> None: ...
    def key(self, exchange: str, symbol: str) -> bytes: ...
    def event(self, e: MarketEvent) -> None: ...


class PublisherSink:
    """Books, events and book dead letters through the ingestor's one producer.

    ``on_resync`` is asked for a symbol's fresh snapshot (live: fetch it or resubscribe); a replay has
    none and waits for the recording's next snapshot.
    """

    def __init__(self, publisher: Producing, on_resync: Callable[[str, str], None] | None = None) -> None:
        self.publisher = publisher
        self.on_resync = on_resync
        self._books, self._dlq = MARKET_BOOKS.name, MARKET_BOOKS.dlq.name  # under the topic prefix at start

    def book(self, update: BookUpdate) -> None:
        self.publisher.produce(self._books, encode(update), self.publisher.key(update.exchange, update.symbol))

    def event(self, e: MarketEvent) -> None:
        self.publisher.event(e)

    def dead_letter(self, d: DeadLetter) -> None:
        self.publisher.produce(self._dlq, encode(d), None)

    def resync(self, exchange: str, venue_symbol: str) -> None:
        if self.on_resync is not None:
            self.on_resync(exchange, venue_symbol)
        else:
            log.info("%s %s needs a fresh snapshot: waiting for the recording's next one.", exchange, venue_symbol)


class BookFeed:
    """One venue's books: ``on_frame`` for every frame received (and every REST snapshot fetched)."""

    def __init__(self, spec: VenueSpec, sink: FeedSink, snapshot_every: int = SNAPSHOT_EVERY) -> None:
        parse_book, sync = spec.parse_book, SYNCS.get(spec.name)
        if parse_book is None or sync is None:
            raise ValueError(f"venue {spec.name!r} has no book feed (books: {', '.join(SYNCS)})")
        self.spec = spec
        self.parse_book = parse_book
        self.sink = sink
        self.counts = BookCounts()
        self.sync = sync(spec.name, sink, self.counts, snapshot_every)
        self.dead_lettered = 0

    def on_frame(self, raw: str | bytes, recv_ms: int, kind: str = "ws", venue_symbol: str | None = None) -> None:
        """One frame as received; ``venue_symbol`` names a REST snapshot's symbol."""
        try:
            msg = self.parse_book(raw, recv_ms, kind)
            if msg is None:
                return
            if venue_symbol is not None:
                for f in msg.books:
                    if f.venue_symbol is None:
                        f.venue_symbol = venue_symbol
            self.sync.on_message(msg, recv_ms)
        except ParseError as err:
            self._dead_letter(raw, str(err), recv_ms)
        except (ValueError, TypeError, UnicodeError, OverflowError, RecursionError) as err:
            log.exception("The %s book parser failed on a frame; dead-lettered.", self.spec.name)
            self._dead_letter(raw, f"book parser error {type(err).__name__}: {err}", recv_ms)

    def new_connection(self) -> None:
        self.sync.new_connection()

    def _dead_letter(self, raw: str | bytes, reason: str, recv_ms: int) -> None:
        self.dead_lettered += 1
        text = raw if isinstance(raw, str) else raw.decode("utf-8", "replace")
        log.debug("Dead-lettered a %s book frame: %s", self.spec.name, reason)
        self.sink.dead_letter(DeadLetter(schema_version=V1, source=self.spec.name, raw=text[:MAX_RAW],
                                         reason=reason[:2000] or "unparseable", ts=recv_ms))


def has_books(spec: VenueSpec) -> bool:
    return spec.parse_book is not None and spec.name in SYNCS
