"""Round trips from a backtest: entries, exits, PnL net of costs, win/loss figures; out-of-time labelling."""

from __future__ import annotations

import numpy as np
import pytest

from contracts.costs import CostModel, CostSettings
from trader.backtest import simulate
from trader.round_trips import round_trips, trade_summary

MIN = 60_000


def test_a_long_then_a_short_trade_are_two_round_trips_with_costs_in_their_pnl() -> None:
    closes = np.array([100.0, 101.0, 103.0, 102.0, 99.0, 97.0, 98.0, 98.0])
    opens = np.array([100.0, 100.5, 102.0, 102.5, 100.0, 98.0, 97.5, 98.0])
    ts = np.arange(len(closes), dtype=np.int64) * MIN
    targets = {0: 1.0, 2: 0.0, 3: -1.0, 5: 0.0}
    costs = CostModel(CostSettings(fee_bps=10.0, slippage_bps=0.0))
    run = simulate(lambda t, pos: targets.get(t, pos), opens, closes, costs)
    trips = round_trips(run, ts, opens, closes)
    assert [(t.side, t.entry_ts, t.exit_ts) for t in trips] == [("long", 1 * MIN, 3 * MIN), ("short", 4 * MIN, 6 * MIN)]
    long, short = trips
    assert (long.entry_price, long.exit_price) == (100.5, 102.5)
    # bought at 100.5 and sold at 102.5, 10 bps paid on each side: the equity change, costs included
    assert long.pnl == pytest.approx(run.equity[3] - run.equity[0])
    assert long.pnl < (102.5 / 100.5 - 1) and long.pnl > (102.5 / 100.5 - 1) - 0.0021
    assert short.pnl > 0 and short.duration_s == 120.0 and not short.open
    s = trade_summary(trips)
    assert s["count"] == 2 and s["wins"] == 2 and s["win_rate"] == 1.0 and s["avg_loss"] == 0.0


def test_a_trade_still_open_at_the_end_is_marked_at_the_last_close() -> None:
    closes = np.array([10.0, 11.0, 12.0, 9.0])
    ts = np.arange(4, dtype=np.int64) * MIN
    run = simulate(lambda t, pos: 1.0 if t == 0 else pos, closes, closes, CostModel(CostSettings(fee_bps=0.0,
                   slippage_bps=0.0)))
    (trip,) = round_trips(run, ts, closes, closes)
    assert trip.open and trip.exit_price == 9.0 and trip.pnl == pytest.approx(9.0 / 11.0 - 1.0)
    s = trade_summary([trip])
    assert s["losses"] == 1 and s["avg_loss"] == pytest.approx(trip.pnl)
