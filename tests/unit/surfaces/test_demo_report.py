"""The demo report's round trips, exposure-matched buy-and-hold and backlog figure, from known records."""

from __future__ import annotations

from pathlib import Path
from typing import Literal

import pytest

from contracts import V1, Bar, FeatureVector, Fill, Order, PortfolioSnapshot
from contracts.timeutil import iso
from tickflow.demo.report import Record, summarise, write_report

MIN = 60_000
T0 = 1_755_000_000_000 - 1_755_000_000_000 % (60 * MIN)
CAPITAL = 10_000.0
Side = Literal["buy", "sell"]


def _bar(k: int) -> Bar:
    close = 100.0 + k
    return Bar(schema_version=V1, exchange="binance", symbol="BTC-USDT", interval_s=60, window_start=T0 + k * MIN,
               window_end=T0 + (k + 1) * MIN, open=close - 0.5, high=close, low=close - 1, close=close, volume=1.0,
               vwap=close, trades=1, buy_volume=1.0, sell_volume=0.0)


def _fill(order: str, side: Side, ts: int, price: float, qty: float) -> Fill:
    return Fill(schema_version=V1, fill_id=f"{order}-0", order_id=order, policy_id="demo", exchange="binance",
                symbol="BTC-USDT", side=side, price=price, qty=qty, fee=price * qty * 0.0005, slippage=0.0, ts=ts,
                last=True)


def _order(oid: str, side: Side, feature_ts: int, qty: float) -> Order:
    return Order(schema_version=V1, order_id=oid, policy_id="demo", policy_version="1", exchange="binance",
                 symbol="BTC-USDT", side=side, qty=qty, target_position=1.0 if side == "buy" else 0.0,
                 ts=feature_ts, feature_ts=feature_ts, reason="r")


def _feature(ts: int) -> FeatureVector:
    return FeatureVector(schema_version=V1, exchange="binance", symbol="BTC-USDT", interval_s=60, ts=ts,
                         feature_schema="v1", ready=True, close=1.0, features={"ret_1": 0.0})


def test_round_trips_matched_buy_and_hold_and_backlog(tmp_path: Path) -> None:
    bars = [_bar(k) for k in range(120)]
    buy = _fill("o1", "buy", T0 + 10 * MIN + 5, 110.2, 10.0)  # in bar 10, after the decision at its start
    sell = _fill("o2", "sell", T0 + 70 * MIN + 5, 170.1, 10.0)
    features = [Record(1_000_000 + i, _feature(T0 + i * MIN)) for i in range(120)]  # one written every ms
    orders = [Record(1_000_020, _order("o1", "buy", T0 + 10 * MIN, 10.0)),
              Record(1_000_090, _order("o2", "sell", T0 + 70 * MIN, 10.0))]
    books = [Record(0, PortfolioSnapshot(schema_version=V1, policy_id="demo", ts=T0, positions={}, cash=CAPITAL,
                                         equity=CAPITAL, realised_pnl=0.0, unrealised_pnl=0.0, fees=0.0,
                                         drawdown=0.0))]
    figures = summarise({"signals.bars": [Record(0, b) for b in bars], "fills": [Record(0, buy), Record(0, sell)],
                         "signals.features": features, "orders": orders, "portfolio": books}, every=1)
    t = figures["trades"]["demo"]
    [trip] = t["round_trips"]
    assert trip["side"] == "long" and not trip["open"]
    assert (trip["entry_price"], trip["exit_price"]) == (110.2, 170.1)  # the prices the fills paid
    assert (trip["entry_ts"], trip["exit_ts"]) == (T0 + 10 * MIN, T0 + 70 * MIN)
    net = 10 * (170.1 - 110.2) - buy.fee - sell.fee  # flat before and after: exact, costs included
    assert trip["pnl"] * CAPITAL == pytest.approx(net)
    assert t["summary"]["count"] == 1 and t["summary"]["win_rate"] == 1.0
    # held 60 of 120 bars at about 11-17 % of equity: the matched buy-and-hold holds that mean from the first bar
    assert 0.05 < t["exposure"] < 0.1 and t["matched"]["position"] == pytest.approx(t["exposure"] * 120 / 119)
    assert t["matched"]["return"] == pytest.approx(t["buy_and_hold_return"] * t["matched"]["position"], rel=0.2)
    assert 0 < t["matched"]["return"] < t["buy_and_hold_return"]
    # each order's feature was written with 10 and 70 others in the second before it
    assert figures["backlog"]["per_order_last_second"]["p50"] == pytest.approx((11 + 71) / 2)

    text = write_report(tmp_path, figures, {}).read_text()
    assert "1 round trips, win rate 100%" in text and "| long | " in text
    assert f"buy-and-hold at the policy's exposure ({t['matched']['position']:.1%} held" in text
    assert "waits behind that backlog" in text
    # one buy-and-hold, defined where it is shown: the equity section's is the round trips' fully invested one
    policy = figures["policies"]["demo"]
    assert policy["buy_and_hold_from_ts"] == T0 and policy["buy_and_hold_end"] == pytest.approx(
        CAPITAL * (1 + t["buy_and_hold_return"]))
    bh = f"{t['buy_and_hold_return']:+.2%}"
    assert f"fully invested from the policy's first decision bar ({iso(T0)}) to the last bar, net of costs: " in text
    assert text.count(bh) == 2 and f"fully invested from the first decision bar, net of costs, {bh}" in text
    assert "over the same bars" not in text
    assert (tmp_path / "trades-demo.csv").read_text().count("\n") == 2
