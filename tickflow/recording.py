"""Bars and features from a recording of websocket frames, as `ingest replay` would publish them.

A recording (``tickflow ingest record``, the bundled ``*_timed.jsonl.gz``) is read through the ingestor's
own code, the replay's: its frame reader, the venue's parser and trade pipeline, and its book feed (the
venue's sync rule), so the trades and ``market.books`` records are the ones ``ingest replay`` publishes;
``build_from_recording`` then builds them with the offline builder (``streams.offline``) into schema v2:
the trade features and the book features. It lives outside the service packages because it joins two of
them (the ingestor's reading and the streams worker's features), which no service may do.
"""

from __future__ import annotations

from pathlib import Path

import pandas as pd

from contracts.books import BookUpdate
from contracts.messages import DeadLetter, MarketEvent, Trade
from ingestor.books.feed import BookFeed, has_books
from ingestor.pipeline import Pipeline
from ingestor.replay import recorded_frames
from ingestor.venues import venue as venue_spec
from streams.offline import closed_bars, features_frame


class _Collect:
    """What the replay would publish, kept: the trade pipeline's sink and the book feed's."""

    def __init__(self) -> None:
        self.trades: list[Trade] = []
        self.books: list[BookUpdate] = []
        self.dead_letters = 0

    def trade(self, t: Trade) -> None:
        self.trades.append(t)

    def book(self, update: BookUpdate) -> None:
        self.books.append(update)

    def event(self, e: MarketEvent) -> None:
        pass  # gaps, resyncs: they are logged where they are found

    def dead_letter(self, d: DeadLetter) -> None:
        self.dead_letters += 1

    def resync(self, exchange: str, venue_symbol: str) -> None:
        pass  # a recording cannot fetch a snapshot: the book waits for the recording's next one


def read_recording(path: Path, venue: str) -> tuple[list[Trade], list[BookUpdate]]:
    """The trades and book records ``ingest replay --venue VENUE`` publishes for a recording, in order."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"{path} does not exist")
    spec = venue_spec(venue)
    sink = _Collect()
    pipeline = Pipeline(spec, sink)
    feed = BookFeed(spec, sink) if has_books(spec) else None
    for _, raw, recv_ms, kind, book_symbol in recorded_frames(path):
        recv = recv_ms if recv_ms is not None else 0
        if kind == "ws":
            pipeline.on_frame(raw, recv)
        if feed is not None:
            feed.on_frame(raw, recv, kind, book_symbol)
    return sink.trades, sink.books


def build_from_recording(path: Path, venue: str, interval_s: int = 60, symbol: str | None = None) -> pd.DataFrame:
    """Bars and features v2 of one interval and one symbol (normalised, e.g. BTC-USDT) from a recording:
    the columns of ``build_from_file`` followed by BOOK_FEATURE_NAMES (NaN where no book is held)."""
    trades, books = read_recording(path, venue)
    per_key = closed_bars(trades, (interval_s,))
    if symbol is None:
        if len(per_key) > 1:
            raise ValueError(f"{path} holds several symbols ({sorted(s for _, s in per_key)}); name one")
        key = next(iter(per_key), None)
    else:
        key = next((k for k in per_key if k[1] == symbol), None)
        if key is None:
            raise ValueError(f"{path} holds no trades of {symbol} (it has {sorted(s for _, s in per_key)})")
    if key is None:
        return features_frame([], [])
    return features_frame(per_key[key], [u for u in books if (u.exchange, u.symbol) == key])
