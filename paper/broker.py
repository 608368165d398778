"""`tickflow paper`: the paper broker service. Orders and market trades (and books) in, fills out, exactly once.

A transactional loop consumes ``orders`` and ``market.trades`` (group ``tickflow-paper``), and
``market.books`` when ``PAPER__BOOKS`` names symbols to fill against their book, and produces the fills
with the consumed offsets in one transaction. On start it rebuilds its state at the committed offsets:
the fills topic says how much of each order is filled (and what liquidity book fills took), the last
``BOOK_BUFFER`` book records before the committed offsets rebuild the books with their recent past, the
orders topic up to the committed offset gives the open ones, and the last trades before the committed
offsets refill the trade ring (without filling anything again); book fills that the rebuilt books make
due go out in the transaction of the first records read. A SIGKILL therefore loses nothing and repeats nothing.

``tickflow paper --shadow`` (``lane=SHADOW``) is the same broker on a separate book: it fills
``orders.shadow`` into ``fills.shadow`` as group ``tickflow-paper-shadow``, so the challengers' orders
never take the liquidity the champion's fills see, nor appear in its fills.
"""

from __future__ import annotations

import logging
from collections import defaultdict

from confluent_kafka import Consumer, Message, Producer

from contracts import DeadLetter, Fill, Order, Trade, decode, encode, kafka_io, market_key, topic_reader
from contracts.books import BookUpdate
from contracts.errors import ContractError
from contracts.settings import kafka_bootstrap, load
from contracts.topics import LIVE, MARKET_BOOKS, MARKET_TRADES, Lane
from paper.matching import Matcher, PaperSettings
from paper.order_checks import order_problem, served_policies

log = logging.getLogger(__name__)
GROUP = "tickflow-paper"


