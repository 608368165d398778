"""The paper broker's book fills, without Kafka: market orders that walk the L2 book (``PAPER__BOOKS``).

An order of a symbol filled against its book executes at ``T = ts + latency_ms`` against the book as it
stood at ``T`` (``paper.book_history``), level by level (``contracts.book_walk``), once the book is known
past ``T``. The orders of one symbol fill in the order they arrived on the ``orders`` topic (its key puts
a symbol's orders on one partition, in one order): an order waits behind the ones before it. So the
fills are a function of the orders and the book records alone, whatever the interleaving of the two
topics, and a restart gives the same fills.

Liquidity taken is remembered per level: an order takes only the displayed size less what earlier
orders took at that level while it showed the same size; a level whose displayed size changed is new
liquidity. Each fill records the level's displayed size (``book_size``), so the memory is rebuilt from
the fills topic on restart. When the book at ``T`` is not synchronised, or its side holds nothing left
to take, the order waits for the book's next change. When the side holds less than the order, the
order takes all of it and the rest is cancelled: the last fill says how much (``cancelled``) and why.
"""

from __future__ import annotations

import logging
from collections import OrderedDict, deque
from dataclasses import dataclass, field

from contracts import V1, Fill, Order
from contracts.book_reader import BookReader, Held
from contracts.book_walk import Walk, take_costs, walk
from contracts.books import BookUpdate
from paper.book_history import TimedBook

log = logging.getLogger(__name__)


@dataclass
class SymbolBook:
    book: TimedBook
    queue: deque[Order] = field(default_factory=deque)  # orders waiting, in their arrival order
    after: dict[str, int] = field(default_factory=dict)  # order id -> retry at the first change after this clock
    # (is_bid, price) -> (displayed size, quantity taken) of the levels orders took from
    taken: OrderedDict[tuple[bool, float], tuple[float, float]] = field(default_factory=OrderedDict)


def served(books: str) -> frozenset[str] | None:
    """The symbols of ``PAPER__BOOKS`` ("" none, ``*`` every one: None)."""
    names = frozenset(p.strip() for p in books.split(",") if p.strip())
    return None if "*" in names else names


