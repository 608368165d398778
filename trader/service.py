"""`tickflow trade`: the trader service. Features in, orders out, exactly once.

One process per policy. A transactional loop consumes ``signals.features`` (consumer group
``tickflow-trader-<policy>``), asks the policy and the risk gate, and produces the orders, a portfolio
snapshot and the consumed offsets in ONE Kafka transaction: after a crash the features after the
last committed transaction are decided again, giving the same orders with the same ids, and nothing
before it is decided twice. A batch of features that produces nothing opens no transaction (its
offsets go with the next one); marks alone publish a snapshot at most every
``TRADER__SNAPSHOT_INTERVAL_S``, so the transactions, a few broker round trips each, are spent on
orders. On start the intended positions are rebuilt from this policy's committed orders, the book
from its fills (read from the beginning), and gaps from ``market.events``. Records that fail their
contract go to the topic's dead-letter topic and are never traded on. Without a bundle directory the
policy's version comes from the registry and a newly promoted one is swapped in between two batches
(``trader/swap.py``). In the shadow lane (``lane=SHADOW``, `tickflow trade --shadow`) the same loop writes
``orders.shadow`` and ``portfolio.shadow`` and books ``fills.shadow`` under its own group, so a
challenger's record never touches the champion's.
"""

from __future__ import annotations

import gc
import logging
import time
from pathlib import Path
from typing import Annotated

import msgspec
from confluent_kafka import Consumer, Message, Producer, TopicPartition
from msgspec import Meta

from contracts import (
    FeatureVector,
    Fill,
    MarketEvent,
    Order,
    PortfolioSnapshot,
    SourceOffset,
    decode,
    encode,
    kafka_io,
    market_key,
    topic_reader,
)
from contracts.errors import ContractError
from contracts.settings import kafka_bootstrap, load, tickflow_home
from contracts.timeutil import now_ms
from contracts.topics import LIVE, MARKET_EVENTS, SIGNALS_FEATURES, Lane
from trader.handler import PolicyTrader, record_problem
from trader.policy import bundle as bundle_mod
from trader.risk import RiskSettings
from trader.status import StatusServer
from trader.swap import RegistryServing, RollbackSettings

log = logging.getLogger(__name__)


class TraderSettings(msgspec.Struct, frozen=True, kw_only=True):
    notional: Annotated[float, Meta(gt=0)] = 1_000.0  # quote currency per unit of target position
    capital: Annotated[float, Meta(gt=0)] = 10_000.0  # the book's starting cash
    http_port: Annotated[int, Meta(ge=-1, le=65535)] = 0  # status endpoint; 0 picks a free port, -1 turns it off
    http_host: Annotated[str, Meta(min_length=1)] = "127.0.0.1"
    batch: Annotated[int, Meta(ge=1, le=100_000)] = 500
    snapshot_interval_s: Annotated[float, Meta(ge=0)] = 1.0  # marks alone publish a snapshot at most this often
    risk: RiskSettings = msgspec.field(default_factory=RiskSettings)
    rollback: RollbackSettings = msgspec.field(default_factory=RollbackSettings)  # trader.swap


