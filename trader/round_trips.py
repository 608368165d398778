"""Round trips of a backtest: each stretch of a position of one sign, from the fill that opens it to the fill
that closes it, with its prices, duration and PnL net of costs; and the win/loss figures over them.

A backtest fills at the next bar's open (``trader.backtest.simulate``), so a trade entered at bar k
(``positions[k] != 0``, ``positions[k-1]`` of another sign) was filled at ``opens[k]`` and its PnL is the
equity change from the close before it (``equity[k-1]``) to the close after the closing fill: exact, costs
included, when the position is flat before and after. On a reversal (long to short in one fill) the
reversal bar's move is counted with the new trade. A trade still open at the end is marked at the last close.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

import numpy as np
from numpy.typing import NDArray

from trader.backtest import Run


@dataclass(frozen=True)
class RoundTrip:
    side: str  # "long" or "short"
    entry_ts: int  # the bar whose open filled the entry (ms)
    entry_price: float
    exit_ts: int  # the bar whose open filled the exit, or the last bar's when still open
    exit_price: float
    max_position: float  # the largest |position| held during the trade (fractions of equity)
    pnl: float  # net of fees and slippage, in units of the starting equity
    ret: float  # pnl over the equity at entry
    duration_s: float
    open: bool  # still held at the end of the data

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


def round_trips(run: Run, ts: NDArray[np.int64], opens: NDArray[np.float64],
                closes: NDArray[np.float64]) -> list[RoundTrip]:
    pos, eq = run.positions, run.equity
    sign = np.sign(pos)
    trips: list[RoundTrip] = []
    n = len(pos)
    k = 1
    while k < n:
        if sign[k] == 0 or sign[k] == sign[k - 1]:
            k += 1
            continue
        start = k
        while k < n and sign[k] == sign[start]:
            k += 1
        still_open = k == n
        end = n - 1 if still_open else k
        closed_flat = not still_open and sign[end] == 0
        end_equity = float(eq[end] if closed_flat or still_open else eq[end - 1])
        start_equity = float(eq[start - 1])
        trips.append(RoundTrip(
            side="long" if sign[start] > 0 else "short",
            entry_ts=int(ts[start]), entry_price=float(opens[start]),
            exit_ts=int(ts[end]), exit_price=float(closes[end] if still_open else opens[end]),
            max_position=float(np.max(np.abs(pos[start:k]))),
            pnl=end_equity - start_equity, ret=end_equity / start_equity - 1.0,
            duration_s=(int(ts[end]) - int(ts[start])) / 1000.0, open=still_open))
    return trips


def trade_summary(trips: list[RoundTrip]) -> dict[str, float]:
    """count, wins, losses, win_rate, avg_win and avg_loss (pnl, starting-equity units), avg_duration_s."""
    pnl = np.array([t.pnl for t in trips], dtype=np.float64)
    wins, losses = pnl[pnl > 0], pnl[pnl <= 0]
    return {
        "count": float(len(trips)),
        "wins": float(len(wins)),
        "losses": float(len(losses)),
        "win_rate": float(len(wins) / len(trips)) if trips else 0.0,
        "avg_win": float(wins.mean()) if len(wins) else 0.0,
        "avg_loss": float(losses.mean()) if len(losses) else 0.0,
        "total_pnl": float(pnl.sum()),
        "avg_duration_s": float(np.mean([t.duration_s for t in trips])) if trips else 0.0,
    }
