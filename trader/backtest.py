"""Backtests with the environment's accounting, and the performance figures every evaluation reports.

A decision at bar t's close is filled at bar t+1's open with the shared cost model; equity is marked
at each close. The same loop runs the policy and the baselines, so their figures compare fairly. With
``books`` (default off) a trade walks the book at bar t's end, as in the environment and the paper broker.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
from numpy.typing import NDArray

from contracts.book_walk import BarBooks
from contracts.costs import CostModel, rebalance, rebalance_on_book

# (bar index, current target position) -> new target position
Chooser = Callable[[int, float], float]


@dataclass
class Run:
    """One backtest: equity at each close (starting at 1.0), target positions, fees and slippage paid."""

    equity: NDArray[np.float64]
    positions: NDArray[np.float64]
    fees: float
    slippage: float
    trades: int


def simulate(choose: Chooser, opens: NDArray[np.float64], closes: NDArray[np.float64],
             costs: CostModel, decide: NDArray[np.bool_] | None = None, books: BarBooks | None = None) -> Run:
    """Run ``choose`` at the decision bars (``decide``, default every bar) but the last; equity[k] is marked
    at closes[k]."""
    n = len(closes)
    o = [float(x) for x in opens]
    c = [float(x) for x in closes]
    equity = np.empty(n, dtype=np.float64)
    positions = np.zeros(n, dtype=np.float64)
    cash, units, position = 1.0, 0.0, 0.0
    fees = slippage = 0.0
    trades = 0
    equity[0] = 1.0
    mask = [True] * n if decide is None else [bool(x) for x in decide]
    for t in range(n - 1):
        target = choose(t, position) if mask[t] else position
        if target != position:
            book = books.books[t] if books is not None else None
            if books is not None and book is not None:
                cash, units, ex, _ = rebalance_on_book(cash, units, target, o[t + 1], costs, book, books.notional)
            else:
                cash, units, ex, _ = rebalance(cash, units, target, o[t + 1], costs)
            fees += ex.fee
            slippage += ex.slippage
            trades += 1
            position = target
        positions[t + 1] = position
        equity[t + 1] = cash + units * c[t + 1]
    return Run(equity, positions, fees, slippage, trades)


def metrics(run: Run, interval_s: int) -> dict[str, float]:
    """total_return, sharpe, sortino (annualised from per-bar log returns), max_drawdown, turnover
    (sum of |position changes|, in multiples of equity), exposure (mean |position|), fees (in units of
    the starting equity), trades."""
    eq = run.equity
    rets = np.diff(np.log(np.maximum(eq, 1e-12)))
    per_year = 365.0 * 86_400.0 / interval_s
    mean = float(rets.mean()) if len(rets) else 0.0
    std = float(rets.std()) if len(rets) else 0.0
    downside = float(np.sqrt(np.mean(np.minimum(rets, 0.0) ** 2))) if len(rets) else 0.0
    peak = np.maximum.accumulate(eq)
    changes = np.abs(np.diff(np.concatenate([[0.0], run.positions])))
    return {
        "total_return": float(eq[-1] / eq[0] - 1.0),
        "sharpe": mean / std * math.sqrt(per_year) if std > 0 else 0.0,
        "sortino": mean / downside * math.sqrt(per_year) if downside > 0 else 0.0,
        "max_drawdown": float(np.max(1.0 - eq / peak)),
        "turnover": float(changes.sum()),
        "exposure": float(np.mean(np.abs(run.positions))),
        "fees": float(run.fees),
        "slippage": float(run.slippage),
        "trades": float(run.trades),
        "bars": float(len(eq)),
    }


def baselines(closes: NDArray[np.float64], opens: NDArray[np.float64], actions: tuple[float, ...],
              costs: CostModel, interval_s: int, seed: int = 0, lookback: int = 60,
              decide: NDArray[np.bool_] | None = None, books: BarBooks | None = None) -> dict[str, dict[str, float]]:
    """flat, buy_and_hold, random (uniform over the action set, seeded) and momentum (long when the last
    ``lookback`` bars rose, short (or flat when long-only) when they fell), deciding at the same bars as
    the policy."""
    rng = np.random.default_rng(seed)
    random_targets = rng.choice(np.asarray(actions), size=len(closes))
    low = min(actions)
    c = closes

    def momentum(t: int, _pos: float) -> float:
        if t < lookback:
            return 0.0
        return 1.0 if c[t] > c[t - lookback] else low

    choosers: dict[str, Chooser] = {
        "flat": lambda _t, _p: 0.0,
        "buy_and_hold": lambda _t, _p: 1.0,
        "random": lambda t, _p: float(random_targets[t]),
        "momentum": momentum,
    }
    return {name: metrics(simulate(fn, opens, closes, costs, decide, books), interval_s)
            for name, fn in choosers.items()}


def decision_mask(ts: NDArray[np.int64], every: int, interval_s: int) -> NDArray[np.bool_]:
    """True at the bars a policy deciding every ``every`` bars acts on (bar end aligned to the epoch)."""
    mask: NDArray[np.bool_] = (np.asarray(ts) // (interval_s * 1000)) % max(every, 1) == 0
    return mask
