"""The trader books only fills of orders it sent: a fill of qty 10 for an order id it never produced took
the book to 10 BTC and -606,626 cash."""

from __future__ import annotations

from pathlib import Path

from contracts import V1, Fill
from tests.unit.trader.trader_support import feature, linear_bundle
from trader.handler import PolicyTrader


def _fill(oid: str, qty: float, policy: str = "p1") -> Fill:
    return Fill(schema_version=V1, fill_id=f"{oid}-1", order_id=oid, policy_id=policy, exchange="binance",
                symbol="ETH-USDT", side="buy", price=100.0, qty=qty, fee=0.0, slippage=0.0, ts=120_000, last=True)


def test_fills_of_orders_never_sent_are_refused_and_not_booked(tmp_path: Path) -> None:
    t = PolicyTrader(linear_bundle(tmp_path / "b"), "p1", notional=1000.0, capital=10_000.0)
    [order] = t.on_feature(feature(60_000, 1.0), 0).orders
    forged = _fill("o-forged", 10.0)
    assert "never sent" in (t.fill_problem(forged) or "")
    assert not t.on_fill(forged)
    assert t.book.cash == 10_000.0
    too_much = _fill(order.order_id, order.qty * 100)
    assert "more than" in (t.fill_problem(too_much) or "")
    good = _fill(order.order_id, order.qty)
    assert t.fill_problem(good) is None and t.on_fill(good)
    assert t.book.cash < 10_000.0
    assert t.fill_problem(_fill("o-other", 1.0, policy="p2")) is None  # another policy's fill is not ours to judge
