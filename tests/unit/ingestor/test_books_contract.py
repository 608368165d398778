"""The book contract and topic, and the reader `tickflow book dump` rebuilds books with."""

from __future__ import annotations

from typing import Any, Literal

import pytest

from contracts.book import Book
from contracts.book_reader import BookReader
from contracts.books import MAX_LEVELS_PER_RECORD, BookUpdate
from contracts.errors import ContractError
from contracts.serde import decode, encode
from contracts.topics import MARKET_BOOKS, MARKET_TRADES, topic
from ingestor.books.sync import SymbolBook, VenueSync


def _u(kind: Literal["snapshot", "delta"] = "delta", seq: int = 2, bids: list | None = None,
       asks: list | None = None, **kw: Any) -> BookUpdate:
    return BookUpdate(schema_version=1, exchange="binance", symbol="BTC-USDT", venue_symbol="BTCUSDT", kind=kind,
                      seq=seq, bids=bids if bids is not None else [(100.0, 1.0)],
                      asks=asks if asks is not None else [(101.0, 2.0)], ts_event=1, ts_ingest=2, **kw)


def test_the_topic_is_keyed_by_symbol_co_partitioned_with_trades_and_has_a_dlq() -> None:
    assert topic("market.books") is MARKET_BOOKS
    assert MARKET_BOOKS.key == "exchange:symbol" and MARKET_BOOKS.partitions == MARKET_TRADES.partitions
    assert MARKET_BOOKS.value_type is BookUpdate and topic("market.books.dlq") is MARKET_BOOKS.dlq


def test_a_book_update_round_trips_and_decodes_strictly() -> None:
    u = _u(first_seq=1)
    assert decode(encode(u), BookUpdate) == u
    text = encode(u).decode()
    with pytest.raises(ContractError, match="extra"):
        decode(text.replace('"seq"', '"extra":1,"seq"'), BookUpdate)
    with pytest.raises(ContractError, match="bids"):
        decode(text.replace('"bids":[[100.0,1.0]]', '"bids":[[-100.0,1.0]]'), BookUpdate)
    with pytest.raises(ContractError, match="kind"):
        decode(text.replace('"delta"', '"diff"'), BookUpdate)
    with pytest.raises(ContractError, match="positive size"):
        decode(encode(_u("snapshot")).decode().replace("[100.0,1.0]", "[100.0,0.0]"), BookUpdate)
    with pytest.raises(ContractError, match="parts"):
        decode(text.replace('"part":0', '"part":1'), BookUpdate)


class _Sink:
    def __init__(self) -> None:
        self.books: list[BookUpdate] = []

    def book(self, update: BookUpdate) -> None:
        self.books.append(update)

    def event(self, e: object) -> None:
        raise AssertionError(e)

    def resync(self, exchange: str, venue_symbol: str) -> None:
        raise AssertionError(venue_symbol)


def test_a_large_snapshot_is_split_and_the_reader_rebuilds_it_whole() -> None:
    sink = _Sink()
    sync = VenueSync("binance", sink)
    st = SymbolBook("BTCUSDT", "BTC-USDT", Book())
    n = MAX_LEVELS_PER_RECORD  # a side: two parts or more
    st.book.apply([(1000.0 - i * 0.01, 1.0) for i in range(n)], [(1001.0 + i * 0.01, 1.0) for i in range(n)])
    st.last_seq = 9
    sync.publish_snapshot(st, 1, 2)
    assert len(sink.books) >= 2 and [u.part for u in sink.books] == list(range(len(sink.books)))
    assert [u.last for u in sink.books] == [False] * (len(sink.books) - 1) + [True]
    assert all(len(u.bids) + len(u.asks) <= MAX_LEVELS_PER_RECORD for u in sink.books)
    reader = BookReader()
    got = [reader.apply(decode(encode(u), BookUpdate)) for u in sink.books]
    assert got[:-1] == [None] * (len(got) - 1)
    whole = got[-1]
    assert whole is not None and whole.levels() == 2 * n and whole.bids.best() == 1000.0 and whole.seq == 9


def test_the_reader_waits_for_a_snapshot_follows_the_chain_and_skips_a_periodic_snapshot() -> None:
    reader = BookReader()
    assert reader.apply(_u(seq=5, first_seq=4)) is None and reader.skipped == 1  # no snapshot yet
    book = reader.apply(_u("snapshot", seq=5))
    assert book is not None and book.seq == 5
    book = reader.apply(_u(seq=7, first_seq=3, bids=[(100.0, 0.0), (99.0, 4.0)]))  # brackets 6
    assert book is not None and book.bids.top() == [(99.0, 4.0)] and book.seq == 7
    assert reader.apply(_u("snapshot", seq=7, bids=[(99.0, 4.0)])) is None  # periodic: nothing new
    assert reader.apply(_u(seq=12, first_seq=10)) is None and reader.breaks == 1  # 8..9 missing
    assert reader.apply(_u(seq=13, first_seq=13)) is None  # broken until the next snapshot
    assert reader.apply(_u("snapshot", seq=20)) is not None
    assert reader.apply(_u(seq=21, prev_seq=19)) is None and reader.breaks == 2  # OKX's chain
