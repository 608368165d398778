"""Book fills (PAPER__BOOKS): a hand-built book and orders give exact prices, the liquidity they took, partial
fills with the rest cancelled, and the same fills whatever the arrival order of books and orders or a restart."""

from __future__ import annotations

import pytest

from contracts import V1, Fill, Order
from contracts.book_walk import walk_side
from contracts.books import BookUpdate
from contracts.costs import CostSettings
from paper.matching import Matcher, PaperSettings

SETTINGS = PaperSettings(books="BTC-USDT", latency_ms=10, costs=CostSettings(fee_bps=10, slippage_bps=50))


def _book(kind: str, seq: int, ts: int, bids: list[tuple[float, float]],
          asks: list[tuple[float, float]]) -> BookUpdate:
    return BookUpdate(schema_version=V1, exchange="binance", symbol="BTC-USDT", venue_symbol="BTCUSDT",
                      kind=kind, seq=seq, first_seq=seq if kind == "delta" else None, bids=bids, asks=asks,  # type: ignore[arg-type]
                      ts_event=ts, ts_ingest=ts)


def _order(oid: str, qty: float, side: str = "buy", ts: int = 1_000) -> Order:
    return Order(schema_version=V1, order_id=oid, policy_id="p", policy_version="v", exchange="binance",
                 symbol="BTC-USDT", side=side, qty=qty, target_position=1.0, ts=ts, feature_ts=ts)  # type: ignore[arg-type]


BOOKS = [
    _book("snapshot", 1, 1_000, [(99.0, 1.0), (98.0, 2.0)], [(101.0, 1.0), (102.0, 2.0), (103.0, 1.0)]),
    _book("delta", 2, 1_020, [], [(101.0, 3.0)]),  # after the first orders' execution time (1,010)
    _book("delta", 3, 1_040, [(97.0, 1.0)], []),
]
ORDERS = [_order("a", 1.5), _order("b", 2.0), _order("c", 5.0), _order("d", 1.0, ts=1_020),
          _order("s", 1.5, side="sell")]


def _take(fills: list[Fill]) -> list[tuple[str, float, float, float, bool, float]]:
    return [(f.order_id, f.price, round(f.qty, 12), f.book_size, f.last, round(f.cancelled, 12)) for f in fills]


def _run(books_first: bool) -> list[Fill]:
    m = Matcher(SETTINGS)
    fills: list[Fill] = []
    first, then = (BOOKS, ORDERS) if books_first else (ORDERS, BOOKS)
    for x in (*first, *then):
        fills += m.on_book(x) if isinstance(x, BookUpdate) else m.on_order(x)
    return fills


def test_orders_walk_the_book_take_its_liquidity_once_and_cancel_what_it_lacks() -> None:
    fills = _run(books_first=True)
    by_order = {oid: [f for f in fills if f.order_id == oid] for oid in "abcds"}
    assert _take(by_order["a"]) == [("a", 101.0, 1.0, 1.0, False, 0.0), ("a", 102.0, 0.5, 2.0, True, 0.0)]
    # b comes after a at the same time: 101 is gone, 1.5 of 102 is left
    assert _take(by_order["b"]) == [("b", 102.0, 1.5, 2.0, False, 0.0), ("b", 103.0, 0.5, 1.0, True, 0.0)]
    # c finds 0.5 left of the whole ask side: the rest is cancelled, with the reason on its last fill
    [c] = by_order["c"]
    assert _take([c]) == [("c", 103.0, 0.5, 1.0, True, 4.5)]
    assert "held 0.5 of 5" in c.reason and "4.5 cancelled" in c.reason
    # d executes at 1,030, after 101 changed to 3: a level whose size changed is new liquidity
    assert _take(by_order["d"]) == [("d", 101.0, 1.0, 3.0, True, 0.0)]
    assert _take(by_order["s"]) == [("s", 99.0, 1.0, 1.0, False, 0.0), ("s", 98.0, 0.5, 2.0, True, 0.0)]
    a1, a2 = by_order["a"]
    # the taker fee on each level's notional; slippage against the mid (100) before the order; no slippage bps
    assert a1.fee == pytest.approx(0.001 * 101.0) and a2.fee == pytest.approx(0.001 * 0.5 * 102.0)
    assert a1.slippage == pytest.approx(1.0) and a2.slippage == pytest.approx(1.0)
    assert by_order["s"][1].slippage == pytest.approx(1.0)  # a sell at 98 costs 2 a unit against the mid
    assert {f.ts for f in by_order["a"]} == {1_010} and by_order["d"][0].ts == 1_030
    assert [f.fill_id for f in by_order["a"]] == ["a-1", "a-2"] and all(f.trade_id == "" for f in fills)


def test_fills_do_not_depend_on_whether_books_or_orders_arrive_first() -> None:
    assert _run(books_first=True) == _run(books_first=False)


def test_an_order_waits_until_the_book_is_known_past_its_time() -> None:
    m = Matcher(SETTINGS)
    m.on_book(BOOKS[0])
    assert m.on_order(_order("a", 1.0)) == []  # at 1,010 the book is known only to 1,000
    assert _take(m.on_book(BOOKS[1])) == [("a", 101.0, 1.0, 1.0, True, 0.0)]


def test_an_order_before_the_first_snapshot_fills_at_the_first_synchronised_book() -> None:
    m = Matcher(SETTINGS)
    assert m.on_order(_order("early", 1.0, ts=100)) == []
    assert m.on_book(_book("delta", 1, 500, [(90.0, 1.0)], [(91.0, 1.0)])) == []  # no snapshot yet: not applied
    assert m.on_book(BOOKS[0]) == []
    [f] = m.on_book(BOOKS[1])
    assert (f.price, f.ts) == (101.0, 1_000)


def test_a_restart_rebuilds_the_taken_liquidity_from_the_fills() -> None:
    first = Matcher(SETTINGS)
    for u in BOOKS:
        first.on_book(u)
    a = first.on_order(ORDERS[0])
    restarted = Matcher(SETTINGS)
    for u in BOOKS:
        restarted.on_book(u)
    for f in a:
        restarted.book.restore_taken(f)  # type: ignore[union-attr]
    assert restarted.on_order(ORDERS[1]) == first.on_order(ORDERS[1])


def test_symbols_without_a_book_keep_the_trade_model() -> None:
    m = Matcher(SETTINGS)
    assert not m.booked(Order(**{**{k: getattr(ORDERS[0], k) for k in ORDERS[0].__struct_fields__},
                                 "symbol": "ETH-USDT"}))
    assert m.booked(ORDERS[0]) and not Matcher(PaperSettings()).booked(ORDERS[0])


def test_the_walk_the_environment_uses_is_the_same_function() -> None:
    w = walk_side([(101.0, 1.0), (102.0, 2.0)], 4.0)
    assert [(t.price, t.qty) for t in w.takes] == [(101.0, 1.0), (102.0, 2.0)] and w.rest == pytest.approx(1.0)
    assert w.average_price == pytest.approx((101.0 + 204.0) / 3)


def test_an_order_dropped_for_too_many_open_orders_never_fills() -> None:
    m = Matcher(PaperSettings(books="BTC-USDT", max_open_orders=1))
    m.on_book(BOOKS[0])
    assert m.on_order(_order("old", 1.0)) == [] and m.on_order(_order("new", 1.0)) == []  # both wait for 1,010
    assert [f.order_id for f in m.on_book(BOOKS[1])] == ["new"]