class TraderService:
    def __init__(self, bundle_dir: Path | None, policy_id: str | None = None, settings: TraderSettings | None = None,
                 bootstrap: str | None = None, lane: Lane = LIVE) -> None:
        """``bundle_dir`` None: serve ``policy_id``'s version from the registry and follow it (trader.swap)."""
        self.lane = lane  # the topics of its orders, fills and book, and its group: live, or shadow (contracts.topics)
        self.settings = settings or load(TraderSettings, "TRADER")
        self.bootstrap = bootstrap or kafka_bootstrap()
        self.serving: RegistryServing | None = None
        if bundle_dir is None:
            if policy_id is None:
                raise ValueError("a trader without a bundle directory serves a policy id from the registry")
            self.serving = RegistryServing(self.bootstrap, policy_id, tickflow_home(), self.settings.rollback)
            self.bundle = self.serving.initial()
        else:
            self.bundle = bundle_mod.load(bundle_dir)
        self.policy_id = policy_id or f"{self.bundle.algo}-{self.bundle.version[:8]}"
        self.trader = PolicyTrader(self.bundle, self.policy_id, self.settings.notional, self.settings.capital,
                                   self.settings.risk)
        self.stopper = kafka_io.Stopper()
        self.latencies_us: list[float] = []
        self.status: StatusServer | None = None
        self._fill_offsets: dict[int, int] = {}
        self._offsets_pending = False  # features consumed since the last transaction
        self._committed_log: list[Order] = []  # the orders of the transaction being built, logged once it commits
        self._marked = False  # the book was marked since the last snapshot
        self._last_snapshot = 0.0
        # the names under the topic prefix at start, read once: an environment lookup a message costs microseconds
        self._orders, self._fills, self._portfolio = lane.orders.name, lane.fills.name, lane.portfolio.name

    def _rebuild(self, producer: Producer) -> None:
        """The intended positions from this policy's orders, the halt from its last portfolio snapshot, the
        book from every fill; records that fail their contract go to their topic's DLQ."""
        rebuild = topic_reader.RebuildRead(self.bootstrap)
        orders = fills = 0
        for _, order in rebuild.records(self.lane.orders, Order):
            if order is not None and order.policy_id == self.policy_id:
                self.trader.restore_order(order)
                orders += 1
        last: PortfolioSnapshot | None = None
        for _, snap in rebuild.records(self.lane.portfolio, PortfolioSnapshot):
            if snap is not None and snap.policy_id == self.policy_id:
                last = snap
        if last is not None:
            self.trader.restore_halt(last)
        self._fill_offsets.clear()
        for m, fill in rebuild.records(self.lane.fills, Fill):
            self._fill_offsets[m.partition() or 0] = (m.offset() or 0) + 1
            if fill is not None:
                fills += self.trader.on_fill(fill)
        dead = rebuild.send_dead_letters(producer)
        log.info("Policy %s (version %s) rebuilt from %d orders and %d fills (%d records newly dead-lettered); "
                 "halted: %s.", self.policy_id, self.bundle.version, orders, fills, dead, self.trader.halted)

    def run(self, max_seconds: float | None = None) -> int:
        kafka_io.Stopper.install(self.stopper)
        if self.settings.http_port >= 0:
            self.status = StatusServer(self.trader, self.latencies_us, self.settings.http_host,
                                       self.settings.http_port)
            log.info("Trader %s serves its status at http://%s:%d/health.", self.policy_id, self.settings.http_host,
                     self.status.port)
        if self.serving:
            self.serving.start()
        try:
            recoveries = kafka_io.run_recovering(self._session, self.stopper, f"Trader {self.policy_id}", max_seconds)
        finally:
            if self.serving:
                self.serving.stop()
            if self.status:
                self.status.close()
        log.info("Trader %s stopped after %d decisions (%d held, %d in-process recoveries).", self.policy_id,
                 self.trader.decisions, self.trader.held, recoveries)
        return 0

    def _session(self) -> kafka_io.Session:
        """A new producer (it fences a previous instance, or this process's producer in doubt), the state rebuilt
        afresh from the committed orders, fills and snapshots, and the consumers at the committed offsets."""
        group = self.lane.group(f"tickflow-trader-{self.policy_id}")  # one group and transactional id per environment
        producer = kafka_io.transactional_producer(self.bootstrap, group)
        self.trader = PolicyTrader(self.bundle, self.policy_id, self.settings.notional, self.settings.capital,
                                   self.settings.risk)
        self._offsets_pending = self._marked = False
        self._committed_log = []
        if self.status:
            self.status.trader = self.trader
        features = kafka_io.consumer(self.bootstrap, group)
        # the committed offsets first, then the rebuild, which reads every order and fill written before it
        # (topic_reader.stable_ends): whatever the offsets count, the positions hold
        kafka_io.assign_at_committed(features, [SIGNALS_FEATURES])
        self._rebuild(producer)
        side = kafka_io.consumer(self.bootstrap, f"{group}-side")
        side.assign([TopicPartition(self._fills, tp.partition, self._fill_offsets.get(tp.partition, -2))
                     for tp in kafka_io.partitions(side, self.lane.fills)]
                    + [TopicPartition(MARKET_EVENTS.name, tp.partition, -2)
                       for tp in kafka_io.partitions(side, MARKET_EVENTS)])
        log.info("Trader %s (%s lane: %s, %s) consumes %s as group %s with bundle %s (%s, %d features).",
                 self.policy_id, self.lane.name, self._orders, self._fills, SIGNALS_FEATURES.name, group,
                 self.bundle.path, self.bundle.algo, len(self.bundle.feature_names))
        # what start-up built lives as long as the session: collections skip it from now on, which keeps
        # the collector's pauses off the decision path (unfrozen first, so a recovered session's garbage goes)
        gc.unfreeze()
        gc.collect()
        gc.freeze()
        return kafka_io.Session(producer, lambda: self.step(producer, features, side),
                                lambda: self._finish(producer, features), [features, side])

    def step(self, producer: Producer, features: Consumer, side: Consumer) -> None:
        """Decide on the features and side records available now; put what that produced (orders, dead
        letters, a portfolio snapshot) and the consumed offsets in one transaction.

        Features that produce nothing open no transaction: their offsets ride with the next one (after
        a crash they are decided again, and give nothing again). Marks alone publish a snapshot, and so
        commit, at most every ``snapshot_interval_s``; an order or a fill publishes one at once.
        """
        if self.serving:  # a swap to a newly promoted version happens here, between two batches
            self.bundle = self.serving.at_boundary(self.trader)
        first = features.poll(0.05)
        msgs: list[Message] = [first] if first is not None else []
        if msgs:
            msgs.extend(features.consume(self.settings.batch, timeout=0))
        side_msgs = side.consume(self.settings.batch, timeout=0)
        out: list[tuple[str, bytes, bytes | None]] = []
        booked = False
        for m in side_msgs:
            if kafka_io.usable(m):
                booked |= self._side(out, m)
        for m in msgs:
            if kafka_io.usable(m):
                self._marked |= self._feature(out, m)
        self._offsets_pending |= bool(msgs)
        booked |= any(topic == self._orders for topic, _, _ in out)
        now = time.monotonic()
        if booked or (self._marked and now - self._last_snapshot >= self.settings.snapshot_interval_s):
            out.append(self._snapshot())
            self._marked, self._last_snapshot = False, now
        if out:
            self._transact(producer, features, out)

    def _snapshot(self) -> tuple[str, bytes, bytes | None]:
        ts = self.trader.last_feature_ts or now_ms()
        snap = self.trader.book.snapshot(self.policy_id, ts, self.trader.halted)
        return self._portfolio, encode(snap), self.policy_id.encode()

    def _transact(self, producer: Producer, features: Consumer, out: list[tuple[str, bytes, bytes | None]]) -> None:
        offsets = lambda: (features.position(features.assignment()), features.consumer_group_metadata())  # noqa: E731
        orders, self._committed_log = self._committed_log, []
        kafka_io.transact(producer, out, offsets if self._offsets_pending else None)
        self._offsets_pending = False
        # logged once committed, off the decision path (formatting and writing a line cost 60 us at p50 and
        # 240 us at p99 per order in a traced bench run); an order of a transaction in doubt is not logged
        for order in orders:
            src = order.feature
            log.info("Order %s: %s %.8g %s (target %+g) at feature ts %d from %s; %s.", order.order_id, order.side,
                     order.qty, order.symbol, order.target_position, order.feature_ts,
                     f"{src.topic}[{src.partition}]@{src.offset}" if src else "?", order.reason)

    def _finish(self, producer: Producer, features: Consumer) -> None:
        """On a clean stop: the last snapshot and the consumed offsets, so a restart decides nothing again."""
        if self._offsets_pending or self._marked:
            self._transact(producer, features, [self._snapshot()])
            self._marked = False

    def _feature(self, out: list[tuple[str, bytes, bytes | None]], m: Message) -> bool:
        """Decide on one feature record; True when it was for this policy (its book was marked)."""
        t0 = time.perf_counter()
        too_big = record_problem(m.value() or b"")
        if too_big is not None:
            out.append((*kafka_io.dead_letter(m, SIGNALS_FEATURES, too_big), None))
            return False
        try:
            fv = decode(m.value() or b"", FeatureVector)
        except ContractError as err:
            out.append((*kafka_io.dead_letter(m, SIGNALS_FEATURES, str(err)), None))
            return False
        if not self.trader.mine(fv):
            return False
        reason = self.trader.refuse_reason(fv)
        if reason is not None:
            out.append((*kafka_io.dead_letter(m, SIGNALS_FEATURES, reason), None))
            return False
        decision = self.trader.on_feature(fv, now_ms(), SourceOffset(m.topic() or "", m.partition() or 0,
                                                                      m.offset() or 0))
        for order in decision.orders:
            out.append((self._orders, encode(order), market_key(order.exchange, order.symbol)))
            self._committed_log.append(order)
        self.latencies_us.append((time.perf_counter() - t0) * 1e6)
        if len(self.latencies_us) > 10_000:
            del self.latencies_us[:5_000]
        return True

    def _side(self, out: list[tuple[str, bytes, bytes | None]], m: Message) -> bool:
        """Apply one fill or market event; True when a fill of this policy was booked."""
        if m.topic() == self._fills:
            try:
                fill = decode(m.value() or b"", Fill)
            except ContractError as err:
                # the fills topic's DLQ is shared by its consumers; the trader reports what it refused
                out.append((*kafka_io.dead_letter(m, self.lane.fills, str(err)), None))
                return False
            problem = self.trader.fill_problem(fill)
            if problem is not None:
                out.append((*kafka_io.dead_letter(m, self.lane.fills, problem), None))
                return False
            return self.trader.on_fill(fill)
        try:
            self.trader.on_event(decode(m.value() or b"", MarketEvent))
        except ContractError as err:
            log.warning("Ignored %s[%d]@%d: %s.", m.topic(), m.partition(), m.offset(), err)
        return False
