"""Historical market data as Trade streams: Binance trade dumps, and candles expanded into trades.

Both the ingestor's replay and the streams' offline feature builder read history through these
functions, so that online and offline paths see the very same trades.

Candle expansion (derived, synthetic data). A candle (open, high, low, close, volume) of interval I
starting at t becomes four trades, in this order and at these event times:

    open          at t                  size volume/8
    first extreme at t + I/4            size volume/8   (low first when close >= open, else high)
    other extreme at t + I/2            size volume/4
    close         at t + I - 1 ms       size volume/2

so that the bar of those trades has exactly the candle's open, high, low, close and volume (the
partial sums v/8+v/8, +v/4, +v/2 are exact in binary floating point). The taker side is "buy" on an
uptick or a repeated price and "sell" on a downtick (the open trade takes the candle's direction).
Trade ids are ``window_index * 4 + k``, contiguous. A candle with zero volume had no trades: it yields
none. VWAP, taker flow and trade counts of such bars come from this expansion, not from the market.
"""

from __future__ import annotations

import csv
import gzip
import io
import re
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import IO

from contracts.messages import V1, Side, Trade
from contracts.symbols import normalise_symbol

CANDLE_HEADER = ["open_time_ms", "open", "high", "low", "close", "volume"]
_DUMP_NAME = re.compile(r"^([A-Z0-9]+)-trades-")
# called with (line number, the row as text, the reason naming file and line) for a row that does not parse:
# the row is skipped instead of raising
BadRow = Callable[[int, str, str], None]


def open_text(path: Path) -> IO[str]:
    """Open a text file, transparently gunzipping ``.gz``."""
    if path.suffix == ".gz":
        return io.TextIOWrapper(gzip.open(path, "rb"), encoding="utf-8", newline="")
    return path.open(encoding="utf-8", newline="")


def symbol_from_dump_name(path: Path) -> str | None:
    """The venue symbol of a Binance dump named ``SYMBOL-trades-*.csv`` (``BTCUSDT``), if it is one."""
    match = _DUMP_NAME.match(path.name)
    return match.group(1) if match else None


def is_candle_file(path: Path) -> bool:
    """True when the first line is the candle header ``open_time_ms,open,high,low,close,volume``."""
    with open_text(path) as f:
        first = f.readline().strip().split(",")
    return first == CANDLE_HEADER


def binance_dump_trades(path: Path, venue_symbol: str, exchange: str = "binance",
                        bad_row: BadRow | None = None) -> Iterator[Trade]:
    """Trades of a Binance trade dump (no header: id, price, qty, quote_qty, time, is_buyer_maker, ...).

    ``is_buyer_maker`` true means the seller was the taker. Rows that do not parse raise ValueError
    naming the file and line, or go to ``bad_row`` when it is given.
    """
    symbol = normalise_symbol(venue_symbol)
    with open_text(path) as f:
        for lineno, row in enumerate(csv.reader(f), start=1):
            try:
                side: Side = "sell" if row[5].strip().lower() == "true" else "buy"
                ts = int(row[4])
                yield Trade(schema_version=V1, exchange=exchange, symbol=symbol, venue_symbol=venue_symbol,
                            trade_id=str(int(row[0])), price=_positive(row[1]), size=_positive(row[2]),
                            side=side, ts_event=ts, ts_ingest=ts)
            except (IndexError, ValueError) as err:
                reason = f"{path}:{lineno}: not a Binance trade row ({err}): {row!r}"
                if bad_row is None:
                    raise ValueError(reason) from err
                bad_row(lineno, ",".join(row), reason)


def _positive(text: str) -> float:
    value = float(text)
    if not value > 0 or value == float("inf"):
        raise ValueError(f"{text!r} is not a positive finite number")
    return value


def candle_trades(path: Path, venue_symbol: str, interval_s: int = 60, exchange: str = "binance",
                  bad_row: BadRow | None = None) -> Iterator[Trade]:
    """The deterministic trade expansion of a candle file (see the module docstring). Rows that do not
    parse raise ValueError naming the file and line, or go to ``bad_row`` when it is given."""
    symbol = normalise_symbol(venue_symbol)
    interval_ms = interval_s * 1000
    with open_text(path) as f:
        reader = csv.reader(f)
        header = next(reader, None)
        if header != CANDLE_HEADER:
            raise ValueError(f"{path}: expected the header {','.join(CANDLE_HEADER)}, got {header}")
        for lineno, row in enumerate(reader, start=2):
            try:
                t = int(row[0])
                o, h, low, c = (_positive(x) for x in row[1:5])
                v = float(row[5])
                if not (v >= 0 and low <= min(o, c) and h >= max(o, c)) or t % interval_ms:
                    raise ValueError("inconsistent candle (low/high/volume/alignment)")
            except (IndexError, ValueError) as err:
                reason = f"{path}:{lineno}: not a candle row ({err}): {row!r}"
                if bad_row is None:
                    raise ValueError(reason) from err
                bad_row(lineno, ",".join(row), reason)
                continue
            if v == 0:
                continue
            first, second = (low, h) if c >= o else (h, low)
            prices = (o, first, second, c)
            times = (t, t + interval_ms // 4, t + interval_ms // 2, t + interval_ms - 1)
            sizes = (v / 8, v / 8, v / 4, v / 2)
            base_id = (t // interval_ms) * 4
            prev = o
            for k in range(4):
                p = prices[k]
                if k == 0:
                    side: Side = "buy" if c >= o else "sell"
                else:
                    side = "buy" if p >= prev else "sell"
                prev = p
                yield Trade(schema_version=V1, exchange=exchange, symbol=symbol, venue_symbol=venue_symbol,
                            trade_id=str(base_id + k), price=p, size=sizes[k], side=side,
                            ts_event=times[k], ts_ingest=times[k])
