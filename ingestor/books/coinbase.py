"""Coinbase Advanced Trade's book rule: the ``level2`` snapshot on the websocket, then updates.

``sequence_num`` counts every message of the connection, all channels together, so every frame's
number is checked (heartbeats keep it moving on a quiet book). A jump means a message of the
connection was lost, and nothing says which product it was for: every book of the connection is
broken (a ``book_gap`` per symbol naming the missing numbers) and resubscribed. A number at or
below the last one is a repeat and ignored. Updates before a product's snapshot are not applied.
``seq`` is the message's ``sequence_num``.
"""

from __future__ import annotations

from ingestor.books.sync import SNAPSHOT_EVERY, BookCounts, BookSink, VenueSync
from ingestor.venues.base import BookMessage


class CoinbaseSync(VenueSync):
    def __init__(self, exchange: str, sink: BookSink, counts: BookCounts | None = None,
                 snapshot_every: int = SNAPSHOT_EVERY) -> None:
        super().__init__(exchange, sink, counts, snapshot_every)
        self.conn_seq: int | None = None  # the last sequence_num of the connection

    def new_connection(self) -> None:
        super().new_connection()
        self.conn_seq = None

    def on_message(self, msg: BookMessage, recv_ms: int) -> None:
        if msg.conn_seq is not None:
            last = self.conn_seq
            if last is not None and msg.conn_seq <= last:
                return  # a repeat
            if last is not None and msg.conn_seq != last + 1:
                for st in list(self.symbols.values()):
                    if st.synced:
                        self.break_book(st, "book_gap", recv_ms,
                                        f"sequence_num {last + 1}..{msg.conn_seq - 1} missing on the connection",
                                        str(last + 1), str(msg.conn_seq - 1), msg.conn_seq - 1 - last)
            self.conn_seq = msg.conn_seq
        for f in msg.books:
            assert f.venue_symbol is not None
            st = self.state(f.venue_symbol)
            if f.kind == "snapshot":
                self.load_snapshot(st, f)
                self.synced(st, f.seq, f.ts_event, recv_ms, "resubscribed: a new level2 snapshot")
                continue
            if not st.synced:
                self.counts.unsynced += 1
                continue
            self.apply(st, f)
            st.last_seq = f.seq
            self.publish_delta(st, f, recv_ms)
