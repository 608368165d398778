"""Kraken v2's book rule: the ``book`` snapshot, then updates, with no sequence numbers.

After every message (snapshot or update) the whole message is applied, the book cut to the subscribed
depth (Kraken sends no removal for levels pushed out of it, so the published delta adds those
removals), and the CRC32 of the top 10 levels compared with the message's ``checksum``, over the
prices and quantities as Kraken sent them. A mismatch is a ``checksum_mismatch``: the symbol's book is
dropped and resubscribed. ``seq`` is the ingestor's count of the symbol's published updates.
"""

from __future__ import annotations

from ingestor.books import checksum
from ingestor.books.sync import SNAPSHOT_EVERY, BookCounts, BookSink, SymbolBook, VenueSync
from ingestor.venues.base import BookFrame, BookMessage
from ingestor.venues.kraken import BOOK_DEPTH


class KrakenSync(VenueSync):
    keep_text = True

    def __init__(self, exchange: str, sink: BookSink, counts: BookCounts | None = None,
                 snapshot_every: int = SNAPSHOT_EVERY) -> None:
        super().__init__(exchange, sink, counts, snapshot_every)
        self.depth: dict[str, int] = {}  # venue symbol -> the depth its subscription acknowledged

    def on_message(self, msg: BookMessage, recv_ms: int) -> None:
        if msg.depth is not None:
            self.depth[msg.depth[0]] = msg.depth[1]
        for f in msg.books:
            assert f.venue_symbol is not None
            st = self.state(f.venue_symbol)
            if f.kind == "snapshot":
                self.load_snapshot(st, f)
                self._truncate(st)
                if self._checksum_ok(st, f):
                    self.synced(st, None, f.ts_event, recv_ms, "resubscribed: a new book snapshot", f.checksum)
                continue
            if not st.synced:
                self.counts.unsynced += 1
                continue
            self.apply(st, f)
            cut_bids, cut_asks = self._truncate(st)
            if self._checksum_ok(st, f):
                self.publish_delta(st, f, recv_ms, extra_asks=cut_asks, extra_bids=cut_bids)

    def _truncate(self, st: SymbolBook) -> tuple[list[tuple[float, float]], list[tuple[float, float]]]:
        depth = self.depth.get(st.venue_symbol, BOOK_DEPTH)
        cut = []
        for side in (st.book.bids, st.book.asks):
            gone = side.prices()[depth:]
            side.truncate(depth)
            cut.append([(p, 0.0) for p in gone])
        return cut[0], cut[1]

    def _checksum_ok(self, st: SymbolBook, f: BookFrame) -> bool:
        n = checksum.KRAKEN_LEVELS
        got = checksum.kraken(st.book.bids.top_text(n), st.book.asks.top_text(n))
        self.counts.checksums += 1
        if got == f.checksum:
            return True
        self.counts.checksum_mismatches += 1
        self.break_book(st, "checksum_mismatch", f.ts_event,
                        f"Kraken checksum {f.checksum} != {got} computed over the top {n} levels after a {f.kind}")
        return False
