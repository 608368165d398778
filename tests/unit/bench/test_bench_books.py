"""The book bench compares like with like: its reference applies the level changes the ingestor applies."""

from __future__ import annotations

from bench.books import applied_changes, depth_lines, reference
from ingestor.books.feed import BookFeed
from ingestor.venues import venue
from tests.unit.ingestor.books_frames import Sink


def test_the_reference_book_gets_the_ingestors_level_changes_and_ends_where_it_does() -> None:
    lines = depth_lines()
    sink = Sink()
    feed = BookFeed(venue("binance"), sink)
    for ln in lines:
        feed.on_frame(ln.raw, ln.recv_ms, ln.kind, ln.symbol)
    assert not sink.events and not sink.dead and feed.counts.deltas > 6_000
    changes = applied_changes(lines)
    ref, levels, _seconds = reference(changes, passes=1)
    assert levels == feed.counts.levels == sum(len(f.bids) + len(f.asks) for f in changes)
    ours = feed.sync.symbols["BTCUSDT"].book
    assert ours.bids.top() == ref.bids.to_list() and ours.asks.top() == ref.asks.to_list()
