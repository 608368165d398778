"""Decisions behind the risk gate: drawdown halts and flattens within one decision, stale features and gaps
hold, caps clip, the order rate is limited, and order ids are deterministic."""

from __future__ import annotations

from pathlib import Path

import pytest

from contracts import V1, Fill, MarketEvent
from tests.unit.trader.trader_support import feature, linear_bundle
from trader.handler import PolicyTrader, order_id
from trader.risk import RiskGate, RiskSettings, VerdictKind

MIN = 60_000
T0 = 1_750_000_000_000 - 1_750_000_000_000 % MIN


def _trader(tmp_path: Path, every: int = 1, **risk: object) -> PolicyTrader:
    return PolicyTrader(linear_bundle(tmp_path / "b", every=every), "p1", notional=1000.0, capital=10_000.0,
                        risk_settings=RiskSettings(**risk))  # type: ignore[arg-type]


def _fill(order_qty: float, price: float, side: str = "buy", oid: str = "x") -> Fill:
    return Fill(schema_version=V1, fill_id=f"{oid}-1", order_id=oid, policy_id="p1", exchange="binance",
                symbol="ETH-USDT", side=side, price=price, qty=order_qty, fee=0.0, slippage=0.0,  # type: ignore[arg-type]
                ts=T0, last=True)


def test_policy_orders_carry_deterministic_ids_and_sizes(tmp_path: Path) -> None:
    t = _trader(tmp_path)
    d = t.on_feature(feature(T0, 1.0, close=2000.0), 0)
    [o] = d.orders
    assert o.side == "buy" and o.qty == pytest.approx(0.5) and o.target_position == 1.0
    assert o.order_id == order_id("p1", t.version, "binance", "ETH-USDT", T0)
    assert t.on_feature(feature(T0 + MIN, 2.0, close=2000.0), 0).orders == []  # already long
    [o2] = t.on_feature(feature(T0 + 2 * MIN, -1.0, close=2000.0), 0).orders
    assert o2.side == "sell" and o2.qty == pytest.approx(0.5)


def test_other_bar_intervals_are_not_the_policys(tmp_path: Path) -> None:
    t = _trader(tmp_path)
    one_second = feature(T0, 1.0).__class__(**{**{k: getattr(feature(T0, 1.0), k)
                                                  for k in feature(T0, 1.0).__struct_fields__}, "interval_s": 1})
    assert not t.mine(one_second) and t.mine(feature(T0, 1.0))


def test_not_ready_features_hold(tmp_path: Path) -> None:
    t = _trader(tmp_path)
    assert t.on_feature(feature(T0, 1.0, ready=False), 0).orders == []
    assert t.held == 1


def test_drawdown_breach_flattens_and_halts_within_one_decision(tmp_path: Path) -> None:
    t = _trader(tmp_path, max_drawdown=0.1, max_notional=1e9)
    t.notional = 10_000.0
    [o] = t.on_feature(feature(T0, 1.0, close=100.0), 0).orders
    t.on_fill(_fill(o.qty, 100.0, oid=o.order_id))
    assert t.on_feature(feature(T0 + MIN, 1.0, close=95.0), 0).orders == []  # 5% down: keep
    d = t.on_feature(feature(T0 + 2 * MIN, 1.0, close=85.0), 0)  # 15% down: the very next decision flattens
    [flat] = d.orders
    assert flat.side == "sell" and flat.qty == pytest.approx(o.qty) and flat.reason.startswith("halt")
    assert t.risk.halted
    assert t.on_feature(feature(T0 + 3 * MIN, 5.0, close=90.0), 0).orders == []  # halted: nothing more


def test_breach_between_decision_bars_still_halts_at_once(tmp_path: Path) -> None:
    t = _trader(tmp_path, every=60, max_drawdown=0.1, max_notional=1e9)
    t.notional = 10_000.0
    [o] = t.on_feature(feature(T0 - T0 % (60 * MIN), 1.0, close=100.0), 0).orders
    t.on_fill(_fill(o.qty, 100.0, oid=o.order_id))
    d = t.on_feature(feature(T0 - T0 % (60 * MIN) + MIN, 1.0, close=80.0), 0)
    assert [x.side for x in d.orders] == ["sell"] and t.risk.halted


def test_stale_features_hold_by_event_and_wall_clock(tmp_path: Path) -> None:
    t = _trader(tmp_path, stale_after_s=120)
    t.on_feature(feature(T0 + 10 * MIN, -1.0), 0)  # newest event time seen
    d = t.on_feature(feature(T0, 1.0), 0)  # 10 minutes behind
    assert d.orders == [] and "old" in d.reason
    w = _trader(tmp_path / "w", stale_after_s=120, clock="wall")
    assert w.on_feature(feature(T0, 1.0), T0 + 121_000).orders == []
    assert len(w.on_feature(feature(T0 + MIN, 1.0), T0 + MIN + 1_000).orders) == 1


