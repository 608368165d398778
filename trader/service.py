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
challenger's record never touches the champion's. With ``instance`` (`tickflow trade --instance ID`) several
processes share the policy's partitions in one consumer group (``trader/instances.py``).
"""

from __future__ import annotations

import gc
import logging
import time
from pathlib import Path
from typing import Annotated

import msgspec
from confluent_kafka import OFFSET_BEGINNING, Consumer, Message, Producer, TopicPartition
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
from trader.instances import Membership
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
    # a transaction a SIGKILLed process left open is aborted by the coordinator after this (nobody else takes an
    # instance's transactional id over); until then a read_committed read of its topics stops before it
    transaction_timeout_s: Annotated[float, Meta(ge=1, le=900)] = kafka_io.TRANSACTION_TIMEOUT_MS / 1000
    # instances (--instance): a SIGKILLed instance's partitions move to the others after this
    session_timeout_s: Annotated[float, Meta(ge=6, le=1800)] = 45.0
    risk: RiskSettings = msgspec.field(default_factory=RiskSettings)
    rollback: RollbackSettings = msgspec.field(default_factory=RollbackSettings)  # trader.swap


class TraderService:
    def __init__(self, bundle_dir: Path | None, policy_id: str | None = None, settings: TraderSettings | None = None,
                 bootstrap: str | None = None, lane: Lane = LIVE, instance: str | None = None) -> None:
        """``bundle_dir`` None: serve ``policy_id``'s version from the registry and follow it (trader.swap).
        ``instance``: one of several instances of the policy, sharing its partitions (trader.instances)."""
        self.instance = instance
        self.membership: Membership | None = None  # set by an instance's session
        self._polling = False  # an instance polls its features (a rebalance's revocation may commit then)
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
        mb = self.membership
        for _, order in rebuild.records(self.lane.orders, Order):
            if order is not None and order.policy_id == self.policy_id and (
                    mb is None or mb.owns(order.exchange, order.symbol)):
                self.trader.restore_order(order)
                orders += 1
        last: dict[bytes, PortfolioSnapshot] = {}  # one instance: the policy's last; instances: each one's last
        for m, snap in rebuild.records(self.lane.portfolio, PortfolioSnapshot):
            if snap is not None and snap.policy_id == self.policy_id:
                last[b"" if mb is None else m.key() or b""] = snap
        for snap in last.values():
            self.trader.restore_halt(snap)
        own = last.get(b"" if mb is None else mb.snapshot_key(self.policy_id))
        if self.serving is not None and own is not None:
            self.serving.restore_peak(own)
        self._fill_offsets.clear()
        for m, fill in rebuild.records(self.lane.fills, Fill):
            self._fill_offsets[m.partition() or 0] = (m.offset() or 0) + 1
            if fill is not None and (mb is None or mb.owns(fill.exchange, fill.symbol)):
                fills += self.trader.on_fill(fill)
        dead = rebuild.send_dead_letters(producer)
        log.info("Policy %s (version %s) rebuilt from %d orders and %d fills (%d records newly dead-lettered); "
                 "halted: %s.%s", self.policy_id, self.bundle.version, orders, fills, dead, self.trader.halted,
                 "" if mb is None else f" Instance {mb.instance}: the symbols of {mb.describe()}.")

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
        if self.instance is not None:
            return self._instance_session(group)
        producer = self._producer(group)
        self._new_trader()
        features = kafka_io.consumer(self.bootstrap, group)
        # the committed offsets first, then the rebuild, which reads every order and fill written before it
        # (topic_reader.stable_ends): whatever the offsets count, the positions hold
        kafka_io.assign_at_committed(features, [SIGNALS_FEATURES])
        self._rebuild(producer)
        side = kafka_io.consumer(self.bootstrap, f"{group}-side")
        self._assign_side(side)
        log.info("Trader %s (%s lane: %s, %s) consumes %s as group %s with bundle %s (%s, %d features).",
                 self.policy_id, self.lane.name, self._orders, self._fills, SIGNALS_FEATURES.name, group,
                 self.bundle.path, self.bundle.algo, len(self.bundle.feature_names))
        _freeze()
        return kafka_io.Session(producer, lambda: self.step(producer, features, side),
                                lambda: self._finish(producer, features), [features, side])

    def _producer(self, transactional_id: str) -> Producer:
        return kafka_io.transactional_producer(self.bootstrap, transactional_id,
                                               transaction_timeout_ms=int(self.settings.transaction_timeout_s * 1000))

    def _new_trader(self) -> None:
        self.trader = PolicyTrader(self.bundle, self.policy_id, self.settings.notional, self.settings.capital,
                                   self.settings.risk)
        self._offsets_pending = self._marked = False
        self._committed_log = []
        if self.status:
            self.status.trader = self.trader

    def _assign_side(self, side: Consumer) -> None:
        """Fills from where the rebuild read them to, market events from their start."""
        side.assign([TopicPartition(self._fills, tp.partition, self._fill_offsets.get(tp.partition, -2))
                     for tp in kafka_io.partitions(side, self.lane.fills)]
                    + [TopicPartition(MARKET_EVENTS.name, tp.partition, -2)
                       for tp in kafka_io.partitions(side, MARKET_EVENTS)])

    def _instance_session(self, group: str) -> kafka_io.Session:
        """One instance of several: its own transactional id, the policy's group subscribed; the state is rebuilt
        at each assignment (``_assigned``), what was decided is committed before partitions move (``_revoked``)."""
        assert self.instance is not None
        producer = self._producer(f"{group}-{self.instance}")
        self._new_trader()
        session_ms = int(self.settings.session_timeout_s * 1000)
        # the callbacks assume the eager protocol: every partition revoked, then the new share assigned whole
        features = kafka_io.consumer(self.bootstrap, group, **{
            "session.timeout.ms": session_ms, "heartbeat.interval.ms": min(3_000, session_ms // 3),
            "partition.assignment.strategy": "range"})
        self.membership = Membership(self.instance, SIGNALS_FEATURES.name,
                                     len(kafka_io.partitions(features, SIGNALS_FEATURES)))
        self._update_owner()
        side = kafka_io.consumer(self.bootstrap, f"{group}-side")
        features.subscribe([SIGNALS_FEATURES.name], on_assign=lambda c, tps: self._assigned(producer, side, c, tps),
                           on_revoke=lambda c, tps: self._revoked(producer, c, tps),
                           on_lost=lambda c, tps: self._lost(tps))
        log.info("Trader %s instance %s (%s lane) subscribes to %s in group %s with transactional id %s-%s and "
                 "bundle %s (%s, %d features).", self.policy_id, self.instance, self.lane.name, SIGNALS_FEATURES.name,
                 group, group, self.instance, self.bundle.path, self.bundle.algo, len(self.bundle.feature_names))
        return kafka_io.Session(producer, lambda: self.step(producer, features, side),
                                lambda: self._finish(producer, features), [features, side])

    def _assigned(self, producer: Producer, side: Consumer, features: Consumer,
                  partitions: list[TopicPartition]) -> None:
        """The group gave this instance ``partitions``: the state of their symbols rebuilt from the committed
        orders, fills and snapshots, and the features read from the committed offsets."""
        assert self.membership is not None
        parts = sorted(tp.partition for tp in partitions)
        t0 = time.monotonic()
        self._new_trader()
        # first, then the rebuild (as in _session); it waits while a killed instance's transaction holds offsets
        at = kafka_io.committed(features, SIGNALS_FEATURES)
        t1 = time.monotonic()
        self.membership.assigned(parts)
        if parts:
            self._rebuild(producer)
        self._assign_side(side)
        start = [TopicPartition(SIGNALS_FEATURES.name, p, at.get(p, OFFSET_BEGINNING)) for p in parts]
        features.assign(start)
        self._update_owner()
        _freeze()
        log.info("Trader %s instance %s owns %s, from %s (committed offsets read in %.1fs, rebuilt in %.1fs).",
                 self.policy_id, self.instance, self.membership.describe(),
                 ", ".join(f"[{tp.partition}]@{tp.offset if tp.offset >= 0 else 'beginning'}" for tp in start)
                 or "nothing (more instances than partitions)", t1 - t0, time.monotonic() - t1)

    def _revoked(self, producer: Producer, features: Consumer, partitions: list[TopicPartition]) -> None:
        """The group takes this instance's partitions back: between two batches, what it decided is committed with
        its offsets first, so the next owner decides nothing twice (in a stop or a recovery, ``_finish`` did or
        the committed offsets stand)."""
        assert self.membership is not None
        if self._polling:
            self._finish(producer, features)
        log.info("Trader %s instance %s gives up %s.", self.policy_id, self.instance, self.membership.describe())
        self.membership.revoked()
        self._update_owner()

    def _lost(self, partitions: list[TopicPartition]) -> None:
        """The group moved on without this instance (it missed its session): nothing is committed, the others
        own the partitions; a transaction of its old generation is fenced (KIP-447)."""
        assert self.membership is not None
        log.warning("Trader %s instance %s lost %s to the group without committing.", self.policy_id, self.instance,
                    self.membership.describe())
        self.membership.revoked()
        self._update_owner()

    def _update_owner(self) -> None:
        if self.status and self.membership:
            self.status.owner = {"instance": self.membership.instance, "partitions": sorted(self.membership.partitions),
                                 "topic": self.membership.topic}

    def _set_polling(self, on: bool) -> None:
        self._polling = on

    def step(self, producer: Producer, features: Consumer, side: Consumer) -> None:
        """Decide on the features and side records available now; put what that produced (orders, dead
        letters, a portfolio snapshot) and the consumed offsets in one transaction.

        Features that produce nothing open no transaction: their offsets ride with the next one (after
        a crash they are decided again, and give nothing again). Marks alone publish a snapshot, and so
        commit, at most every ``snapshot_interval_s``; an order or a fill publishes one at once.
        """
        if self.serving:  # a swap to a newly promoted version happens here, between two batches
            self.bundle = self.serving.at_boundary(self.trader)
        if self.membership is None:
            first = features.poll(0.05)
            msgs: list[Message] = [first] if first is not None else []
            if msgs:
                msgs.extend(features.consume(self.settings.batch, timeout=0))
        else:
            msgs = self.membership.poll(features, self.settings.batch, self._set_polling)
        side_msgs = side.consume(self.settings.batch, timeout=0)
        out: list[tuple[str, bytes, bytes | None]] = []
        booked = False
        for m in side_msgs:
            if kafka_io.usable(m):
                booked |= self._side(out, m)
        for m in msgs:
            if kafka_io.usable(m):
                self._marked |= self._feature(out, m)
                if self.membership is not None:
                    self.membership.decided(m)
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
        mb, serving = self.membership, self.serving
        snap = self.trader.book.snapshot(self.policy_id, ts, self.trader.halted, None if mb is None else mb.instance,
                                         self.trader.version, None if serving is None else serving.peak)
        key = self.policy_id.encode() if mb is None else mb.snapshot_key(self.policy_id)
        return self._portfolio, encode(snap), key

    def _transact(self, producer: Producer, features: Consumer, out: list[tuple[str, bytes, bytes | None]]) -> None:
        mb = self.membership
        offsets = lambda: (features.position(features.assignment()) if mb is None else mb.offsets(),  # noqa: E731
                           features.consumer_group_metadata())
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
        misplaced = None if self.membership is None else self.membership.misplaced(fv, m.partition() or 0)
        if misplaced is not None:
            out.append((*kafka_io.dead_letter(m, SIGNALS_FEATURES, misplaced), None))
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
            if self.membership is not None and not self.membership.owns(fill.exchange, fill.symbol):
                return False  # another instance's symbol: it books the fill
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


def _freeze() -> None:
    """What start-up built lives as long as the session: collections skip it from now on, which keeps the
    collector's pauses off the decision path (unfrozen first, so a recovered session's garbage goes)."""
    gc.unfreeze()
    gc.collect()
    gc.freeze()
