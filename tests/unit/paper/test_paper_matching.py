"""The paper broker's matching: latency, partial fills, costs, idempotence, bounded memory; and the book."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from contracts import V1, Order, Trade
from contracts.costs import CostSettings
from paper.matching import Matcher, PaperSettings
from trader.portfolio import Book


def _order(oid: str = "o1", qty: float = 1.0, side: str = "buy", ts: int = 1_000) -> Order:
    return Order(schema_version=V1, order_id=oid, policy_id="p", policy_version="v", exchange="binance",
                 symbol="ETH-USDT", side=side, qty=qty, target_position=1.0, ts=ts, feature_ts=ts)  # type: ignore[arg-type]


def _trade(i: int, ts: int, price: float = 100.0, size: float = 1.0) -> Trade:
    return Trade(schema_version=V1, exchange="binance", symbol="ETH-USDT", venue_symbol="ETHUSDT",
                 trade_id=str(i), price=price, size=size, side="buy", ts_event=ts, ts_ingest=ts)


def test_fills_at_trades_after_the_latency_with_fee_and_slippage() -> None:
    m = Matcher(PaperSettings(latency_ms=100, costs=CostSettings(fee_bps=10, slippage_bps=5)))
    m.on_trade(_trade(1, 1_050, price=99.0))  # before order ts + latency: not used
    assert m.on_order(_order(ts=1_000)) == []
    [f] = m.on_trade(_trade(2, 1_100, price=100.0, size=3.0))
    assert f.price == pytest.approx(100.05) and f.qty == 1.0 and f.last
    assert f.fee == pytest.approx(0.001 * 100.05) and f.slippage == pytest.approx(0.05)
    assert f.fill_id == "o1-1" and f.trade_id == "2"


def test_partial_fills_when_trades_are_small_and_orders_arriving_late_use_the_buffer() -> None:
    m = Matcher(PaperSettings(participation=0.5, costs=CostSettings(fee_bps=0, slippage_bps=0)))
    for i, ts in enumerate((900, 1_000, 1_500)):
        m.on_trade(_trade(i, ts, price=100.0 + i, size=1.0))
    fills = m.on_order(_order(qty=1.5, ts=1_000))  # the trades at 1000 and 1500 already happened
    assert [(f.qty, f.price, f.last) for f in fills] == [(0.5, 101.0, False), (0.5, 102.0, False)]
    [last] = m.on_trade(_trade(9, 2_000, size=4.0))
    assert last.qty == pytest.approx(0.5) and last.last and last.fill_id == "o1-3"
    assert m.on_trade(_trade(10, 2_100)) == []


def test_a_repeated_order_id_gives_no_second_fill() -> None:
    m = Matcher()
    m.on_trade(_trade(1, 2_000))
    assert len(m.on_order(_order())) == 1
    assert m.on_order(_order()) == []


def test_memory_is_bounded() -> None:
    m = Matcher(PaperSettings(trade_buffer=100, max_open_orders=10, remember_done=50))
    for i in range(1_000):
        m.on_trade(_trade(i, 10_000 + i, size=1e-6))
        m.on_order(_order(oid=f"o{i}", ts=10_000_000 + i))
    assert len(m.trades[("binance", "ETH-USDT")]) == 100 and len(m.open) <= 10 and len(m.done) <= 50


@settings(max_examples=60, deadline=None)
@given(st.lists(st.tuples(st.integers(0, 5_000), st.floats(0.001, 3.0)), min_size=1, max_size=40),
       st.floats(0.01, 5.0), st.integers(0, 3_000), st.floats(0.1, 1.0))
def test_fills_never_exceed_the_order_and_do_not_depend_on_arrival(trades: list[tuple[int, float]], qty: float,
                                                                    order_ts: int, participation: float) -> None:
    trades = sorted(trades)
    settings_ = PaperSettings(participation=participation)
    early, late = Matcher(settings_), Matcher(settings_)
    a = early.on_order(_order(qty=qty, ts=order_ts))
    for i, (ts, size) in enumerate(trades):
        a += early.on_trade(_trade(i, ts, size=size))
    b = []
    for i, (ts, size) in enumerate(trades):
        b += late.on_trade(_trade(i, ts, size=size))
    b += late.on_order(_order(qty=qty, ts=order_ts))
    assert a == b
    assert sum(f.qty for f in a) <= qty * (1 + 1e-9)
    assert all(f.ts >= order_ts for f in a)


def test_book_accounts_cash_fees_and_pnl() -> None:
    from contracts import Fill

    def fill(side: str, qty: float, price: float, fee: float) -> Fill:
        return Fill(schema_version=V1, fill_id="f", order_id="o", policy_id="p", exchange="binance",
                    symbol="ETH-USDT", side=side, price=price, qty=qty, fee=fee, slippage=0.0, ts=1)  # type: ignore[arg-type]

    book = Book(1_000.0)
    book.apply(fill("buy", 2.0, 100.0, 0.2))
    book.apply(fill("buy", 2.0, 110.0, 0.22))
    book.mark("ETH-USDT", 120.0)
    assert book.positions["ETH-USDT"] == 4.0 and book.avg_cost["ETH-USDT"] == pytest.approx(105.0)
    assert book.equity == pytest.approx(1_000 - 420 - 0.42 + 480)
    book.apply(fill("sell", 3.0, 90.0, 0.27))
    assert book.realised == pytest.approx(-45.0) and book.fees == pytest.approx(0.69)
    assert book.equity == pytest.approx(1_000 - 420 - 0.42 + 270 - 0.27 + 90)
    assert book.drawdown == pytest.approx(1 - book.equity / (1_000 - 420.42 + 480))
