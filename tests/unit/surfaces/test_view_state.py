"""The live view's state: what the page shows, whatever order records arrive in, in bounded memory."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from contracts import V1, Bar, FeatureVector, Order, PortfolioSnapshot, Trade
from contracts.books import BookKind, BookUpdate
from tickflow.view.server import render_page
from tickflow.view.state import ViewState


def _trade(ts: int, price: float) -> Trade:
    return Trade(schema_version=V1, exchange="binance", symbol="BTC-USDT", venue_symbol="BTCUSDT",
                 trade_id=str(ts), price=price, size=0.1, side="buy", ts_event=ts, ts_ingest=ts)


def _book(ts: int, equity: float) -> PortfolioSnapshot:
    return PortfolioSnapshot(schema_version=V1, policy_id="p", ts=ts, positions={"BTC-USDT": 1.0}, cash=0.0,
                             equity=equity, realised_pnl=0.0, unrealised_pnl=0.0, fees=0.0, drawdown=0.0)


points = st.lists(st.tuples(st.integers(0, 10**12), st.floats(1, 1e6)), min_size=1, max_size=200,
                  unique_by=lambda p: p[0])


@given(points)
def test_last_price_and_book_are_the_latest_by_event_time_in_any_arrival_order(pts: list[tuple[int, float]]) -> None:
    state = ViewState(max_points=50, max_rows=10)
    for ts, price in pts:
        state.apply("market.trades", _trade(ts, price))
        state.apply("portfolio", _book(ts, price))
    snap = state.snapshot()
    latest = max(pts)
    assert snap["markets"][0]["last_price"] == latest[1]
    assert snap["markets"][0]["trades"] == len(pts) == snap["counts"]["market.trades"]
    assert snap["portfolios"][0]["equity"] == latest[1]
    assert len(snap["markets"][0]["series"]) == min(50, len(pts))  # bounded
    assert len(snap["portfolios"][0]["equity_series"]) == min(50, len(pts))


def test_the_chart_follows_the_shortest_bar_interval() -> None:
    state = ViewState()
    for interval, close in ((300, 10.0), (60, 11.0), (300, 12.0), (60, 13.0)):
        state.apply("signals.bars", Bar(schema_version=V1, exchange="x", symbol="A-B", interval_s=interval,
                                        window_start=0, window_end=interval * 1000, open=close, high=close,
                                        low=close, close=close, volume=1.0, vwap=close, trades=1,
                                        buy_volume=1.0, sell_volume=0.0))
    market = state.snapshot()["markets"][0]
    assert market["series_kind"] == "60s bar closes" and [p[1] for p in market["series"]] == [11.0, 13.0]
    assert market["bars"] == 4


def _bar(interval: int, end_ms: int, close: float) -> Bar:
    return Bar(schema_version=V1, exchange="x", symbol="A-B", interval_s=interval,
               window_start=end_ms - interval * 1000,
               window_end=end_ms, open=close, high=close, low=close, close=close, volume=1.0, vwap=close, trades=1,
               buy_volume=1.0, sell_volume=0.0)


def test_the_chart_follows_the_policy_s_interval_so_hourly_orders_stay_on_it() -> None:
    """A policy on 60 s bars deciding hourly: with the worker's 1 s bars the 600 points held 10 minutes and an
    hourly order's marker fell off the chart; on the policy's interval they hold 10 hours."""
    state = ViewState(max_points=600, interval_s=60)
    for k in range(6 * 3600):  # six hours of 1 s bars, and their 60 s bars
        state.apply("signals.bars", _bar(1, (k + 1) * 1000, 1.0))
        if (k + 1) % 60 == 0:
            state.apply("signals.bars", _bar(60, (k + 1) * 1000, 2.0))
    state.apply("orders", Order(schema_version=V1, order_id="o", policy_id="p", policy_version="1", exchange="x",
                                symbol="A-B", side="buy", qty=1.0, target_position=1.0, ts=3_600_000,
                                feature_ts=3_600_000, reason="r"))
    market = state.snapshot()["markets"][0]
    assert market["series_kind"] == "60s bar closes" and len(market["series"]) == 6 * 60
    assert market["series"][0][0] <= market["markers"][0][0] <= market["series"][-1][0]


def test_the_warm_up_counts_the_features_of_the_policy_s_interval() -> None:
    state = ViewState(interval_s=60)
    for k, interval in enumerate((1, 60, 1, 60, 300)):
        state.apply("signals.features", FeatureVector(
            schema_version=V1, exchange="x", symbol="A-B", interval_s=interval, ts=(k + 1) * 60_000,
            feature_schema="v1", ready=False, close=1.0, features={"ret_1": None}))
    assert state.snapshot()["markets"][0]["warmup"] == {
        "interval_s": 60, "bars": 2, "ready": False, "text": "60 s bars: 2 of 61 needed before the first decision"}


def test_refused_records_are_counted_apart() -> None:
    state = ViewState()
    state.refuse("fills")
    snap = state.snapshot()
    assert snap["refused"]["fills"] == 1 and snap["counts"]["fills"] == 0


def test_a_value_cannot_close_the_inline_script() -> None:
    page = render_page({"counts": {}, "refused": {}, "markets": [], "orders": [{"reason": "</script><b>x"}],
                        "fills": [], "portfolios": [], "generated_ms": 0}, poll_ms=0)
    inline = page.split('<script id="initial-state" type="application/json">')[1].split("</script>")[0]
    assert "<\\/script>" in inline and "__POLL_MS__" not in page


def _update(kind: BookKind, seq: int, bids: list[tuple[float, float]], asks: list[tuple[float, float]],
            first_seq: int | None = None) -> BookUpdate:
    return BookUpdate(schema_version=V1, exchange="binance", symbol="BTC-USDT", venue_symbol="BTCUSDT", kind=kind,
                      seq=seq, first_seq=first_seq, bids=bids, asks=asks, ts_event=seq, ts_ingest=seq)


def test_the_top_of_book_follows_market_books_from_a_snapshot_on() -> None:
    state = ViewState()
    state.apply("market.books", _update("delta", 5, [(99.0, 1.0)], [], first_seq=5))  # before any snapshot
    assert state.snapshot()["markets"] == []
    state.apply("market.books", _update("snapshot", 10, [(100.0, 1.0), (99.0, 2.0), (98.0, 3.0)],
                                        [(101.0, 1.0), (102.0, 4.0)]))
    # the best bid goes, a better ask comes, a level deeper changes
    state.apply("market.books", _update("delta", 12, [(100.0, 0.0), (98.0, 0.5)], [(100.5, 2.0)], first_seq=11))
    book = state.snapshot()["markets"][0]["book"]
    assert (book["bid"], book["bid_size"], book["ask"], book["ask_size"]) == (99.0, 2.0, 100.5, 2.0)
    assert book["spread"] == 1.5 and book["spread_bps"] == 1.5 / 99.75 * 1e4
    assert book["imbalance"] == (2.5 - 7.0) / 9.5  # top 5 a side: every level here
    assert book["bids"] == [[99.0, 2.0], [98.0, 0.5]] and book["asks"] == [[100.5, 2.0], [101.0, 1.0], [102.0, 4.0]]
    assert (book["seq"], book["updates"]) == (12, 2)
    assert state.snapshot()["counts"]["market.books"] == 3


def test_champion_and_challenger_in_shadow_sit_side_by_side_under_one_policy_id() -> None:
    """The live book and a shadow book of the same policy id stay apart: equity, position, decisions, version."""
    state = ViewState()
    for ts, (live, shadow) in enumerate(((10_000.0, 10_000.0), (10_050.0, 9_990.0))):
        state.apply("portfolio.shadow", _book(ts, shadow))
        state.apply("portfolio", _book(ts, live))
    for n, (topic, version) in enumerate((("orders", "champ"), ("orders.shadow", "chal"), ("orders.shadow", "chal"))):
        state.apply(topic, Order(schema_version=V1, order_id=f"o{n}", policy_id="p", policy_version=version,
                                 exchange="x", symbol="BTC-USDT", side="buy", qty=1.0, target_position=1.0, ts=n,
                                 feature_ts=n))
    snap = state.snapshot()
    books = {(p["role"], p["policy_id"]): p for p in snap["portfolios"]}
    assert [p["role"] for p in snap["portfolios"]] == ["champion", "shadow"]
    assert books[("champion", "p")]["equity"] == 10_050.0 and books[("shadow", "p")]["equity"] == 9_990.0
    assert books[("champion", "p")]["orders"] == 1 and books[("shadow", "p")]["orders"] == 2
    assert books[("champion", "p")]["version"] == "champ" and books[("shadow", "p")]["version"] == "chal"
    assert [o["role"] for o in snap["orders"]] == ["shadow", "shadow", "champion"]
    assert len(snap["markets"][0]["markers"]) == 1  # the price chart marks the champion's order only
    page = render_page(snap, poll_ms=0)
    assert '"role": "shadow"' in page and "challengers in shadow" in page


def test_the_instances_of_one_policy_each_show_their_own_book() -> None:
    """`tickflow trade --instance`: each instance keeps its own book (its cash from TRADER__CAPITAL, the symbols
    of its partitions); the view shows one row per instance, not whichever snapshot came last."""
    state = ViewState()
    for ts in range(3):
        for instance, symbol, equity in (("a", "BTC-USDT", 10_000.0 + ts), ("b", "ETH-USDT", 9_000.0 - ts)):
            state.apply("portfolio", PortfolioSnapshot(
                schema_version=V1, policy_id="p", ts=ts, positions={symbol: 1.0}, cash=0.0, equity=equity,
                realised_pnl=0.0, unrealised_pnl=0.0, fees=0.0, drawdown=0.0, instance=instance))
    state.apply("portfolio", _book(1, 5_000.0))  # a run of the policy as one trader, before
    books = {p["instance"]: p for p in state.snapshot()["portfolios"]}
    assert set(books) == {None, "a", "b"}
    assert (books["a"]["equity"], books["a"]["positions"]) == (10_002.0, {"BTC-USDT": 1.0})
    assert (books["b"]["equity"], books["b"]["positions"]) == (8_998.0, {"ETH-USDT": 1.0})
    assert books[None]["equity"] == 5_000.0
    assert [len(b["equity_series"]) for b in (books["a"], books["b"], books[None])] == [3, 3, 1]
