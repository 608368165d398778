"""Binance spot's book rule: diffs from ``<symbol>@depth@100ms``, started from the REST depth snapshot.

As Binance's spot documentation states it (2026): buffer the diffs; fetch the snapshot; if its
``lastUpdateId`` is below the first buffered ``U``, fetch again; drop buffered diffs with
``u <= lastUpdateId``; the first diff kept must bracket the snapshot (``U <= lastUpdateId + 1 <= u``;
``U = lastUpdateId + 1`` is the bracket's contiguous edge); from then on each diff's ``U`` is the
previous ``u + 1``. Otherwise the book is broken: a ``book_gap`` names the missing update ids, the
book is dropped and a new snapshot fetched, for that symbol alone. Diffs with ``u`` at or below the
book's are repeats and ignored.

A REST snapshot arrives as a frame of kind ``rest_depth_snapshot`` (live: fetched when the sink is
asked; replay: recorded with the frames). One recorded without its symbol belongs to the only symbol
waiting for one.
"""

from __future__ import annotations

import logging

from ingestor.books.sync import SymbolBook, VenueSync
from ingestor.venues.base import BookFrame, BookMessage, ParseError

log = logging.getLogger(__name__)

MAX_BUFFER = 10_000  # diffs kept while waiting for a snapshot (about 17 minutes at 100 ms)


class BinanceSync(VenueSync):
    def on_message(self, msg: BookMessage, recv_ms: int) -> None:
        for f in msg.books:
            if f.kind == "snapshot":
                self._snapshot(f, recv_ms)
            else:
                self._diff(f, recv_ms)

    def _diff(self, f: BookFrame, recv_ms: int) -> None:
        assert f.venue_symbol is not None and f.seq is not None and f.first_seq is not None
        st = self.state(f.venue_symbol)
        if not st.synced:
            self._buffer(st, f)
            return
        last = st.last_seq
        assert last is not None
        if f.seq <= last:
            return  # a repeat of what the book holds
        if f.first_seq == last + 1 or (st.fresh and f.first_seq <= last + 1):
            st.fresh = False
            self.apply(st, f)
            st.last_seq = f.seq
            self.publish_delta(st, f, recv_ms)
            return
        self.break_book(st, "book_gap", f.ts_event,
                        f"update ids {last + 1}..{f.first_seq - 1} missing (book at u={last}, next U={f.first_seq})",
                        str(last + 1), str(f.first_seq - 1), f.first_seq - 1 - last)
        self._buffer(st, f)

    def _buffer(self, st: SymbolBook, f: BookFrame) -> None:
        self.counts.unsynced += 1
        st.buffer.append(f)
        if len(st.buffer) > MAX_BUFFER:
            del st.buffer[0]
        self.ask_snapshot(st)

    def _snapshot(self, f: BookFrame, recv_ms: int) -> None:
        assert f.seq is not None
        if f.venue_symbol is None:
            waiting = [s for s in self.symbols.values() if not s.synced]
            if len(waiting) != 1:
                raise ParseError(f"a REST depth snapshot without its symbol while {len(waiting)} symbols wait for "
                                 "one (record it with its symbol)")
            st = waiting[0]
        else:
            st = self.state(f.venue_symbol)
        if st.synced:
            log.info("%s %s: a REST snapshot (lastUpdateId %d) while the book is synchronised at u=%s: ignored.",
                     self.exchange, st.symbol, f.seq, st.last_seq)
            return
        st.asked = False
        buffer, st.buffer = st.buffer, []
        kept = [e for e in buffer if e.seq is not None and e.seq > f.seq]
        if buffer and buffer[0].first_seq is not None and f.seq < buffer[0].first_seq - 1:
            log.info("%s %s: the snapshot (lastUpdateId %d) is older than the first buffered diff (U=%s): fetching "
                     "another.", self.exchange, st.symbol, f.seq, buffer[0].first_seq)
            st.buffer = buffer
            self.ask_snapshot(st)
            return
        if kept and kept[0].first_seq is not None and kept[0].first_seq > f.seq + 1:
            log.info("%s %s: diffs between the snapshot (lastUpdateId %d) and U=%d were not buffered: fetching "
                     "another.", self.exchange, st.symbol, f.seq, kept[0].first_seq)
            st.buffer = kept
            self.ask_snapshot(st)
            return
        self.load_snapshot(st, f)
        self.synced(st, f.seq, f.ts_event, recv_ms, f"synchronised from a snapshot at lastUpdateId {f.seq}")
        for e in kept:
            if st.synced:
                self._diff(e, recv_ms)
            else:
                self._buffer(st, e)
