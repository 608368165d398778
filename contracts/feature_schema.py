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

Schema ``v2`` is ``v1`` followed by book features, from the symbol's L2 book (``market.books``) as it
stood at the bar's end in event time: every book update with ``ts_event`` before the bar's end applied, in
the topic's order (the bar holds trades with ``window_start <= ts_event < window_end``, and so do its book
updates). ``b1``/``a1`` are the best bid and ask prices, ``qb1``/``qa1`` their sizes, ``mid = (a1 + b1) / 2``:

- book_spread_bps: ``(a1 - b1) / mid * 1e4``.
- book_mid: ``mid``.
- book_micro_bps: weighted mid (Stoikov's microprice without his Markov correction) against the mid,
  ``(I*a1 + (1-I)*b1 - mid) / mid * 1e4`` with ``I = qb1 / (qb1 + qa1)``; positive when the bid is heavier.
- book_imb_1, book_imb_5, book_imb_10: ``(sum of bid sizes - sum of ask sizes) / (sum of both)`` over the
  best 1, 5 and 10 levels of each side (fewer when a side has fewer), in [-1, 1].
- book_depth_bid_10bps, book_depth_ask_10bps, book_depth_bid_50bps, book_depth_ask_50bps: total size (base
  units) of the bid levels priced at or above ``mid * (1 - x/1e4)``, and of the ask levels at or below
  ``mid * (1 + x/1e4)``, x = 10 and 50.
- book_ofi: order-flow imbalance of Cont, Kukanov and Stoikov (2014) summed over the bar's book updates,
  each update contributing ``e = 1{b1>=b1'}qb1 - 1{b1<=b1'}qb1' - 1{a1<=a1'}qa1 + 1{a1>=a1'}qa1'`` (primes:
  the best levels before the update); 0 for an update with no whole two-sided book before or after it.
  Venues batch their updates (Binance: one diff per 100 ms), so an update here is one ``market.books``
  record, not one order event.
- book_updates: how many book updates (deltas, and snapshots that replaced the book) fell in the bar.

The level features are null when no whole two-sided book is held at the bar's end (a symbol without books,
a book waiting for its snapshot) or when the book's newest applied update is more than BOOK_MAX_AGE_MS
before the bar's end (a feed that stopped, or trades replayed long after their books); book_ofi and
book_updates are null for a symbol that never had a book record. They need no warm-up.

A feature is null (NaN offline) until enough bars have closed (WARMUP_BARS); ``ready`` is true once every
trade feature (``v1``'s) has a value. Book features do not enter ``ready``: a consumer checks the values it
uses (the trader holds while any of its bundle's features is null).
"""

from __future__ import annotations

FEATURE_SCHEMA: str = "v1"

# A book whose newest applied update is older than this at a bar's end gives no level features.
BOOK_MAX_AGE_MS: int = 60_000  # the trade features' schema (FEATURE_NAMES): what a trade dump or candle file gives

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

BOOK_FEATURE_NAMES: tuple[str, ...] = (
    "book_spread_bps", "book_mid", "book_micro_bps",
    "book_imb_1", "book_imb_5", "book_imb_10",
    "book_depth_bid_10bps", "book_depth_ask_10bps", "book_depth_bid_50bps", "book_depth_ask_50bps",
    "book_ofi", "book_updates",
)
V2: tuple[str, ...] = V1 + BOOK_FEATURE_NAMES

# The schema the streams worker publishes, and the offline builder gives for a recording with books.
STREAMS_SCHEMA: str = "v2"

# Every schema a FeatureVector or a bundle may name: the trader refuses names that are not its schema's.
SCHEMAS: dict[str, tuple[str, ...]] = {"v1": V1, "v2": V2}

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
    **{name: 0 for name in BOOK_FEATURE_NAMES},
}
READY_AFTER_BARS: int = max(WARMUP_BARS.values()) + 1


def serves(vector_schema: str, bundle_schema: str) -> bool:
    """True when vectors of ``vector_schema`` hold every feature of ``bundle_schema`` under the same definitions:
    the same schema, or a later one that extends it (``v2`` starts with ``v1``'s names), so a v1 bundle
    trades on the worker's v2 vectors by picking its names."""
    vec, bun = SCHEMAS.get(vector_schema), SCHEMAS.get(bundle_schema)
    return vec is not None and bun is not None and vec[:len(bun)] == bun


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
