"""The offline builder: bars and features from a trade dump, a candle file or a recording, with the live code.

Trades are read through ``contracts.history`` (the functions the ingestor's replay uses: a candle file
is expanded into trades by ``candle_trades``), fed to the same ``KeyBars`` and ``FeatureEngine`` the
streams worker runs, so a training set sees exactly what the live worker emits. The training
environment and the notebook use ``build_from_file``.

``features_frame`` also takes the book records of the bars' key and gives the worker's schema v2 (the
trade features and the book features of ``streams.features.book_features``); a recording of websocket
frames is read into trades and book records by ``tickflow.recording``, with the ingestor's own replay
code, outside the streams service.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Iterator
from pathlib import Path

import pandas as pd

from contracts.books import BookUpdate
from contracts.feature_schema import BOOK_FEATURE_NAMES, FEATURE_NAMES
from contracts.history import binance_dump_trades, candle_trades, is_candle_file, symbol_from_dump_name
from contracts.messages import Trade
from streams.bars import ClosedBar, KeyBars
from streams.features.book_features import BookTrack
from streams.features.engine import FeatureEngine
from streams.spec import DEFAULT_GRACE_MS

BAR_COLUMNS: tuple[str, ...] = ("open", "high", "low", "close", "volume", "vwap", "trades", "buy_volume",
                                "sell_volume")
COLUMNS: tuple[str, ...] = ("ts", "window_start", *BAR_COLUMNS, "ready", *FEATURE_NAMES)
COLUMNS_V2: tuple[str, ...] = (*COLUMNS, *BOOK_FEATURE_NAMES)


def read_trades(path: Path, symbol: str | None = None, venue: str = "binance",
                candle_interval_s: int = 60) -> Iterator[Trade]:
    """The trades of a Binance trade dump or of a candle file (expanded as the replay expands it)."""
    path = Path(path)
    if not path.exists():
        raise FileNotFoundError(f"{path} does not exist")
    venue_symbol = symbol or symbol_from_dump_name(path)
    if is_candle_file(path):
        if not venue_symbol:
            raise ValueError(f"{path} is a candle file: name its symbol with --symbol (for example BTCUSDT)")
        return candle_trades(path, venue_symbol, candle_interval_s, exchange=venue)
    if not venue_symbol:
        raise ValueError(f"cannot tell the symbol of {path} from its name: pass --symbol (for example BTCUSDT)")
    return binance_dump_trades(path, venue_symbol, exchange=venue)


def closed_bars(trades: Iterable[Trade], intervals_s: tuple[int, ...] = (60,),
                grace_ms: int = DEFAULT_GRACE_MS) -> dict[tuple[str, str], list[ClosedBar]]:
    """Every bar the worker would close from these trades, per (exchange, symbol), in emission order."""
    keys: dict[tuple[str, str], KeyBars] = {}
    out: dict[tuple[str, str], list[ClosedBar]] = {}
    for t in trades:
        key = (t.exchange, t.symbol)
        kb = keys.get(key)
        if kb is None:
            kb = keys[key] = KeyBars(intervals_s, grace_ms)
            out[key] = []
        kb.add(t.ts_event, t.price, t.size, t.side == "buy", out=out[key])
    return out


def features_frame(bars: Iterable[ClosedBar], books: Iterable[BookUpdate] | None = None) -> pd.DataFrame:
    """One row per bar (of one key and one interval, in order): the bar, ``ready`` and the features; with
    ``books`` (that key's market.books records, in order), the book features too (schema v2)."""
    engine = FeatureEngine()
    records = None if books is None else list(books)
    track: BookTrack | None = None
    no_book = [math.nan] * len(BOOK_FEATURE_NAMES) if records is not None else []
    rows = []
    for b in bars:
        if records and track is None:
            track = BookTrack(b.interval_s * 1000)
            for u in records:
                track.receive(u)
        values = engine.update(b)
        ready = not any(map(math.isnan, values))
        book = [math.nan if v is None else v for v in track.values(b.window_start, b.window_end)] \
            if track is not None else no_book
        rows.append((b.window_end, b.window_start, b.open, b.high, b.low, b.close, b.volume, b.vwap, b.trades,
                     b.buy_volume, b.sell_volume, ready, *values, *book))
    frame = pd.DataFrame.from_records(rows, columns=list(COLUMNS if books is None else COLUMNS_V2))
    return frame.astype({"ts": "int64", "window_start": "int64", "trades": "int64", "ready": "bool"})


def build_from_file(path: Path, symbol: str | None = None, interval_s: int = 60,
                    venue: str = "binance") -> pd.DataFrame:
    """Bars and features v1 of one interval from a trade dump or a candle file (.csv or .csv.gz).

    One row per closed bar: ``ts`` (the bar's end, ms), ``window_start``, the bar's open, high, low,
    close, volume, vwap, trades, buy_volume, sell_volume, ``ready``, then one float column per
    feature in FEATURE_NAMES order (NaN while warming up). The last bar of the file stays open (no
    trade moved the watermark past it), exactly as in the live worker.
    """
    trades = read_trades(Path(path), symbol, venue)
    per_key = closed_bars(trades, (interval_s,))
    if len(per_key) > 1:
        raise ValueError(f"{path} holds several symbols ({sorted(per_key)}); build one at a time")
    bars = next(iter(per_key.values()), [])
    return features_frame(bars)


def write_frame(frame: pd.DataFrame, out: Path) -> None:
    """Write CSV or Parquet, chosen by the extension (.csv, .csv.gz, .parquet)."""
    out.parent.mkdir(parents=True, exist_ok=True)
    name = out.name.lower()
    if name.endswith(".parquet"):
        frame.to_parquet(out, index=False)
    elif name.endswith((".csv", ".csv.gz")):
        frame.to_csv(out, index=False, float_format="%.17g")
    else:
        raise ValueError(f"{out}: choose an output ending in .csv, .csv.gz or .parquet")
