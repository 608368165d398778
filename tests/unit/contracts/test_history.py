"""Historical readers: Binance dumps and the candle expansion that reproduces candles exactly."""

from __future__ import annotations

import gzip
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from contracts.history import binance_dump_trades, candle_trades, is_candle_file, symbol_from_dump_name
from contracts.symbols import normalise_symbol
from tests.helpers import DATA

TICKS = next((DATA / "ticks").glob("BTCUSDT-trades-*.csv"))
CANDLES = next((DATA / "ohlcv").glob("binance_spot_BTCUSDT_1m_*.csv.gz"))


@pytest.mark.parametrize(("raw", "want"), [
    ("BTCUSDT", "BTC-USDT"), ("btcusdt", "BTC-USDT"), ("BTC-USD", "BTC-USD"), ("XBT/USD", "BTC-USD"),
    ("ETHFDUSD", "ETH-FDUSD"), ("ETH-USDT", "ETH-USDT"), ("SOL_USDC", "SOL-USDC")])
def test_symbols_normalise(raw: str, want: str) -> None:
    assert normalise_symbol(raw) == want


def test_unknown_quote_is_named() -> None:
    with pytest.raises(ValueError, match="'FOOBAR'"):
        normalise_symbol("FOOBAR")


def test_binance_dump_reads_taker_side_and_exact_fields() -> None:
    assert symbol_from_dump_name(TICKS) == "BTCUSDT"
    trades = list(binance_dump_trades(TICKS, "BTCUSDT"))
    assert len(trades) == 19_904
    first = trades[0]
    # 3735683259,61837.63000000,0.02000000,1236.75260000,1723161255342,True,True: buyer was maker
    assert (first.trade_id, first.price, first.size, first.ts_event, first.side) == (
        "3735683259", 61837.63, 0.02, 1723161255342, "sell")
    ids = [int(t.trade_id) for t in trades]
    assert ids == list(range(ids[0], ids[0] + len(ids)))


def test_bad_dump_row_names_file_and_line(tmp_path: Path) -> None:
    bad = tmp_path / "BTCUSDT-trades-x.csv"
    bad.write_text("1,100.0,0.1,10,1000,True,True\n2,-5,0.1,10,1001,False,True\n")
    with pytest.raises(ValueError, match=r"BTCUSDT-trades-x.csv:2"):
        list(binance_dump_trades(bad, "BTCUSDT"))


def bars_of(trades: list) -> dict[int, tuple[float, float, float, float, float]]:
    out: dict[int, list] = {}
    for t in trades:
        out.setdefault(t.ts_event // 60_000 * 60_000, []).append(t)
    result = {}
    for start, ts in out.items():
        vol = 0.0
        for t in ts:
            vol += t.size
        result[start] = (ts[0].price, max(t.price for t in ts), min(t.price for t in ts), ts[-1].price, vol)
    return result


def test_candle_expansion_reproduces_the_real_candles_exactly(tmp_path: Path) -> None:
    cut = tmp_path / "c.csv"
    with gzip.open(CANDLES, "rt") as f:
        cut.write_text("".join(next(f) for _ in range(3001)))
    assert is_candle_file(cut) and not is_candle_file(TICKS)
    trades = list(candle_trades(cut, "BTCUSDT"))
    rows = [line.split(",") for line in cut.read_text().splitlines()[1:]]
    bars = bars_of(trades)
    assert len(bars) == len(rows) == 3000
    for row in rows:
        o, h, low, c, v = (float(x) for x in row[1:])
        assert bars[int(row[0])] == (o, h, low, c, v)  # exact, not approximately
    assert [int(t.trade_id) for t in trades] == list(range(int(trades[0].trade_id), int(trades[0].trade_id) + 12000))


finite = st.floats(min_value=1e-6, max_value=1e7, allow_nan=False, allow_infinity=False)


@given(a=finite, b=finite, c=finite, d=finite, v=st.one_of(st.just(0.0), st.floats(min_value=1e-12, max_value=1e9)))
def test_any_candle_expands_exactly(tmp_path_factory: pytest.TempPathFactory, a: float, b: float, c: float,
                                    d: float, v: float) -> None:
    """Exact for every volume a market reports (subnormal volumes, below 1e-300, are out of scope)."""
    o, close = a, b
    high, low = max(a, b, c, d), min(a, b, c, d)
    path = tmp_path_factory.mktemp("c") / "c.csv"
    path.write_text(f"open_time_ms,open,high,low,close,volume\n60000,{o!r},{high!r},{low!r},{close!r},{v!r}\n")
    trades = list(candle_trades(path, "BTCUSDT"))
    if v == 0:
        assert trades == []
        return
    assert bars_of(trades)[60000] == (o, high, low, close, v)
    assert all(60000 <= t.ts_event < 120000 for t in trades)
