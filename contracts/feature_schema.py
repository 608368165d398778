"""The feature schema: names, order, version and which features candle-derived data can support.

A FeatureVector's ``features`` object holds these names in this order. Changing a definition or the
order is a new schema version. Definitions (``c`` closes, ``r`` one-bar log returns ``ln(c_t/c_{t-1})``,
statistics over the last n bars, population standard deviation, an EMA of span s has alpha 2/(s+1)
and is seeded with its first input):

- ret_1, ret_5, ret_15, ret_60: log return over 1, 5, 15, 60 bars, ``ln(c_t / c_{t-n})``.
- rv_20, rv_60: realised volatility, ``sqrt(sum of r^2 over the last n bars)`` (not annualised).
- rsi_14: Wilder's RSI in [0, 100]: gains and losses of ``c_t - c_{t-1}`` smoothed with alpha 1/14,
  seeded with the first difference; 100 when there are no losses, 50 when nothing moved.
- macd: normalised EMA spread, ``ema_12(c) / ema_26(c) - 1``.
- macd_signal: ``ema_9(macd)``.
- bb_z_20: Bollinger z-score, ``(c_t - mean_20(c)) / std_20(c)``; 0 when the 20 closes are equal.
- close_vwap: ``ln(c_t / vwap_t)`` of the bar.
- volume_z_20: ``(v_t - mean_20(v)) / std_20(v)``; 0 when constant.
- flow_imb: taker-flow imbalance ``(buy - sell) / (buy + sell)`` of the bar.
- flow_imb_ema_10: ``ema_10(flow_imb)``.
- trades_z_20: z-score of the bar's trade count over 20 bars; 0 when constant.

A feature is null (NaN offline) until enough bars have closed (WARMUP_BARS); ``ready`` is true once
every feature has a value.
"""

from __future__ import annotations

FEATURE_SCHEMA: str = "v1"

FEATURE_NAMES: tuple[str, ...] = (
    "ret_1", "ret_5", "ret_15", "ret_60",
    "rv_20", "rv_60",
    "rsi_14",
    "macd", "macd_signal",
    "bb_z_20",
    "close_vwap",
    "volume_z_20",
    "flow_imb", "flow_imb_ema_10",
    "trades_z_20",
)
V1: tuple[str, ...] = FEATURE_NAMES

# Every schema a FeatureVector or a bundle may name: the trader refuses names that are not its schema's.
SCHEMAS: dict[str, tuple[str, ...]] = {"v1": V1}

# VWAP, taker flow and trade counts of candle-derived trades come from the expansion
# (contracts.history.candle_trades), not from the market: leave these out of a policy trained on candles.
CANDLE_UNSAFE: tuple[str, ...] = ("close_vwap", "flow_imb", "flow_imb_ema_10", "trades_z_20")
CANDLE_SAFE: tuple[str, ...] = tuple(n for n in FEATURE_NAMES if n not in CANDLE_UNSAFE)

# How many bars must have closed before each feature has a value (the bar at index WARMUP_BARS[name],
# counting from 0, is the first with a value).
WARMUP_BARS: dict[str, int] = {
    "ret_1": 1, "ret_5": 5, "ret_15": 15, "ret_60": 60,
    "rv_20": 20, "rv_60": 60,
    "rsi_14": 14,
    "macd": 25, "macd_signal": 33,
    "bb_z_20": 19,
    "close_vwap": 0,
    "volume_z_20": 19,
    "flow_imb": 0, "flow_imb_ema_10": 9,
    "trades_z_20": 19,
}
READY_AFTER_BARS: int = max(WARMUP_BARS.values()) + 1


def names_problem(schema: str, names: list[str] | tuple[str, ...]) -> str | None:
    """Why ``names`` are not a selection of ``schema``'s features in its order (None when they are)."""
    known = SCHEMAS.get(schema)
    if known is None:
        return f"feature schema {schema!r} is not one this tickflow knows ({', '.join(SCHEMAS)})"
    unknown = [n for n in names if n not in known]
    if unknown:
        return f"feature names {', '.join(map(repr, unknown[:5]))} are not in feature schema {schema!r}"
    if len(set(names)) != len(names):
        return "feature names repeat a name"
    order = [known.index(n) for n in names]
    if order != sorted(order):
        return (f"feature order {', '.join(names)} differs from feature schema {schema!r}'s order "
                f"({', '.join(n for n in known if n in names)})")
    return None


def warmup_text(interval_s: int, bars: int, ready: bool) -> str:
    """What a market waits for before the first decision, in words: "60 s bars: 14 of 61 needed before the
    first decision" (``bars`` closed so far), or that the features are ready."""
    if ready:
        return f"{interval_s} s bars: features ready ({READY_AFTER_BARS} bars needed)"
    seen = min(bars, READY_AFTER_BARS - 1)
    return f"{interval_s} s bars: {seen} of {READY_AFTER_BARS} needed before the first decision"
