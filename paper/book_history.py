"""A symbol's L2 book with its recent past: the book as it stood at any recent event time.

The paper broker fills an order against the book as it stood at the order's execution time, and an
order usually arrives after the book has moved on. ``TimedBook`` is the shared book (``contracts.book``)
logging every level change with the clock of the update that made it and the size it replaced; the
state at time ``T`` is the current book with the changes after ``T`` undone. The clock is the largest
``ts_event`` applied so far (so it never goes back), and the state at ``T`` is final once an update with
a later clock has been applied. The log is bounded (``PAPER__BOOK_HISTORY`` level changes): before its
horizon the past is gone, and an order that old is filled at the oldest state kept (with a warning).
"""

from __future__ import annotations

import heapq
from collections import deque
from collections.abc import Iterable, Iterator

from contracts.book import Book, BookSide

#: (clock, is_bid, price, size before the change)
Change = tuple[int, bool, float, float]


class TimedBook(Book):
    __slots__ = ("changes", "clock", "horizon", "wholes")

    def __init__(self, history: int) -> None:
        super().__init__()
        self.changes: deque[Change] = deque(maxlen=history)
        self.horizon = -1  # the states before this clock were dropped from the log
        self.clock = -1
        self.wholes: deque[tuple[int, bool]] = deque(maxlen=10_000)  # (clock, whole) at each change of usability

    def _log(self, is_bid: bool, side: BookSide, levels: Iterable[tuple[float, float]]) -> None:
        changes, sizes, clock = self.changes, side.sizes, self.clock
        for price, size in levels:
            old = sizes.get(price, 0.0)
            if old != size:
                if len(changes) == changes.maxlen:
                    self.horizon = changes[0][0]
                changes.append((clock, is_bid, price, old))

    def apply(self, bids: Iterable[tuple[float, float]], asks: Iterable[tuple[float, float]]) -> None:
        bids, asks = list(bids), list(asks)
        self._log(True, self.bids, bids)
        self._log(False, self.asks, asks)
        super().apply(bids, asks)

    def clear(self) -> None:
        self._log(True, self.bids, [(p, 0.0) for p in self.bids.sizes])
        self._log(False, self.asks, [(p, 0.0) for p in self.asks.sizes])
        super().clear()

    def mark_whole(self, whole: bool) -> None:
        if not self.wholes or self.wholes[-1][1] != whole:
            self.wholes.append((self.clock, whole))

    def whole_at(self, t: int) -> bool:
        for clock, whole in reversed(self.wholes):
            if clock <= t:
                return whole
        return False

    def levels_at(self, is_bid: bool, t: int) -> Iterator[tuple[float, float]]:
        """(price, size) of one side as it stood at clock ``t``, best first."""
        side = self.bids if is_bid else self.asks
        before: dict[float, float] = {}
        for clock, bid, price, old in reversed(self.changes):
            if clock <= t:
                break
            if bid == is_bid:
                before[price] = old  # going back in time: the oldest change after t wins
        sizes = side.sizes
        gone = sorted((p for p, old in before.items() if old > 0 and p not in sizes), reverse=is_bid)
        for price in heapq.merge(side.prices(), gone, reverse=is_bid):
            size = before.get(price, sizes.get(price, 0.0))
            if size > 0:
                yield price, size

    def next_change_after(self, t: int) -> int | None:
        """The clock of the first change (of a level or of usability) after ``t``, if there is one yet."""
        found: int | None = None
        for clock, *_ in reversed(self.changes):  # in clock order: walk back only over the changes after t
            if clock <= t:
                break
            found = clock
        for clock, _ in reversed(self.wholes):
            if clock <= t:
                break
            found = clock if found is None else min(found, clock)
        return found
