"""The paper broker's matching, without Kafka: orders filled at the market trades that follow them, or
against the book for the symbols of ``PAPER__BOOKS`` (``paper.book_matching``).

An order decided at event time ``ts`` may fill against trades of its symbol with
``ts_event >= ts + latency_ms``, in the order the trades arrived, taking at most ``participation`` of
each trade's size (partial fills when trades are small). Prices and fees come from the shared cost
model (slippage bps plus size impact, fee bps). Orders do not compete for a trade's liquidity, so the
fills of one order do not depend on when other orders arrive: the result is a function of the order
and of the trade sequence alone. Memory is bounded: a per-symbol ring of recent trades (for orders
that arrive after the trades that follow them, as in a fast replay), a capped set of open orders and
a capped memory of finished order ids.
"""

from __future__ import annotations

import logging
from collections import OrderedDict, deque
from dataclasses import dataclass
from typing import Annotated

import msgspec
from msgspec import Meta

from contracts import V1, Fill, Order, Trade
from contracts.books import BookUpdate
from contracts.costs import CostModel, CostSettings
from paper.book_matching import BookMatcher

log = logging.getLogger(__name__)


class PaperSettings(msgspec.Struct, frozen=True, kw_only=True):
    latency_ms: Annotated[int, Meta(ge=0, le=3_600_000)] = 0
    participation: Annotated[float, Meta(gt=0, le=1)] = 1.0  # the largest share of one market trade an order may take
    costs: CostSettings = msgspec.field(default_factory=CostSettings)
    trade_buffer: Annotated[int, Meta(ge=1)] = 200_000  # recent trades kept per symbol
    max_open_orders: Annotated[int, Meta(ge=1)] = 10_000
    remember_done: Annotated[int, Meta(ge=1)] = 200_000  # finished order ids kept to refuse duplicates
    batch: Annotated[int, Meta(ge=1, le=100_000)] = 2_000
    # what the broker refuses (paper.order_checks); off switches a limit off
    max_qty: Annotated[float, Meta(gt=0, extra={"off": True})] = 1e9
    max_notional: Annotated[float, Meta(gt=0, extra={"off": True})] = 1_000_000.0  # quote per order
    # comma-separated policy ids served; * = every policy
    policies: Annotated[str, Meta(pattern=r"^(\*|[^,\s]+(\s*,\s*[^,\s]+)*)$",
                                  extra={"allowed": "* or comma-separated policy ids"})] = "*"
    # symbols filled against their market.books book (paper.book_matching); "" none, * every one
    books: Annotated[str, Meta(pattern=r"^(|\*|[^,\s]+(\s*,\s*[^,\s]+)*)$",
                               extra={"allowed": "empty, * or comma-separated symbols"})] = ""
    book_history: Annotated[int, Meta(ge=1_000)] = 1_000_000  # level changes kept per symbol (the book's past)
    book_buffer: Annotated[int, Meta(ge=1)] = 50_000  # book records read back per partition on restart
    remember_taken: Annotated[int, Meta(ge=1)] = 100_000  # levels per symbol whose taken liquidity is kept


@dataclass
class OpenOrder:
    order: Order
    remaining: float
    fills: int = 0


@dataclass(frozen=True)
class BufferedTrade:
    ts: int
    price: float
    size: float
    trade_id: str


