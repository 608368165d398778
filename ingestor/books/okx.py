"""OKX's book rule: the ``books`` snapshot on the websocket, then updates.

Updates before a symbol's snapshot are not applied (the book starts at the snapshot, never from an
empty one). Where frames carry ``seqId``/``prevSeqId`` (OKX since 2023), each update's ``prevSeqId``
must be the previous frame's ``seqId``; a break is a ``book_gap`` naming the range. Where the
``checksum`` is not 0 (OKX sends 0 since June 2026; the 2022 recording's are real) it must equal the
CRC32 of the top 25 levels, computed over the level text OKX sent; a mismatch is a
``checksum_mismatch``. Either way the symbol's book is dropped and resubscribed, that symbol alone.
``seq`` is ``seqId`` where OKX sends it, else the ingestor's count of the symbol's published updates.
"""

from __future__ import annotations

from ingestor.books import checksum
from ingestor.books.sync import SymbolBook, VenueSync
from ingestor.venues.base import BookFrame, BookMessage


class OkxSync(VenueSync):
    keep_text = True

    def on_message(self, msg: BookMessage, recv_ms: int) -> None:
        for f in msg.books:
            assert f.venue_symbol is not None
            st = self.state(f.venue_symbol)
            if f.kind == "snapshot":
                self.load_snapshot(st, f)
                if self._checksum_ok(st, f):
                    self.synced(st, f.seq, f.ts_event, recv_ms, "resubscribed: a new books snapshot",
                                f.checksum or None)
                continue
            if not st.synced:
                self.counts.unsynced += 1
                continue
            if f.prev_seq is not None and st.last_seq is not None and f.prev_seq != st.last_seq:
                self.break_book(st, "book_gap", f.ts_event,
                                f"prevSeqId {f.prev_seq} does not follow seqId {st.last_seq}: updates after "
                                f"{st.last_seq} up to {f.prev_seq} missing", str(st.last_seq + 1), str(f.prev_seq))
                continue
            self.apply(st, f)
            if self._checksum_ok(st, f):
                st.last_seq = f.seq
                self.publish_delta(st, f, recv_ms)

    def _checksum_ok(self, st: SymbolBook, f: BookFrame) -> bool:
        if not f.checksum:
            return True
        got = checksum.okx(st.book.bids.top_text(checksum.OKX_LEVELS), st.book.asks.top_text(checksum.OKX_LEVELS))
        self.counts.checksums += 1
        if got == f.checksum:
            return True
        self.counts.checksum_mismatches += 1
        self.break_book(st, "checksum_mismatch", f.ts_event,
                        f"OKX checksum {f.checksum} != {got} computed over the top {checksum.OKX_LEVELS} levels "
                        f"after a {f.kind}")
        return False
