"""A policy's book: positions from fills, cash, fees, realised and unrealised PnL, drawdown.

Pure bookkeeping in quote currency. Realised PnL uses the average cost of the open position; equity is
cash plus positions marked at the latest price seen (a feature's close or a fill's price).
"""

from __future__ import annotations

from contracts import V1, Fill, PortfolioSnapshot


class Book:
    """Positions and cash of one policy."""

    def __init__(self, capital: float) -> None:
        if capital <= 0:
            raise ValueError(f"starting capital must be positive, got {capital}")
        self.capital = capital
        self.cash = capital
        self.positions: dict[str, float] = {}
        self.avg_cost: dict[str, float] = {}
        self.marks: dict[str, float] = {}
        self.fees = 0.0
        self.realised = 0.0
        self.peak = capital
        self.fills = 0

    def apply(self, fill: Fill) -> None:
        """Add one fill: cash moves by price * qty plus the fee; realised PnL on the part that closes."""
        key = fill.symbol
        q = fill.qty if fill.side == "buy" else -fill.qty
        pos = self.positions.get(key, 0.0)
        avg = self.avg_cost.get(key, 0.0)
        self.cash -= q * fill.price + fill.fee
        self.fees += fill.fee
        if pos == 0.0 or (pos > 0) == (q > 0):
            new = pos + q
            self.avg_cost[key] = (avg * abs(pos) + fill.price * abs(q)) / abs(new) if new else 0.0
        else:
            closed = min(abs(q), abs(pos))
            self.realised += closed * (fill.price - avg) * (1.0 if pos > 0 else -1.0)
            new = pos + q
            if abs(new) < 1e-12:
                new = 0.0
                self.avg_cost[key] = 0.0
            elif (new > 0) != (pos > 0):
                self.avg_cost[key] = fill.price
        self.positions[key] = new
        self.marks[key] = fill.price
        self.fills += 1
        self._update_peak()

    def mark(self, symbol: str, price: float) -> float:
        """Mark ``symbol`` at ``price``; return the drawdown after it."""
        self.marks[symbol] = price
        eq = self.equity
        self.peak = max(self.peak, eq)
        return self._drawdown(eq)

    @property
    def equity(self) -> float:
        return self.cash + sum(q * self.marks.get(s, self.avg_cost.get(s, 0.0)) for s, q in self.positions.items())

    @property
    def unrealised(self) -> float:
        return sum(q * (self.marks.get(s, 0.0) - self.avg_cost.get(s, 0.0)) for s, q in self.positions.items() if q)

    @property
    def drawdown(self) -> float:
        return self._drawdown(self.equity)

    def _drawdown(self, equity: float) -> float:
        return min(1.0, max(0.0, 1.0 - equity / self.peak)) if self.peak > 0 else 0.0

    def _update_peak(self) -> None:
        self.peak = max(self.peak, self.equity)

    def snapshot(self, policy_id: str, ts: int, halted: bool, instance: str | None = None,
                 policy_version: str | None = None, rollback_peak: float | None = None) -> PortfolioSnapshot:
        return PortfolioSnapshot(schema_version=V1, policy_id=policy_id, ts=ts,
                                 positions={k: v for k, v in sorted(self.positions.items())}, cash=self.cash,
                                 equity=self.equity, realised_pnl=self.realised, unrealised_pnl=self.unrealised,
                                 fees=self.fees, drawdown=self.drawdown, halted=halted, instance=instance,
                                 policy_version=policy_version, rollback_peak=rollback_peak)
