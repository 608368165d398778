"""An order the paper broker's book cannot fill whole ends with its rest cancelled (``Fill.cancelled`` on the
last fill): the trader releases that rest, so its next decision bar orders the difference to the same target,
and a restart rebuilt from the orders and fills is in the same state."""

from __future__ import annotations

from pathlib import Path

import pytest

from contracts import V1, Fill, Order
from contracts.books import BookUpdate
from paper.matching import Matcher, PaperSettings
from tests.unit.trader.trader_support import feature, linear_bundle
from trader.handler import PolicyTrader

MIN = 60_000
T0 = 1_750_000_000_000 - 1_750_000_000_000 % MIN
SYMBOL = "BTC-USDT"


def _book(seq: int, ts: int, asks: list[tuple[float, float]]) -> BookUpdate:
    return BookUpdate(schema_version=V1, exchange="binance", symbol=SYMBOL, venue_symbol="BTCUSDT",
                      kind="snapshot" if seq == 1 else "delta", seq=seq, first_seq=None if seq == 1 else seq,
                      bids=[(99.0, 50.0)] if seq == 1 else [], asks=asks, ts_event=ts, ts_ingest=ts)


def _fills(m: Matcher, order: Order, known_past: int) -> list[Fill]:
    """The broker's fills of ``order``: the book is known past its execution time once a later record arrives."""
    return m.on_order(order) + m.on_book(_book(known_past, order.ts + 1_000 * known_past, []))


def test_a_cancelled_rest_is_released_and_the_next_decision_orders_the_difference(tmp_path: Path) -> None:
    t = PolicyTrader(linear_bundle(tmp_path / "b"), "p1", notional=1_000.0, capital=10_000.0)
    m = Matcher(PaperSettings(books=SYMBOL, latency_ms=10))
    m.on_book(_book(1, T0 - 5_000, [(100.0, 4.0)]))  # 4 units on the whole ask side
    [first] = t.on_feature(feature(T0, 1.0, close=100.0, symbol=SYMBOL), 0).orders
    assert first.side == "buy" and first.qty == pytest.approx(10.0)  # 1,000 quote at 100
    fills = _fills(m, first, 2)
    assert [(f.qty, f.last, f.cancelled) for f in fills] == [(4.0, True, 6.0)]  # the broker's real cancel
    assert all(t.on_fill(f) for f in fills)
    st = t.symbols[("binance", SYMBOL)]
    assert st.units == pytest.approx(4.0) and st.target_units == pytest.approx(10.0)
    assert t.fill_problem(fills[0].__class__(**{**{k: getattr(fills[0], k) for k in fills[0].__struct_fields__},
                                                 "fill_id": "late", "cancelled": 0.0})) is not None  # finished

    # the same target at the next bar: the 6 units the book lacked are ordered again, no more
    [again] = t.on_feature(feature(T0 + MIN, 2.0, close=100.0, symbol=SYMBOL), 0).orders
    assert again.side == "buy" and again.qty == pytest.approx(6.0) and again.target_position == 1.0
    assert t.on_feature(feature(T0 + 2 * MIN, 1.0, close=100.0, symbol=SYMBOL), 0).orders == []  # nothing came back

    # a restart rebuilds the orders, then the fills: the rest is released in the same way
    fresh = PolicyTrader(linear_bundle(tmp_path / "b2"), "p1", notional=1_000.0, capital=10_000.0)
    fresh.restore_order(first)
    assert all(fresh.on_fill(f) for f in fills)
    [replayed] = fresh.on_feature(feature(T0 + MIN, 2.0, close=100.0, symbol=SYMBOL), 0).orders
    assert (replayed.order_id, replayed.qty) == (again.order_id, pytest.approx(6.0))

    # a flat target right after the cancel sells what was filled, not what was asked
    other = PolicyTrader(linear_bundle(tmp_path / "b3"), "p1", notional=1_000.0, capital=10_000.0)
    other.restore_order(first)
    assert all(other.on_fill(f) for f in fills)
    [flat] = other.on_feature(feature(T0 + MIN, -1.0, close=100.0, symbol=SYMBOL), 0).orders
    assert flat.side == "sell" and flat.qty == pytest.approx(4.0)