class BookMatcher:
    def __init__(self, books: str, latency_ms: int, fee_bps: float, history: int, remember_taken: int) -> None:
        self.symbols = served(books)
        self.latency_ms, self.fee_bps = latency_ms, fee_bps
        self.history, self.remember_taken = history, remember_taken
        self.reader = BookReader()
        self.held: dict[tuple[str, str], SymbolBook] = {}

    def covers(self, symbol: str) -> bool:
        return self.symbols is None or symbol in self.symbols

    def _symbol(self, exchange: str, symbol: str) -> SymbolBook:
        key = (exchange, symbol)
        sb = self.held.get(key)
        if sb is None:
            book = TimedBook(self.history)
            self.reader.books[key] = Held(book)
            sb = self.held[key] = SymbolBook(book)
        return sb

    def on_book(self, u: BookUpdate, where: str = "") -> list[Fill]:
        """Apply one book record; the fills of the orders it lets through."""
        if not self.covers(u.symbol):
            return []
        sb = self._symbol(u.exchange, u.symbol)
        sb.book.clock = max(sb.book.clock, u.ts_event)
        self.reader.apply(u, where)
        sb.book.mark_whole(self.reader.books[(u.exchange, u.symbol)].whole)
        return self._drain(sb)

    def on_order(self, order: Order) -> list[Fill]:
        sb = self._symbol(order.exchange, order.symbol)
        sb.queue.append(order)
        return self._drain(sb)

    def restore(self, order: Order) -> None:
        """Queue an open order again on restart (a book order has no fill yet: its walk is one transaction)."""
        self._symbol(order.exchange, order.symbol).queue.append(order)

    def drop(self, order: Order) -> None:
        """Forget a waiting order (the broker dropped it: too many open orders)."""
        sb = self.held.get((order.exchange, order.symbol))
        if sb is not None and order in sb.queue:
            sb.queue.remove(order)
            sb.after.pop(order.order_id, None)

    def restore_taken(self, fill: Fill) -> None:
        """Remember what a past fill took from its level (rebuilt from the fills topic, in its order)."""
        if fill.book_size > 0:
            self._take(self._symbol(fill.exchange, fill.symbol), fill.side == "sell", fill.price, fill.book_size,
                       fill.qty)

    def pending(self) -> list[Fill]:
        """Fills due now (after a restart rebuilt the books past some open orders' times)."""
        return [f for sb in self.held.values() for f in self._drain(sb)]

    def mid(self, exchange: str, symbol: str) -> float | None:
        sb = self.held.get((exchange, symbol))
        if sb is None:
            return None
        bid, ask = sb.book.bids.best(), sb.book.asks.best()
        return (bid + ask) / 2 if bid is not None and ask is not None else None

    def _take(self, sb: SymbolBook, is_bid: bool, price: float, size: float, qty: float) -> None:
        key = (is_bid, price)
        was = sb.taken.pop(key, None)
        sb.taken[key] = (size, qty + (was[1] if was is not None and was[0] == size else 0.0))
        while len(sb.taken) > self.remember_taken:
            sb.taken.popitem(last=False)

    def _drain(self, sb: SymbolBook) -> list[Fill]:
        out: list[Fill] = []
        book = sb.book
        while sb.queue:
            order = sb.queue[0]
            after = sb.after.get(order.order_id)
            t: int | None = order.ts + self.latency_ms if after is None else book.next_change_after(after)
            if t is None or t >= book.clock:
                return out  # the book is not known past t yet
            if t < book.horizon:
                log.warning("Order %s executes at %d, before the oldest book state of %s kept (%d): it fills there.",
                            order.order_id, t, order.symbol, book.horizon)
                t = book.horizon
            fills = self._walk(sb, order, t)
            if not fills:
                sb.after[order.order_id] = t
                continue
            sb.after.pop(order.order_id, None)
            sb.queue.popleft()
            out += fills
        return out

    def _walk(self, sb: SymbolBook, order: Order, t: int) -> list[Fill]:
        book = sb.book
        if not book.whole_at(t):
            return []
        buy = order.side == "buy"
        taking_bids = not buy
        best_bid = next(book.levels_at(True, t), None)
        best_ask = next(book.levels_at(False, t), None)
        if best_bid is None or best_ask is None:
            return []
        mid = (best_bid[0] + best_ask[0]) / 2

        def available() -> list[tuple[float, float, float]]:
            out, total = [], 0.0
            for price, size in book.levels_at(taking_bids, t):
                was = sb.taken.get((taking_bids, price))
                free = size - was[1] if was is not None and was[0] == size else size
                out.append((price, size, free))
                total += max(free, 0.0)
                if total >= order.qty:
                    break
            return out

        w: Walk = walk(available(), order.qty)
        if not w.takes:
            return []
        for take in w.takes:
            self._take(sb, taking_bids, take.price, take.level_size, take.qty)
        rest = w.rest
        if rest:
            log.info("Order %s (%s %.8g %s) took the whole %s side (%d levels, %.8g) at %d: %.8g cancelled.",
                     order.order_id, order.side, order.qty, order.symbol, "bid" if taking_bids else "ask",
                     len(w.takes), w.filled, t, rest)
        fills = []
        for i, take in enumerate(w.takes, 1):
            fee, slippage = take_costs(take, buy, mid, self.fee_bps)
            last = i == len(w.takes)
            fills.append(Fill(schema_version=V1, fill_id=f"{order.order_id}-{i}", order_id=order.order_id,
                              policy_id=order.policy_id, exchange=order.exchange, symbol=order.symbol,
                              side=order.side, price=take.price, qty=take.qty, fee=fee, slippage=slippage, ts=t,
                              last=last, book_size=take.level_size, cancelled=rest if last else 0.0,
                              reason=(f"the book's {'bid' if taking_bids else 'ask'} side held {w.filled:.8g} of "
                                      f"{order.qty:.8g} at {t}: {rest:.8g} cancelled") if last and rest else ""))
        return fills