class Matcher:
    def __init__(self, settings: PaperSettings | None = None) -> None:
        self.s = settings or PaperSettings()
        if not 0 < self.s.participation <= 1:
            raise ValueError(f"participation must be in (0, 1], got {self.s.participation}")
        self.costs = CostModel(self.s.costs)
        self.trades: dict[tuple[str, str], deque[BufferedTrade]] = {}
        self.open: OrderedDict[str, OpenOrder] = OrderedDict()
        self.done: OrderedDict[str, None] = OrderedDict()
        self.book = (BookMatcher(self.s.books, self.s.latency_ms, self.s.costs.fee_bps, self.s.book_history,
                                 self.s.remember_taken) if self.s.books else None)

    def known(self, order_id: str) -> bool:
        return order_id in self.open or order_id in self.done

    def _finish(self, order_id: str) -> None:
        self.open.pop(order_id, None)
        self.done[order_id] = None
        while len(self.done) > self.s.remember_done:
            self.done.popitem(last=False)

    def booked(self, order: Order) -> bool:
        """True when ``order`` fills against the book (its symbol is one of ``PAPER__BOOKS``)."""
        return self.book is not None and self.book.covers(order.symbol)

    def restore(self, order: Order, filled: float, fills: int, finished: bool) -> None:
        """Re-open an order after a restart from what the fills topic says about it."""
        if finished or filled >= order.qty * (1 - 1e-12):
            self._finish(order.order_id)
        else:
            self.open[order.order_id] = OpenOrder(order, order.qty - filled, fills)
            if self.book is not None and self.booked(order):
                self.book.restore(order)

    def on_book(self, update: BookUpdate, where: str = "") -> list[Fill]:
        """Apply a book record (symbols of ``PAPER__BOOKS``); the fills of the orders it lets through."""
        return self._booked(self.book.on_book(update, where)) if self.book is not None else []

    def pending(self) -> list[Fill]:
        """The book fills due after a restart rebuilt the books (none for the trade model)."""
        return self._booked(self.book.pending()) if self.book is not None else []

    def _booked(self, fills: list[Fill]) -> list[Fill]:
        for f in fills:
            oo = self.open.get(f.order_id)
            if oo is not None:
                oo.fills += 1
                oo.remaining = 0.0 if f.last else oo.remaining - f.qty
            if f.last:
                self._finish(f.order_id)
        return fills

    def remember_trade(self, trade: Trade) -> None:
        ring = self.trades.get((trade.exchange, trade.symbol))
        if ring is None:
            ring = self.trades[(trade.exchange, trade.symbol)] = deque(maxlen=self.s.trade_buffer)
        ring.append(BufferedTrade(trade.ts_event, trade.price, trade.size, trade.trade_id))

    def last_price(self, exchange: str, symbol: str) -> float | None:
        """The symbol's latest trade price, else its book's mid."""
        ring = self.trades.get((exchange, symbol))
        if ring:
            return ring[-1].price
        return self.book.mid(exchange, symbol) if self.book is not None else None

    def on_order(self, order: Order) -> list[Fill]:
        """Accept a new order and fill it against the trades already seen after it; duplicates give nothing."""
        if self.known(order.order_id):
            log.info("Order %s was seen before: ignored (idempotent).", order.order_id)
            return []
        if len(self.open) >= self.s.max_open_orders:
            oldest, _ = next(iter(self.open.items()))
            log.warning("More than %d open orders: dropping the oldest, %s.", self.s.max_open_orders, oldest)
            if self.book is not None:
                self.book.drop(self.open[oldest].order)
            self._finish(oldest)
        oo = self.open[order.order_id] = OpenOrder(order, order.qty)
        if self.book is not None and self.booked(order):
            return self._booked(self.book.on_order(order))
        out: list[Fill] = []
        ring = self.trades.get((order.exchange, order.symbol), ())
        start = order.ts + self.s.latency_ms
        if ring and ring[0].ts > start:
            log.warning("Order %s at %d is older than the oldest buffered trade of %s (%d): it fills from there.",
                        order.order_id, order.ts, order.symbol, ring[0].ts)
        for t in ring:
            if t.ts >= start:
                self._fill(oo, t, out)
                if oo.remaining <= 0:
                    break
        return out

    def on_trade(self, trade: Trade) -> list[Fill]:
        """Remember the trade and fill every open order of its symbol that it follows."""
        self.remember_trade(trade)
        out: list[Fill] = []
        bt = BufferedTrade(trade.ts_event, trade.price, trade.size, trade.trade_id)
        for oo in list(self.open.values()):
            o = oo.order
            if (o.symbol == trade.symbol and o.exchange == trade.exchange and bt.ts >= o.ts + self.s.latency_ms
                    and not self.booked(o)):
                self._fill(oo, bt, out)
        return out

    def _fill(self, oo: OpenOrder, t: BufferedTrade, out: list[Fill]) -> None:
        qty = min(oo.remaining, t.size * self.s.participation)
        if qty <= 0:
            return
        o = oo.order
        ex = self.costs.execute(qty if o.side == "buy" else -qty, t.price)
        oo.remaining -= qty
        if oo.remaining <= o.qty * 1e-12:
            oo.remaining = 0.0
        oo.fills += 1
        out.append(Fill(schema_version=V1, fill_id=f"{o.order_id}-{oo.fills}", order_id=o.order_id,
                        policy_id=o.policy_id, exchange=o.exchange, symbol=o.symbol, side=o.side, price=ex.price,
                        qty=qty, fee=ex.fee, slippage=ex.slippage, ts=t.ts, trade_id=t.trade_id,
                        last=oo.remaining == 0.0))
        if oo.remaining == 0.0:
            self._finish(o.order_id)
