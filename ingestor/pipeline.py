"""One frame in, Kafka records out: the path live feeds and frame replays share.

Parse with the venue's parser; a frame that does not parse becomes a DeadLetter on
``market.trades.dlq`` with the reason; frames of channels we do not ingest are counted; trades pass
the sequencer (repeats dropped, gaps published as ``market.events``) and go to ``market.trades``.
Nothing a venue sends raises out of ``on_frame``.
"""

from __future__ import annotations

import logging
from typing import Protocol

from contracts.messages import V1, DeadLetter, EventKind, MarketEvent, Trade
from contracts.timeutil import now_ms
from ingestor.metrics import Counts
from ingestor.sequencing import CONNECTION, Sequencer
from ingestor.venues.base import ParseError, VenueSpec, symbol_of

log = logging.getLogger(__name__)

MAX_RAW = 1_000_000  # dead letters keep at most this many characters of a frame


class Sink(Protocol):
    def trade(self, t: Trade) -> None: ...
    def event(self, e: MarketEvent) -> None: ...
    def dead_letter(self, d: DeadLetter) -> None: ...


class Pipeline:
    def __init__(self, venue: VenueSpec, sink: Sink, counts: Counts | None = None) -> None:
        self.venue = venue
        self.sink = sink
        self.counts = counts or Counts()
        self.sequencer = Sequencer()

    def on_frame(self, raw: str | bytes, recv_ms: int) -> None:
        """Handle one frame exactly as received."""
        c = self.counts
        c.frames += 1
        try:
            frame = self.venue.parse(raw, recv_ms)
        except ParseError as err:
            self._dead_letter(raw, str(err), recv_ms)
            return
        except (ValueError, TypeError, UnicodeError, OverflowError, RecursionError) as err:
            # A parser bug on input it did not foresee: keep the frame and say which bug, keep running.
            log.exception("The %s parser failed on a frame; dead-lettered.", self.venue.name)
            self._dead_letter(raw, f"parser error {type(err).__name__}: {err}", recv_ms)
            return
        if frame.seq is not None:
            gap = self.sequencer.check_sequence(self.venue.name, frame.seq, recv_ms)
            if gap is not None:
                self._gap(gap)
        if frame.kind == "skip":
            c.skipped += 1
            c.skipped_by[frame.what] = c.skipped_by.get(frame.what, 0) + 1
            return
        if frame.kind == "control":
            c.control += 1
            if frame.what == "error":
                log.warning("%s sent an error: %.500s", self.venue.name, raw)
            if frame.last_trade_id is not None:
                venue_symbol, last_id = frame.last_trade_id
                try:
                    symbol = symbol_of(venue_symbol)
                except ParseError:
                    return
                gap = self.sequencer.last_trade(self.venue.name, venue_symbol, symbol, last_id, recv_ms)
                if gap is not None:
                    self._gap(gap)
            return
        outcome = self.sequencer.accept(frame.trades, frame.counts, recv_ms)
        for gap in outcome.gaps:
            self._gap(gap)
        c.duplicates += outcome.duplicates
        for trade in outcome.trades:
            self.sink.trade(trade)
        c.trades += len(outcome.trades)

    def connection_event(self, kind: EventKind, detail: str, ts: int | None = None) -> None:
        """A reconnect, disconnect or stale feed, published on market.events for the whole connection."""
        if kind == "reconnect":
            self.counts.reconnects += 1
            self.sequencer.new_connection()
        log.info("%s: %s (%s).", self.venue.name, kind, detail)
        self.sink.event(MarketEvent(schema_version=V1, exchange=self.venue.name, symbol=CONNECTION, kind=kind,
                                    ts=ts if ts is not None else now_ms(), detail=detail[:500]))

    def _gap(self, gap: MarketEvent) -> None:
        self.counts.gaps += 1
        self.counts.missing += gap.count
        log.warning("%s %s: gap, %s.", gap.exchange, gap.symbol, gap.detail)
        self.sink.event(gap)

    def _dead_letter(self, raw: str | bytes, reason: str, recv_ms: int) -> None:
        self.counts.dead_lettered += 1
        text = raw if isinstance(raw, str) else raw.decode("utf-8", "replace")
        log.debug("Dead-lettered a %s frame: %s", self.venue.name, reason)
        self.sink.dead_letter(DeadLetter(schema_version=V1, source=self.venue.name, raw=text[:MAX_RAW],
                                         reason=reason[:2000] or "unparseable", ts=recv_ms))
