"""Coinbase Advanced Trade's level2 book on the bundled recording (2026-08-09, BTC-USD and ETH-USD with
ticker, market_trades and heartbeats): sequence_num checked, never crossed, and the top of book compared
with the ticker channel's best bid/ask."""

from __future__ import annotations

import json

from contracts.book import Book
from ingestor.books.feed import BookFeed
from ingestor.venues import venue
from tests.unit.ingestor.books_frames import COINBASE, Sink, raw_frames, run

FRAMES = raw_frames(COINBASE)


def test_the_book_never_crosses_and_agrees_with_the_ticker_as_often_as_arrival_order_allows() -> None:
    sink = Sink()
    feed = BookFeed(venue("coinbase_advanced"), sink)
    books: dict[str, Book] = {}
    agree = seen = 0
    for f in FRAMES:
        before = len(sink.books)
        feed.on_frame(f.raw, f.recv_ms)
        for u in sink.books[before:]:
            book = books.setdefault(u.symbol, Book())
            if u.kind == "snapshot" and u.part == 0:
                book.clear()
            book.apply(u.bids, u.asks)
            assert not book.crossed(), f"{u.symbol} crossed at sequence_num {u.seq}"
        msg = json.loads(f.raw)
        if msg.get("channel") == "ticker":
            for ev in msg["events"]:
                for t in ev["tickers"]:
                    top = books.get(t["product_id"])
                    if top is not None:
                        seen += 1
                        agree += (top.bids.best(), top.asks.best()) == (float(t["best_bid"]), float(t["best_ask"]))
    assert sink.events == [] and sink.dead == [] and feed.counts.crossed == 0
    assert {u.symbol for u in sink.books} == {"BTC-USD", "ETH-USD"}
    assert sum(u.kind == "delta" for u in sink.books) == 773  # every l2_data update after the snapshots
    # The ticker and level2 channels are not sent in step: 132 of 154 tickers (85.7%) match the book as it
    # stands when the ticker arrives.
    print(f"top of book = ticker best bid/ask at {agree} of {seen} tickers ({agree / seen:.1%})")
    assert seen == 154 and agree / seen >= 0.85


def test_a_lost_message_of_the_connection_breaks_every_book_of_it() -> None:
    lost = next(i for i, f in enumerate(FRAMES) if i > 500 and '"heartbeats"' in f.raw[:40])
    seq = json.loads(FRAMES[lost].raw)["sequence_num"]
    _, sink = run("coinbase_advanced", FRAMES[:lost] + FRAMES[lost + 1:])
    gaps = [(e.symbol, e.kind, e.first_missing, e.last_missing) for e in sink.events]
    assert sorted(gaps) == [("BTC-USD", "book_gap", str(seq), str(seq)), ("ETH-USD", "book_gap", str(seq), str(seq))]
    assert max(u.seq for u in sink.books) < seq  # nothing more until a new snapshot
    assert sorted(sink.resyncs) == [("coinbase_advanced", "BTC-USD"), ("coinbase_advanced", "ETH-USD")]


def test_a_repeated_message_is_ignored() -> None:
    i = next(i for i, f in enumerate(FRAMES) if i > 500 and '"l2_data"' in f.raw[:40])
    _, once = run("coinbase_advanced", FRAMES)
    _, twice = run("coinbase_advanced", [*FRAMES[:i + 1], FRAMES[i], *FRAMES[i + 1:]])
    assert twice.books == once.books and twice.events == []
