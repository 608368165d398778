"""The one fee and slippage model, shared by the training environment, the evaluation and the paper broker.

A market order of ``qty`` (signed: positive buys) at a reference price ``ref`` fills at

    price = ref * (1 + sign(qty) * (slippage_bps + impact_bps_per_10k * |qty| * ref / 10_000) / 10_000)

and pays ``fee = fee_bps / 10_000 * |qty| * price`` in quote currency. Slippage is the quote amount the
fill price costs against the reference: ``(price - ref) * qty`` (positive costs the trader).

With books (``contracts.book_walk.BarBooks``), ``rebalance_on_book`` walks the book instead: the taker
fee on each level taken, slippage against the book's mid, no slippage or impact setting on top, and
what the side cannot give stays unfilled, as in the paper broker.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Annotated

import msgspec
from msgspec import Meta

from contracts.book_walk import Levels, take_costs, walk_side


class CostSettings(msgspec.Struct, frozen=True, kw_only=True):
    """Costs in basis points. ``impact_bps_per_10k``: extra slippage per 10,000 quote of notional."""

    fee_bps: Annotated[float, Meta(ge=0, le=1000)] = 5.0
    slippage_bps: Annotated[float, Meta(ge=0, le=1000)] = 1.0
    impact_bps_per_10k: Annotated[float, Meta(ge=0, le=1000)] = 0.0


@dataclass(frozen=True)
class Execution:
    """The result of executing a signed quantity at a reference price."""

    price: float
    fee: float
    slippage: float  # quote currency, positive costs the trader


class CostModel:
    """Prices a market execution; pure arithmetic, no state."""

    def __init__(self, settings: CostSettings | None = None) -> None:
        s = settings or CostSettings()
        if s.fee_bps < 0 or s.slippage_bps < 0 or s.impact_bps_per_10k < 0:
            raise ValueError(f"costs must be non-negative basis points, got {s}")
        self.settings = s
        self._fee = s.fee_bps / 10_000.0
        self._slip = s.slippage_bps / 10_000.0
        self._impact = s.impact_bps_per_10k / 10_000.0 / 10_000.0

    def execute(self, qty: float, ref: float) -> Execution:
        """Fill ``qty`` (signed, base units) at reference price ``ref``."""
        if qty == 0.0:
            return Execution(ref, 0.0, 0.0)
        side = 1.0 if qty > 0 else -1.0
        notional = abs(qty) * ref
        price = ref * (1.0 + side * (self._slip + self._impact * notional))
        fee = self._fee * abs(qty) * price
        return Execution(price, fee, (price - ref) * qty)

    def as_dict(self) -> dict[str, float]:
        return dict(msgspec.to_builtins(self.settings))


def rebalance(cash: float, units: float, target_fraction: float, ref: float,
              costs: CostModel) -> tuple[float, float, Execution, float]:
    """Move a book of (cash, units) so that ``units * ref`` is ``target_fraction`` of its equity at ``ref``.

    Returns (cash, units, execution, traded qty). Used by the environment and the backtests, so that
    training and evaluation account for a trade the same way.
    """
    equity = cash + units * ref
    target_units = target_fraction * equity / ref if equity > 0 else 0.0
    qty = target_units - units
    if abs(qty) * ref < 1e-9 * max(abs(equity), 1.0):
        return cash, units, Execution(ref, 0.0, 0.0), 0.0
    ex = costs.execute(qty, ref)
    cash = cash - qty * ex.price - ex.fee
    return cash, target_units, ex, qty


def rebalance_on_book(cash: float, units: float, target_fraction: float, ref: float, costs: CostModel,
                      book: tuple[Levels, Levels], notional: float) -> tuple[float, float, Execution, float]:
    """``rebalance`` with the trade walking ``book`` (bids, asks), for an account whose unit of equity is
    ``notional`` quote. A book thinner than the trade fills what it holds: the units move less than asked."""
    equity = cash + units * ref
    target_units = target_fraction * equity / ref if equity > 0 else 0.0
    qty = target_units - units
    bids, asks = book
    side = asks if qty > 0 else bids
    if abs(qty) * ref < 1e-9 * max(abs(equity), 1.0) or not side:
        return cash, units, Execution(ref, 0.0, 0.0), 0.0
    buy = qty > 0
    w = walk_side(side, abs(qty) * notional)
    mid = (bids[0][0] + asks[0][0]) / 2 if bids and asks else ref
    fee = slippage = 0.0
    for take in w.takes:
        f, s = take_costs(take, buy, mid, costs.settings.fee_bps)
        fee, slippage = fee + f / notional, slippage + s / notional
    traded = (w.filled if buy else -w.filled) / notional
    return cash - traded * w.average_price - fee, units + traded, Execution(w.average_price, fee, slippage), traded


def log_return(before: float, after: float) -> float:
    """log(after / before); equity at or below zero is the end of the account (-inf guarded as -20)."""
    if before <= 0 or after <= 0:
        return -20.0
    return math.log(after / before)
