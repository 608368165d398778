"""A market order walking an L2 book: the one fill model the paper broker, the environment and the evaluation share.

A buy takes the asks (a sell the bids) best level first: at each level it takes what is available
(the displayed size less what earlier orders took there, which the caller tracks), until the order is
filled or the side is exhausted. What the side could not give is the order's rest: the paper broker
cancels it. Each level taken is one ``Take`` at the level's own price; the taker fee is charged on
each take's notional, and slippage is measured against the mid before the order:
``(price - mid) * signed qty`` in quote currency (positive costs the trader). No slippage or impact
setting is added on top: walking the book is the slippage.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path

#: what is left of an order below this fraction of its size counts as filled (float dust)
DUST = 1e-12


@dataclass(frozen=True)
class Take:
    """One level's part of a walk: ``qty`` at the level's ``price``; ``level_size`` is its displayed size."""

    price: float
    qty: float
    level_size: float


@dataclass(frozen=True)
class Walk:
    """The takes of one order, best level first, and what the book could not fill (``rest``)."""

    takes: tuple[Take, ...]
    qty: float

    @property
    def filled(self) -> float:
        return sum(t.qty for t in self.takes)

    @property
    def rest(self) -> float:
        rest = self.qty - self.filled
        return 0.0 if rest <= self.qty * DUST else rest

    @property
    def average_price(self) -> float:
        filled = self.filled
        return sum(t.price * t.qty for t in self.takes) / filled if filled else 0.0


def walk(levels: Iterable[tuple[float, float, float]], qty: float) -> Walk:
    """Take ``qty`` from ``levels`` (price, displayed size, available size), best first."""
    if not qty > 0:
        raise ValueError(f"a book walk needs a positive quantity, got {qty}")
    takes: list[Take] = []
    left = qty
    for price, size, available in levels:
        if available <= 0:
            continue
        take = min(left, available)
        takes.append(Take(price, take, size))
        left -= take
        if left <= qty * DUST:
            break
    return Walk(tuple(takes), qty)


def walk_side(levels: Iterable[tuple[float, float]], qty: float) -> Walk:
    """``walk`` over (price, size) levels nobody took from before (the environment's and evaluation's case)."""
    return walk(((p, s, s) for p, s in levels), qty)


def take_costs(take: Take, buy: bool, mid: float, fee_bps: float) -> tuple[float, float]:
    """(fee, slippage) of one take: the taker fee on its notional; slippage against ``mid``, signed so that
    a positive value costs the trader."""
    fee = fee_bps / 10_000.0 * take.qty * take.price
    slippage = (take.price - mid) * (take.qty if buy else -take.qty)
    return fee, slippage


#: one side of a book, best first
Levels = list[tuple[float, float]]


@dataclass(frozen=True)
class BarBooks:
    """The books a backtest fills at, for an account of ``notional`` quote per unit of starting equity:
    ``books[t]`` is (bids, asks) as they stood at bar t's end (where a decision at bar t is filled), or
    None where the recording has no book (that trade falls back to the cost model)."""

    books: list[tuple[Levels, Levels] | None]
    notional: float

    @classmethod
    def from_dump(cls, path: Path, ts: Sequence[int], notional: float, symbol: str | None = None) -> BarBooks:
        """The book of the last line of a `tickflow book dump` file with ``ts_event`` at or before each ``ts``."""
        if not notional > 0:
            raise ValueError(f"the account's notional for book fills must be positive, got {notional}")
        books: list[tuple[Levels, Levels] | None] = []
        current: tuple[Levels, Levels] | None = None
        with path.open() as f:
            lines = (json.loads(line) for line in f if line.strip())
            row = next(lines, None)
            for t in ts:
                while row is not None and row["ts_event"] <= t:
                    if symbol is None or row["symbol"] == symbol:
                        current = ([tuple(x) for x in row["bids"]], [tuple(x) for x in row["asks"]])
                    row = next(lines, None)
                books.append(current)
        if all(b is None for b in books):
            raise ValueError(f"{path} holds no book at or before the bars' times ({ts[0]}..{ts[-1]})")
        return cls(books, notional)