class PaperBroker:
    def __init__(self, settings: PaperSettings | None = None, bootstrap: str | None = None,
                 group: str | None = None, lane: Lane = LIVE) -> None:
        self.lane = lane  # the orders it fills and the fills it writes: live, or a separate book for shadow orders
        self.settings = settings or load(PaperSettings, "PAPER")
        self.bootstrap = bootstrap or kafka_bootstrap()
        self.group = group or lane.group(GROUP)  # one group and transactional id per environment and lane
        self.matcher = Matcher(self.settings)
        self.served = served_policies(self.settings.policies)
        self.stopper = kafka_io.Stopper()
        self.fills_out = 0
        self._orders, self._fills = lane.orders.name, lane.fills.name  # under the topic prefix at start, read once
        self._books = MARKET_BOOKS.name
        self.inputs = [lane.orders, MARKET_TRADES, *([MARKET_BOOKS] if self.matcher.book is not None else [])]
        self._due = False  # book fills may be due after the rebuild

    def _rebuild(self, c: Consumer, producer: Producer) -> None:
        orders_at = kafka_io.committed(c, self.lane.orders)
        trades_at = kafka_io.committed(c, MARKET_TRADES)
        rebuild = topic_reader.RebuildRead(self.bootstrap)
        filled: dict[str, float] = defaultdict(float)
        counts: dict[str, int] = defaultdict(int)
        finished: set[str] = set()
        for _, f in rebuild.records(self.lane.fills, Fill):
            if f is None:
                continue
            filled[f.order_id] += f.qty
            counts[f.order_id] += 1
            if f.last:
                finished.add(f.order_id)
            if self.matcher.book is not None:
                self.matcher.book.restore_taken(f)
        books = self._rebuild_books(c, rebuild)
        restored = 0
        if orders_at:
            # an orders partition without a committed offset restores nothing (RebuildRead): the consumer reads
            # its orders from the start, each a new order, checked and filled from the trade ring as it comes
            refused = self._refused_orders()
            for _, o in rebuild.records(self.lane.orders, Order, stop=orders_at):
                if o is not None and o.order_id not in refused and not self.matcher.known(o.order_id):
                    self.matcher.restore(o, filled.get(o.order_id, 0.0), counts.get(o.order_id, 0),
                                         o.order_id in finished)
                    restored += 1
        if trades_at:
            # a partition without a committed offset puts nothing into the ring (RebuildRead: the consumer reads
            # it from its start; read to its end here, its later trades could fill an order early)
            back = {p: max(0, off - self.settings.trade_buffer) for p, off in trades_at.items()}
            for _, t in rebuild.records(MARKET_TRADES, Trade, start=back, stop=trades_at):
                if t is not None:
                    self.matcher.remember_trade(t)
        dead = rebuild.send_dead_letters(producer)
        self._due = True
        log.info("Paper broker rebuilt %d orders (%d open) from the committed offsets %s / %s and %d book records; "
                 "%d records newly dead-lettered.", restored, len(self.matcher.open), orders_at, trades_at, books, dead)

    def _rebuild_books(self, c: Consumer, rebuild: topic_reader.RebuildRead) -> int:
        """Rebuild the books (with their recent past) from the book records before the committed offsets."""
        book = self.matcher.book
        if book is None:
            return 0
        books_at = kafka_io.committed(c, MARKET_BOOKS)
        if not books_at:
            return 0
        back = {p: max(0, off - self.settings.book_buffer) for p, off in books_at.items()}
        n = 0
        for m, u in rebuild.records(MARKET_BOOKS, BookUpdate, start=back, stop=books_at):
            if u is not None:
                book.on_book(u, f"{m.topic()}[{m.partition()}]@{m.offset()}")  # no order is queued yet: no fill
                n += 1
        return n

    def _refused_orders(self) -> set[str]:
        """Ids of the orders refused before (the orders' DLQ, written in the transaction of their offsets)."""
        refused: set[str] = set()
        for m in topic_reader.read_to_end(self.bootstrap, self.lane.orders.dlq):
            try:
                refused.add(decode(decode(m.value() or b"", DeadLetter).raw.encode(), Order).order_id)
            except ContractError:
                continue  # a record that was not an order: nothing to restore
        return refused

    def run(self, max_seconds: float | None = None) -> int:
        self.stopper.install()
        recoveries = kafka_io.run_recovering(self._session, self.stopper, "Paper broker", max_seconds)
        log.info("Paper broker stopped after %d fills; %d orders open; %d in-process recoveries.", self.fills_out,
                 len(self.matcher.open), recoveries)
        return 0

    def _session(self) -> kafka_io.Session:
        """A new producer (it fences a previous instance, or this process's producer in doubt), the matcher
        rebuilt afresh at the committed offsets, and the consumer assigned there."""
        producer = kafka_io.transactional_producer(self.bootstrap, self.group)
        c = kafka_io.consumer(self.bootstrap, self.group)
        self.matcher = Matcher(self.settings)
        self._rebuild(c, producer)
        kafka_io.assign_at_committed(c, self.inputs)
        log.info("Paper broker consumes %s as group %s (latency %d ms, fee %.2f bps, slippage %.2f bps; book fills "
                 "for %s).", ", ".join(t.name for t in self.inputs), self.group, self.settings.latency_ms,
                 self.settings.costs.fee_bps, self.settings.costs.slippage_bps, self.settings.books or "no symbol")
        return kafka_io.Session(producer, lambda: self.step(producer, c), lambda: None, [c])

    def step(self, producer: Producer, c: Consumer) -> None:
        first = c.poll(0.05)
        if first is None:
            return
        msgs = [first, *c.consume(self.settings.batch, timeout=0)]
        out: list[tuple[str, bytes, bytes | None]] = []
        if self._due:  # book fills that the rebuilt books made due go out with the first records read
            self._due = False
            out += [(self._fills, encode(f), market_key(f.exchange, f.symbol)) for f in self.matcher.pending()]
            self.fills_out += len(out)
        for m in msgs:
            if not kafka_io.usable(m):
                continue
            for fill in self._handle(out, m):
                out.append((self._fills, encode(fill), market_key(fill.exchange, fill.symbol)))
                self.fills_out += 1
        kafka_io.transact(producer, out, lambda: (c.position(c.assignment()), c.consumer_group_metadata()))

    def _handle(self, out: list[tuple[str, bytes, bytes | None]], m: Message) -> list[Fill]:
        if m.topic() == self._orders:
            try:
                order = decode(m.value() or b"", Order)
            except ContractError as err:
                out.append((*kafka_io.dead_letter(m, self.lane.orders, str(err)), None))
                return []
            problem = order_problem(order, self.settings, self.served,
                                    self.matcher.last_price(order.exchange, order.symbol))
            if problem is not None:
                out.append((*kafka_io.dead_letter(m, self.lane.orders, problem), None))
                return []
            fills = self.matcher.on_order(order)
            log.info("Order %s (%s %.8g %s) from %s[%d]@%d: %d fills at once.", order.order_id, order.side,
                     order.qty, order.symbol, m.topic(), m.partition(), m.offset(), len(fills))
            return fills
        try:
            if m.topic() == self._books:
                return self.matcher.on_book(decode(m.value() or b"", BookUpdate),
                                            f"{m.topic()}[{m.partition()}]@{m.offset()}")
            trade = decode(m.value() or b"", Trade)
        except ContractError as err:
            log.warning("Skipped %s[%d]@%d: %s (the ingestor's DLQ holds bad frames).", m.topic(), m.partition(),
                        m.offset(), err)
            return []
        return self.matcher.on_trade(trade)


__all__ = ["PaperBroker", "PaperSettings"]
