"""The offline builder (the live code) against an independent vectorised pandas/numpy reference.

The reference recomputes the bars straight from the candles and the documented expansion (not from
trades), and every feature with whole-column operations, over the bundled real candles. Every bar
field and every feature must agree to 1e-9.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from numpy.lib.stride_tricks import sliding_window_view

from contracts.feature_schema import (
    CANDLE_SAFE,
    FEATURE_NAMES,
    FEATURE_SCHEMA,
    SCHEMAS,
    STREAMS_SCHEMA,
    V2,
    WARMUP_BARS,
)
from streams.offline import build_from_file
from tests.helpers import DATA

CANDLES = sorted((DATA / "ohlcv").glob("binance_spot_*_1m_*.csv.gz"))


def reference_bars(path: Path) -> pd.DataFrame:
    """Bars of the candle expansion, vectorised: each candle with volume is one bar; the last stays open."""
    c = pd.read_csv(path)
    c = c[c["volume"] > 0].iloc[:-1].reset_index(drop=True)
    o, h, lo, cl, v = (c[k].to_numpy() for k in ("open", "high", "low", "close", "volume"))
    up = cl >= o
    first, second = np.where(up, lo, h), np.where(up, h, lo)
    sizes = (v / 8, v / 8, v / 4, v / 2)
    buys = (up, first >= o, second >= first, cl >= second)
    buy = sum(np.where(b, s, 0.0) for b, s in zip(buys, sizes, strict=True))
    sell = sum(np.where(b, 0.0, s) for b, s in zip(buys, sizes, strict=True))
    pv = o * sizes[0] + first * sizes[1] + second * sizes[2] + cl * sizes[3]
    return pd.DataFrame({"ts": c["open_time_ms"] + 60_000, "window_start": c["open_time_ms"], "open": o, "high": h,
                         "low": lo, "close": cl, "volume": v, "vwap": pv / v, "trades": 4, "buy_volume": buy,
                         "sell_volume": sell})


def _zscore(x: np.ndarray, n: int) -> np.ndarray:
    out = np.full(len(x), np.nan)
    w = sliding_window_view(x, n)
    dev = w - w[:, -1:]
    mean = dev.mean(axis=1)
    var = ((dev - mean[:, None]) ** 2).mean(axis=1)
    with np.errstate(divide="ignore", invalid="ignore"):
        out[n - 1:] = np.where(var > 0, -mean / np.sqrt(var), 0.0)
    return out


def reference_features(bars: pd.DataFrame) -> pd.DataFrame:
    c = bars["close"]
    r = np.log(c / c.shift(1))
    f = pd.DataFrame(index=bars.index)
    for n in (1, 5, 15, 60):
        f[f"ret_{n}"] = np.log(c / c.shift(n))
    for n in (20, 60):
        ss = np.full(len(r), np.nan)
        ss[n:] = sliding_window_view((r ** 2).to_numpy()[1:], n).sum(axis=1)
        f[f"rv_{n}"] = np.sqrt(ss)
    d = c.diff()
    gain = d.clip(lower=0).ewm(alpha=1 / 14, adjust=False).mean()
    loss = (-d).clip(lower=0).ewm(alpha=1 / 14, adjust=False).mean()
    f["rsi_14"] = np.where(gain + loss > 0, 100 * gain / (gain + loss), 50.0)
    macd = c.ewm(span=12, adjust=False).mean() / c.ewm(span=26, adjust=False).mean() - 1
    f["macd"] = macd
    f["macd_signal"] = macd.ewm(span=9, adjust=False).mean()
    f["bb_z_20"] = _zscore(c.to_numpy(), 20)
    f["close_vwap"] = np.log(c / bars["vwap"])
    f["volume_z_20"] = _zscore(bars["volume"].to_numpy(), 20)
    flow = (bars["buy_volume"] - bars["sell_volume"]) / (bars["buy_volume"] + bars["sell_volume"])
    f["flow_imb"] = flow
    f["flow_imb_ema_10"] = flow.ewm(span=10, adjust=False).mean()
    f["trades_z_20"] = _zscore(bars["trades"].to_numpy().astype(float), 20)
    for name, w in WARMUP_BARS.items():
        f.loc[f.index < w, name] = np.nan
    return f[list(FEATURE_NAMES)]


@pytest.mark.parametrize("path", CANDLES, ids=lambda p: p.name.split("_")[2])
def test_offline_builder_equals_vectorised_reference_on_bundled_candles(path: Path) -> None:
    symbol = path.name.split("_")[2]
    got = build_from_file(path, symbol=symbol)
    want_bars = reference_bars(path)
    assert len(got) == len(want_bars) > 100_000
    for col in want_bars.columns:
        np.testing.assert_allclose(got[col].to_numpy(dtype=float), want_bars[col].to_numpy(dtype=float),
                                   rtol=1e-9, atol=0, err_msg=col)
    want = reference_features(want_bars)
    for name in FEATURE_NAMES:
        a, b = got[name].to_numpy(), want[name].to_numpy()
        assert np.array_equal(np.isnan(a), np.isnan(b)), f"{name}: warm-up differs"
        np.testing.assert_allclose(a, b, rtol=1e-9, atol=1e-12, equal_nan=True, err_msg=name)
    assert (got["ready"] == ~want.isna().any(axis=1)).all()
    assert got["ready"].sum() == len(got) - max(WARMUP_BARS.values())


def test_schema_is_named_ordered_and_candle_safe_is_a_subset() -> None:
    assert FEATURE_SCHEMA == "v1"
    assert len(set(FEATURE_NAMES)) == len(FEATURE_NAMES) == 15
    assert set(WARMUP_BARS) == set(V2) and V2[:len(FEATURE_NAMES)] == FEATURE_NAMES
    assert SCHEMAS == {"v1": FEATURE_NAMES, "v2": V2} and STREAMS_SCHEMA == "v2"
    assert set(CANDLE_SAFE) < set(FEATURE_NAMES)
    assert not {"close_vwap", "flow_imb", "flow_imb_ema_10", "trades_z_20"} & set(CANDLE_SAFE)
    assert list(CANDLE_SAFE) == [n for n in FEATURE_NAMES if n in CANDLE_SAFE]