def test_the_event_clock_is_per_symbol_so_interleaved_replays_do_not_make_each_other_stale(tmp_path: Path) -> None:
    # two markets replayed side by side, a day apart in event time, their features interleaved
    t = _trader(tmp_path, stale_after_s=120)
    day = 24 * 60 * MIN
    got = {"ETH-USDT": [], "BTC-USDT": []}  # type: dict[str, list[str]]
    for k in range(4):
        for symbol, ts in (("ETH-USDT", T0 + k * MIN), ("BTC-USDT", T0 - day + k * MIN)):
            d = t.on_feature(feature(ts, 1.0 if k % 2 == 0 else -1.0, symbol=symbol), 0)
            got[symbol].append(d.orders[0].side if d.orders else d.reason)
    assert got["ETH-USDT"] == got["BTC-USDT"] == ["buy", "sell", "buy", "sell"]
    # a symbol's own clock still holds a feature older than its newest by more than the limit
    d = t.on_feature(feature(T0 - day, 1.0, symbol="BTC-USDT"), 0)
    assert d.orders == [] and "180 s old" in d.reason


def test_gap_events_hold_the_symbol(tmp_path: Path) -> None:
    t = _trader(tmp_path, gap_hold_s=600)
    t.on_event(MarketEvent(schema_version=V1, exchange="binance", symbol="ETH-USDT", kind="gap", ts=T0, count=3))
    d = t.on_feature(feature(T0 + MIN, 1.0), 0)
    assert d.orders == [] and "gap" in d.reason
    assert len(t.on_feature(feature(T0 + MIN, 1.0, symbol="BTC-USDT"), 0).orders) == 1  # other symbols trade
    assert len(t.on_feature(feature(T0 + 11 * MIN, 1.0), 0).orders) == 1


def test_caps_clip_and_order_rate_limits(tmp_path: Path) -> None:
    t = _trader(tmp_path, max_notional=500.0, max_orders_per_minute=2, stale_after_s=1e9)
    [o] = t.on_feature(feature(T0, 1.0, close=100.0), 0).orders
    assert o.qty == pytest.approx(5.0) and "clipped" in o.reason
    t.on_feature(feature(T0 + 1000, -1.0, close=100.0), 0)  # second order within the minute
    d = t.on_feature(feature(T0 + 2000, 1.0, close=100.0), 0)
    assert d.orders == [] and "orders in the last minute" in d.reason


def test_restore_rebuilds_intended_positions(tmp_path: Path) -> None:
    t = _trader(tmp_path)
    [o] = t.on_feature(feature(T0, 1.0, close=2000.0), 0).orders
    fresh = _trader(tmp_path / "again")
    fresh.restore_order(o)
    assert fresh.on_feature(feature(T0 + MIN, 1.0, close=2000.0), 0).orders == []
    [o2] = fresh.on_feature(feature(T0 + 2 * MIN, -1.0, close=2000.0), 0).orders
    assert o2.qty == pytest.approx(o.qty)


def test_the_verdict_kind_says_what_the_gate_did_whatever_its_reason_reads() -> None:
    gate = RiskGate(RiskSettings(max_notional=500.0, stale_after_s=60))
    assert gate.check("ETH-USDT", T0, 0, 1.0, 0.0, 100.0, 0.0).kind is VerdictKind.POLICY
    clipped = gate.check("ETH-USDT", T0, 0, 10.0, 0.0, 100.0, 0.0)
    assert clipped.kind is VerdictKind.CLIPPED and clipped.target_units == pytest.approx(5.0)
    assert clipped.reason.startswith("policy")  # the words for people still begin as before
    gate.observe_time("ETH-USDT", T0 + 10 * MIN)
    assert gate.check("ETH-USDT", T0, 0, 1.0, 0.0, 100.0, 0.0).kind is VerdictKind.HOLD
    halt = gate.check("ETH-USDT", T0 + 10 * MIN, 0, 1.0, 1.0, 100.0, 0.5)
    assert halt.kind is VerdictKind.HALT and halt.target_units == 0.0 and gate.halted
    assert gate.check("ETH-USDT", T0 + 11 * MIN, 0, 1.0, 0.0, 100.0, 0.0).kind is VerdictKind.HALTED


def test_a_restart_halts_again_from_the_last_portfolio_snapshot_not_from_order_reasons(tmp_path: Path) -> None:
    t = _trader(tmp_path, max_drawdown=0.1, max_notional=1e9)
    t.notional = 10_000.0
    [o] = t.on_feature(feature(T0, 1.0, close=100.0), 0).orders
    t.on_fill(_fill(o.qty, 100.0, oid=o.order_id))
    [flat] = t.on_feature(feature(T0 + MIN, 1.0, close=85.0), 0).orders
    snap = t.book.snapshot(t.policy_id, T0 + MIN, t.halted)
    assert snap.halted and flat.reason.startswith("halt")

    fresh = _trader(tmp_path / "again", max_drawdown=0.1, max_notional=1e9)
    for order in (o, flat):
        fresh.restore_order(order)
    assert not fresh.halted  # an order's reason is text for people, not state
    fresh.restore_halt(t.book.snapshot("another policy", T0 + MIN, True))
    assert not fresh.halted  # another policy's snapshot says nothing about this one
    fresh.restore_halt(snap)
    assert fresh.halted and "halted before the restart" in fresh.risk.halt_reason
    assert fresh.on_feature(feature(T0 + 2 * MIN, 1.0, close=90.0), 0).orders == []
