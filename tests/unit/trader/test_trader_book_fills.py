"""The environment's and the backtests' book fills (default off): the paper broker's walk, on a recording's books."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from contracts.book_walk import BarBooks
from contracts.costs import CostModel, CostSettings, rebalance, rebalance_on_book
from trader.backtest import simulate
from trader.env import TradingEnv

COSTS = CostModel(CostSettings(fee_bps=5, slippage_bps=100))
BOOK = ([(99.0, 4.0)], [(100.0, 5.0), (101.0, 10.0)])


def test_a_trade_walks_the_book_for_the_accounts_notional() -> None:
    cash, units, ex, traded = rebalance_on_book(1.0, 0.0, 1.0, 100.0, COSTS, BOOK, notional=1_000.0)
    # 1,000 quote at 100 is 10 units: 5 at 100 and 5 at 101; the fee on each, slippage against the mid 99.5
    fee = 0.0005 * (5 * 100.0 + 5 * 101.0) / 1_000.0
    assert traded == pytest.approx(0.01) and units == pytest.approx(0.01) and ex.price == pytest.approx(100.5)
    assert ex.fee == pytest.approx(fee) and ex.slippage == pytest.approx((5 * 0.5 + 5 * 1.5) / 1_000.0)
    assert cash == pytest.approx(1.0 - 0.01 * 100.5 - fee)


def test_a_thin_book_fills_what_it_holds() -> None:
    _, units, _, traded = rebalance_on_book(1.0, 0.0, 1.0, 100.0, COSTS, ([(99.0, 1.0)], [(100.0, 2.0)]), 1_000.0)
    assert traded == pytest.approx(0.002) and units == pytest.approx(0.002)  # 2 of the 10 units asked


def _bars(n: int = 6) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    ts = np.arange(1, n + 1, dtype=np.int64) * 60_000
    opens = np.full(n, 100.0)
    closes = np.linspace(100.0, 105.0, n)
    return np.zeros((n, 2), dtype=np.float32), opens, closes, ts


def test_the_environment_and_the_backtest_fill_on_the_same_books(tmp_path: Path) -> None:
    features, opens, closes, ts = _bars()
    dump = tmp_path / "books.jsonl"  # what `tickflow book dump` prints: a book per update
    dump.write_text("".join(json.dumps({"exchange": "binance", "symbol": "BTC-USDT", "seq": i, "ts_event": int(t) - 1,
                                        "bids": [[99.0, 4.0]], "asks": [[100.0, 5.0], [101.0 + i, 10.0]]}) + "\n"
                            for i, t in enumerate(ts)))
    books = BarBooks.from_dump(dump, ts.tolist(), notional=1_000.0)
    assert books.books[2] == ([(99.0, 4.0)], [(100.0, 5.0), (103.0, 10.0)])
    env = TradingEnv(features, opens, closes, costs=COSTS, random_start=False, books=books, episode_len=10)
    env.reset()
    equity = [1.0]
    for action in (1, 1, 0, 1, 0):
        *_, info = env.step(action)
        equity.append(info["equity"])
    targets = {0: 1.0, 1: 1.0, 2: 0.0, 3: 1.0, 4: 0.0}
    run = simulate(lambda t, _p: targets[t], opens, closes, COSTS, books=books)
    assert run.equity.tolist() == pytest.approx(equity)
    plain = simulate(lambda t, _p: targets[t], opens, closes, COSTS)
    assert plain.equity[-1] != pytest.approx(run.equity[-1])  # the book, not the cost model, priced the trades
    # bar 0's trade: 10 units, 5 at 100 and 5 at 101 (the book at bar 0's end), against 1 % slippage without books
    cash, units, _, _ = rebalance_on_book(1.0, 0.0, 1.0, 100.0, COSTS, books.books[0], 1_000.0)  # type: ignore[arg-type]
    assert run.equity[1] == pytest.approx(cash + units * closes[1])
    assert rebalance(1.0, 0.0, 1.0, 100.0, COSTS)[2].price == pytest.approx(101.0)
