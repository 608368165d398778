"""Shared by the book integration tests: reading a topic whole, and the books `book dump` must print,
computed from frames by the same book code without Kafka."""

from __future__ import annotations

from collections.abc import Iterable

from contracts.book_reader import BookReader
from contracts.books import BookUpdate
from contracts.messages import DeadLetter, MarketEvent
from contracts.topic_reader import read_to_end
from ingestor.books.feed import BookFeed
from ingestor.venues import venue


def read_all(bootstrap: str, topic: str) -> list[tuple[int, bytes, bytes]]:
    """(partition, key, value) of every record of a topic, to its end now."""
    return [(m.partition() or 0, m.key() or b"", m.value() or b"") for m in read_to_end(bootstrap, topic)]


class Keep:
    def __init__(self) -> None:
        self.books: list[BookUpdate] = []

    def book(self, u: BookUpdate) -> None:
        self.books.append(u)

    def event(self, e: MarketEvent) -> None: ...
    def dead_letter(self, d: DeadLetter) -> None: ...
    def resync(self, exchange: str, venue_symbol: str) -> None: ...


def expected_dump(venue_name: str, frames: Iterable[tuple[str, int, str, str | None]], depth: int) -> tuple[
        list[dict], BookFeed]:
    """The lines `book dump --depth N` prints for these (raw, recv_ms, kind, symbol) frames, and the feed."""
    keep = Keep()
    feed = BookFeed(venue(venue_name), keep)
    for raw, recv_ms, kind, symbol in frames:
        feed.on_frame(raw, recv_ms, kind, symbol)
    reader, want = BookReader(), []
    for u in keep.books:
        book = reader.apply(u)
        if book is not None:
            want.append({"exchange": u.exchange, "symbol": u.symbol, "seq": u.seq, "ts_event": u.ts_event,
                         "bids": [list(x) for x in book.bids.top(depth)],
                         "asks": [list(x) for x in book.asks.top(depth)]})
    return want, feed
