"""What the view and the demo's report show of a book: its best levels, spread and top-5 imbalance.

Pure, from a book the project's own ``BookReader`` rebuilt from ``market.books``. The formulas are
``../shared/NOTES.md``'s: spread ``ask1 - bid1`` (in bps of the mid), imbalance over k levels
``(sum of bid sizes - sum of ask sizes) / (sum of both)``.
"""

from __future__ import annotations

from typing import Any, Protocol

LADDER = 5  # levels a side shown, and the depth of the imbalance


class _Side(Protocol):
    def top(self, n: int | None = None) -> list[tuple[float, float]]: ...


class _Book(Protocol):
    @property
    def bids(self) -> _Side: ...
    @property
    def asks(self) -> _Side: ...


def imbalance(bids: list[tuple[float, float]], asks: list[tuple[float, float]]) -> float | None:
    bid, ask = sum(s for _, s in bids), sum(s for _, s in asks)
    return (bid - ask) / (bid + ask) if bid + ask > 0 else None


def top_of_book(book: _Book, depth: int = LADDER) -> dict[str, Any] | None:
    """Best bid and ask with their sizes, mid, spread (and in bps), imbalance over ``depth`` levels and the
    ladder of ``depth`` levels a side; None while a side is empty."""
    bids, asks = book.bids.top(depth), book.asks.top(depth)
    if not bids or not asks:
        return None
    (bid, bid_size), (ask, ask_size) = bids[0], asks[0]
    mid = (bid + ask) / 2
    return {"bid": bid, "bid_size": bid_size, "ask": ask, "ask_size": ask_size, "mid": mid, "spread": ask - bid,
            "spread_bps": (ask - bid) / mid * 1e4, "imbalance": imbalance(bids, asks),
            "bids": [list(x) for x in bids], "asks": [list(x) for x in asks]}
