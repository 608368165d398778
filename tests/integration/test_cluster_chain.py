"""The whole chain on a real three-node KRaft cluster under faults: `tickflow ingest replay` (two symbols'
candles expanded into trades) -> `tickflow streams worker` -> `tickflow trade` -> `tickflow paper`.

The reference is one uninterrupted run of the same chain on the same data, on the same cluster under a
topic prefix of its own (same code, same node settings, same client settings: only the faults and the
replay's pace differ, and none of the outputs depends on the pace: bars and features on event time, orders
on features, fills on the order and its symbol's trade sequence). It runs once for the module; every
scenario runs under a fresh prefix (its own topics, groups, transactional ids and Faust app) and compares
signals.bars, signals.features (repeats allowed only as identical records), orders and fills (exactly
once) with it.

Each scenario prints what it killed, when, and the record counts it compared.
"""

from __future__ import annotations

import os
import signal
import subprocess
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from functools import partial
from itertools import pairwise
from pathlib import Path

import pytest
from confluent_kafka import Consumer, KafkaException, Producer, TopicPartition
from confluent_kafka.admin import AdminClient, NewTopic

from contracts import Fill, Order, decode, to_dict
from contracts.client_config import producer_config
from contracts.kafka_io import COMMIT_TIMEOUT_ENV, LEADER_CHANGE_SAFE
from contracts.topic_reader import read_to_end
from contracts.topics import FILLS, MARKET_TRADES, ORDERS, PREFIX_ENV, SIGNALS_BARS, SIGNALS_FEATURES
from infra.kafka.admin import ensure_topics
from infra.kafka.broker import BrokerError
from infra.kafka.cluster import CLUSTER_HEAP, Layout, LocalCluster
from tests.helpers import DATA, REPO, cli_env, tickflow_cmd
from tests.integration.test_cluster import NODES, _say, free_base_port
from trader.policy.dataset import load
from trader.policy.train import TrainConfig, train

pytestmark = pytest.mark.integration
POLICY = "cl"
CANDLES = 600  # ten hours of 1-minute candles per symbol
SPEED = "1500"  # a paced replay: the ten hours in 24 s, so the faults land mid-stream
TXN_PARTITIONS = 4  # transaction.state.log.num.partitions of the local nodes
Ident = tuple[str, int, int]  # key, interval, window end (bars) or ts (features)


# -- the data, the bundle and the cluster ---------------------------------------------------------------
def _head(src: Path, out: Path, rows: int) -> Path:
    import gzip

    with gzip.open(src, "rt") as f:
        out.write_text("".join(next(f) for _ in range(rows + 1)))  # the header, then the rows
    return out


@dataclass
class Inputs:
    root: Path
    bundle: Path
    candles: dict[str, Path]  # venue symbol -> its slice


@pytest.fixture(scope="module")
def inputs(tmp_path_factory: pytest.TempPathFactory) -> Inputs:
    root = tmp_path_factory.mktemp("cluster-chain")
    ohlcv = DATA / "ohlcv"
    candles = {s: _head(next(ohlcv.glob(f"binance_spot_{s}_1m_*.csv.gz")), root / f"{s}_1m.csv", CANDLES)
               for s in ("BTCUSDT", "ETHUSDT")}
    btc = _head(next(ohlcv.glob("binance_spot_BTCUSDT_1m_*.csv.gz")), root / "binance_spot_BTCUSDT_1m_head.csv", 2_000)
    bundle = train(load(btc), TrainConfig(algo="ppo", timesteps=3_000, seed=1, mode="long_short", every=5,
                                          episode_len=64, progress=False), root / "bundle").bundle
    return Inputs(root, Path(bundle.path), candles)


@pytest.fixture(scope="module")
def cluster(tmp_path_factory: pytest.TempPathFactory, pytestconfig: pytest.Config) -> Iterator[
        tuple[LocalCluster, Layout]]:
    home = tmp_path_factory.mktemp("kafka-cluster-chain")
    local = LocalCluster(home)
    started = time.monotonic()
    try:
        layout = local.start(NODES, free_base_port(), timeout=180, die_with_parent=True)
    except (BrokerError, TimeoutError) as err:
        pytest.fail(f"the three-node cluster did not start: {err}", pytrace=False)
    _say(pytestconfig, f"{NODES} nodes ready at {layout.bootstrap} in {time.monotonic() - started:.1f}s")
    yield local, layout
    local.stop()


@contextmanager
def _prefix(prefix: str) -> Iterator[None]:
    previous = os.environ.get(PREFIX_ENV)
    os.environ[PREFIX_ENV] = prefix
    try:
        yield
    finally:
        if previous is None:
            os.environ.pop(PREFIX_ENV, None)
        else:
            os.environ[PREFIX_ENV] = previous


# -- running the chain ----------------------------------------------------------------------------------
class Proc:
    """A `tickflow` subprocess logging to its own file."""

    def __init__(self, name: str, args: list[str], env: dict[str, str], logs: Path) -> None:
        self.name, self.args, self.env = name, args, env
        self.log = logs / f"{name}.log"
        self.p: subprocess.Popen[bytes] | None = None

    def start(self) -> Proc:
        with self.log.open("ab") as out:
            self.p = subprocess.Popen(tickflow_cmd(*self.args), env=self.env, cwd=REPO, stdout=out,
                                      stderr=subprocess.STDOUT)
        return self

    def running(self) -> bool:
        return self.p is not None and self.p.poll() is None

    def stop(self, sig: int = signal.SIGTERM, timeout: float = 60) -> int | None:
        if self.p is None:
            return None
        if self.p.poll() is None:
            self.p.send_signal(sig)
        return self.p.wait(timeout)

    def text(self) -> str:
        return self.log.read_text(errors="replace")


@dataclass
class Chain:
    bootstrap: str
    prefix: str
    logs: Path
    env: dict[str, str]
    procs: dict[str, Proc] = field(default_factory=dict)

    def start(self, name: str, *args: str) -> Proc:
        proc = self.procs[name] = Proc(name, list(args), self.env, self.logs).start()
        return proc

    def alive(self) -> None:
        for p in self.procs.values():
            if p.p is not None and p.p.poll() not in (None, 0):
                raise AssertionError(f"{p.name} exited with {p.p.returncode}:\n{p.text()[-3000:]}")

    def stop_all(self) -> None:
        for p in self.procs.values():
            if p.running():
                p.stop(signal.SIGKILL)


def _java_hash(s: str) -> int:
    h = 0
    for ch in s:
        h = (31 * h + ord(ch)) & 0xFFFFFFFF
    return h - (1 << 32) if h & 0x80000000 else h


def txn_partition(transactional_id: str) -> int:
    """The __transaction_state partition (so the coordinator) of a transactional id, as Kafka computes it."""
    h = _java_hash(transactional_id)
    return (0 if h == -(1 << 31) else abs(h)) % TXN_PARTITIONS


def txn_coordinator(bootstrap: str, transactional_id: str) -> int:
    md = AdminClient({"bootstrap.servers": bootstrap, "log_level": 0}).list_topics("__transaction_state", timeout=10)
    return md.topics["__transaction_state"].partitions[txn_partition(transactional_id)].leader


def shared_coordinator_prefix(base: str) -> str:
    """A prefix under which the trader's and the paper broker's transactional ids have one coordinator
    partition: killing its leader puts both services' transactions in doubt."""
    for i in range(200):
        prefix = f"{base}{i}."
        if txn_partition(f"{prefix}tickflow-trader-{POLICY}") == txn_partition(f"{prefix}tickflow-paper"):
            return prefix
    raise AssertionError("no prefix found")


def open_chain(bootstrap: str, prefix: str, logs: Path, **env: str) -> Chain:
    logs.mkdir(parents=True, exist_ok=True)
    base = cli_env(bootstrap, logs)
    # the staleness check's event clock is the newest feature of any symbol: with two replays running side by
    # side, whether a symbol's feature is "stale" depends on how far the other one is ahead, a matter of pace.
    # Off, every decision is a function of its own symbol's features (the order rate limit is never reached).
    base.update({PREFIX_ENV: prefix, "TRADER__HTTP_PORT": "-1", "STREAMS__INTERVALS_S": "60",
                 "TRADER__RISK__STALE_AFTER_S": "off", "PYTHONUNBUFFERED": "1",
                 "PYTHONFAULTHANDLER": "1", **env})  # a service that hangs is aborted with its stack in its log
    with _prefix(prefix):
        ensure_topics(bootstrap)
    return Chain(bootstrap, prefix, logs, base)


def start_services(chain: Chain, inputs: Inputs, streams: bool = True) -> None:
    if streams:
        chain.start("streams", "streams", "worker")
    chain.start("paper", "paper")
    chain.start("trader", "trade", "--bundle", str(inputs.bundle), "--policy-id", POLICY)


def start_replays(chain: Chain, inputs: Inputs, speed: str) -> None:
    for sym, path in inputs.candles.items():
        chain.start(f"replay-{sym}", "ingest", "replay", str(path), "--from-candles", "--symbol", sym,
                    "--venue", "binance", "--speed", speed, "--no-progress")


def _wait_started(chain: Chain, timeout: float = 120) -> None:
    deadline = time.monotonic() + timeout
    for name, text in (("trader", "consumes"), ("paper", "consumes"), ("streams", "Reading")):
        p = chain.procs.get(name)
        if p is None:
            continue
        while text not in p.text():
            chain.alive()
            assert time.monotonic() < deadline, f"{name} did not start:\n{p.text()[-3000:]}"
            time.sleep(0.2)


def ends(bootstrap: str, name: str) -> int:
    """The records a topic holds now (sum of its partitions' high watermarks), waiting out an election."""
    deadline = time.monotonic() + 90
    c = Consumer({"bootstrap.servers": bootstrap, "group.id": "ends", "log_level": 0})
    try:
        while True:
            try:
                md = c.list_topics(name, timeout=10)
                return sum(c.get_watermark_offsets(TopicPartition(name, p), timeout=10)[1]
                           for p in md.topics[name].partitions)
            except KafkaException:
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.5)
    finally:
        c.close()


@dataclass
class Outputs:
    bars: dict[Ident, dict]
    features: dict[Ident, dict]
    orders: list[dict]
    fills: list[dict]
    repeats: int  # identical repeats of a bar or feature record

    def counts(self) -> str:
        return (f"{len(self.bars):,} bars, {len(self.features):,} features ({self.repeats} identical repeats), "
                f"{len(self.orders)} orders, {len(self.fills)} fills")


def outputs(bootstrap: str, prefix: str) -> Outputs:
    """What the chain under ``prefix`` published (names given in full: the reads may run in several threads,
    so the topic prefix is not switched through the environment)."""
    import json

    repeats = 0
    signals: list[dict[Ident, dict]] = []
    for topic, ts_field in ((SIGNALS_BARS, "window_end"), (SIGNALS_FEATURES, "ts")):
        seen: dict[Ident, dict] = {}
        for m in read_to_end(bootstrap, prefix + topic.base, idle_s=60):
            v = json.loads(m.value() or b"")
            v.pop("source", None)
            ident = ((m.key() or b"").decode(), v["interval_s"], v[ts_field])
            if ident in seen:
                assert seen[ident] == v, f"{prefix}{topic.base} {ident}: two different records for one window"
                repeats += 1
            seen[ident] = v
        signals.append(seen)
    orders = [_unprefixed(to_dict(decode(m.value() or b"", Order)), prefix)
              for m in read_to_end(bootstrap, prefix + ORDERS.base, idle_s=60)]
    fills = [to_dict(decode(m.value() or b"", Fill)) for m in read_to_end(bootstrap, prefix + FILLS.base, idle_s=60)]
    return Outputs(signals[0], signals[1], orders, fills, repeats)


def _unprefixed(order: dict, prefix: str) -> dict:
    """An order with the topic of the feature record it names given without the run's prefix (its partition and
    offset stay: the same in every run)."""
    if order.get("feature"):
        order["feature"]["topic"] = order["feature"]["topic"].removeprefix(prefix)
    return order


def settle(chain: Chain, want: Outputs | None, timeout: float = 180) -> Outputs:
    """Wait for the replays to finish and the outputs to reach ``want``'s counts (or, without ``want``, to stop
    moving for 8 s); stop the services; what the topics hold."""
    deadline = time.monotonic() + timeout
    for name, p in chain.procs.items():
        if name.startswith("replay-"):
            code = p.p.wait(max(1, deadline - time.monotonic())) if p.p else None
            assert code == 0, f"{name} exited with {code}:\n{p.text()[-3000:]}"
    names = [chain.prefix + t.base for t in (SIGNALS_BARS, SIGNALS_FEATURES, ORDERS, FILLS)]
    last: list[int] = []
    quiet = time.monotonic()
    while time.monotonic() < deadline:
        chain.alive()
        now = [ends(chain.bootstrap, n) for n in names]
        if want is not None:
            if now[2] >= len(want.orders) and now[3] >= len(want.fills) and now[1] >= len(want.features):
                got = outputs(chain.bootstrap, chain.prefix)
                if (len(got.features) >= len(want.features) and len(got.bars) >= len(want.bars)
                        and len(got.fills) >= len(want.fills)):
                    break
        elif now != last or not now[3]:  # until fills are out and nothing moves
            last, quiet = now, time.monotonic()
        elif time.monotonic() - quiet > 8:
            break
        time.sleep(1)
    for name in ("trader", "paper", "streams"):
        if name in chain.procs:
            code = chain.procs[name].stop(signal.SIGTERM)
            assert code == 0, f"{name} exited with {code}:\n{chain.procs[name].text()[-3000:]}"
    # every partition led and in sync before the final read: a read's end offsets taken while a leader is
    # being elected can come back empty
    _wait("every node in every ISR", lambda: all(_in_sync(chain.bootstrap, n) for n in range(1, NODES + 1)),
          120)
    return outputs(chain.bootstrap, chain.prefix)


def assert_identical(got: Outputs, want: Outputs, what: str) -> None:
    assert set(got.bars) == set(want.bars), f"{what}: {len(set(want.bars) - set(got.bars))} bars missing, " \
                                            f"{len(set(got.bars) - set(want.bars))} extra"
    assert got.bars == want.bars, f"{what}: bars differ"
    assert set(got.features) == set(want.features), f"{what}: features differ in their windows"
    assert got.features == want.features, f"{what}: features differ"
    assert len({o["order_id"] for o in got.orders}) == len(got.orders), f"{what}: an order twice"
    assert sorted(got.orders, key=lambda o: o["order_id"]) == sorted(want.orders, key=lambda o: o["order_id"]), \
        f"{what}: orders differ"
    assert len({f["fill_id"] for f in got.fills}) == len(got.fills), f"{what}: a fill twice"
    assert sorted(got.fills, key=lambda f: f["fill_id"]) == sorted(want.fills, key=lambda f: f["fill_id"]), \
        f"{what}: fills differ"


@pytest.fixture(scope="module")
def reference(cluster: tuple[LocalCluster, Layout], inputs: Inputs, pytestconfig: pytest.Config) -> Outputs:
    """The uninterrupted run, once for the module: the same chain and data, no fault, the replay at full speed."""
    _, layout = cluster
    started = time.monotonic()
    chain = open_chain(layout.bootstrap, "ref.", inputs.root / "reference")
    try:
        start_services(chain, inputs)
        _wait_started(chain)
        start_replays(chain, inputs, "max")
        ref = settle(chain, None)
    finally:
        chain.stop_all()
    _say(pytestconfig, f"reference (uninterrupted, prefix ref.): {ref.counts()} in {time.monotonic() - started:.1f}s")
    assert ref.repeats == 0
    assert len(ref.orders) >= 4 and len(ref.fills) >= len(ref.orders), "the policy should trade on this data"
    assert {o["symbol"] for o in ref.orders} == {"BTC-USDT", "ETH-USDT"}, "both symbols should trade"
    return ref


@pytest.fixture
def chains() -> Iterator[list[Chain]]:
    opened: list[Chain] = []
    yield opened
    for c in opened:
        c.stop_all()


def _wait(what: str, cond: Callable[[], bool], timeout: float, chain: Chain | None = None) -> float:
    started = time.monotonic()
    while not cond():
        if chain is not None:
            chain.alive()
        assert time.monotonic() - started < timeout, f"{what}: not within {timeout:.0f}s"
        time.sleep(0.2)
    return time.monotonic() - started


def _in_sync(bootstrap: str, node: int) -> bool:
    """``node`` is in the ISR of every partition of every topic (internal ones included)."""
    try:
        md = AdminClient({"bootstrap.servers": bootstrap, "log_level": 0}).list_topics(timeout=10)
    except KafkaException:
        return False
    return all(node in p.isrs for t in md.topics.values() for p in t.partitions.values())


def committed_covers_orders(chain: Chain, group: str) -> tuple[int, int]:
    """A read_committed reader's orders against the trader's committed offsets: for every order seen, the
    group's committed offset on signals.features is past the feature it was decided on (within 5 s of the
    order being seen: the markers of one transaction reach its partitions one after another). (orders
    checked, features read)."""
    import json

    orders = [decode(m.value() or b"", Order)
              for m in read_to_end(chain.bootstrap, chain.prefix + ORDERS.base, idle_s=30)]
    where: dict[tuple[str, int], tuple[int, int]] = {}
    name = chain.prefix + SIGNALS_FEATURES.base
    for m in read_to_end(chain.bootstrap, name, idle_s=30):
        v = json.loads(m.value() or b"")
        if v["interval_s"] == 60:
            where.setdefault((f"{v['exchange']}:{v['symbol']}", v["ts"]), (m.partition() or 0, m.offset() or 0))
    c = Consumer({"bootstrap.servers": chain.bootstrap, "group.id": group, "enable.auto.commit": False,
                  "log_level": 0})
    try:
        for o in orders:
            part, off = where[(f"{o.exchange}:{o.symbol}", o.feature_ts)]
            deadline = time.monotonic() + 5
            while True:
                [tp] = c.committed([TopicPartition(name, part)], timeout=10)
                if tp.offset > off:
                    break
                assert time.monotonic() < deadline, \
                    f"order {o.order_id} is visible but the offset of its feature {name}[{part}]@{off} is not " \
                    f"committed (committed {tp.offset})"
                time.sleep(0.2)
    finally:
        c.close()
    return len(orders), len(where)


class CommittedWatch:
    """``committed_covers_orders`` in a loop while the chain runs: a read_committed reader's view checked
    again and again, faults included. A round a fault interrupts (a read that times out or finds no leader)
    is counted and the next one starts; a violation is kept and fails the test."""

    def __init__(self, chain: Chain, group: str) -> None:
        import threading

        self.chain, self.group = chain, group
        self.rounds = self.interrupted = 0
        self.violations: list[str] = []
        self.done = threading.Event()
        self.thread = threading.Thread(target=self._run, daemon=True)
        self.thread.start()

    def _run(self) -> None:
        while not self.done.is_set():
            try:
                committed_covers_orders(self.chain, self.group)
                self.rounds += 1
            except AssertionError as err:
                self.violations.append(str(err))
            except (KafkaException, TimeoutError, KeyError):  # a round cut by a fault (KeyError: a feature
                self.interrupted += 1  # not readable yet though its order is); the next round re-checks
            self.done.wait(1.0)

    def stop(self) -> None:
        self.done.set()
        self.thread.join(120)


# -- the scenarios --------------------------------------------------------------------------------------
def test_the_chain_survives_its_transaction_coordinator_then_the_quorum_leader_sigkilled(
        cluster: tuple[LocalCluster, Layout], inputs: Inputs, reference: Outputs, chains: list[Chain],
        pytestconfig: pytest.Config) -> None:
    """The trader's (and paper broker's) transaction coordinator is SIGKILLed mid-stream with a 5 s commit
    timeout: their transactions are in doubt and both recover in process (a new producer, the state rebuilt
    from the committed offsets), same pids. Then the quorum leader is SIGKILLed. Outputs as the reference."""
    local, layout = cluster
    b = layout.bootstrap
    prefix = shared_coordinator_prefix("coord")
    chain = open_chain(b, prefix, inputs.root / "coordinator", **{COMMIT_TIMEOUT_ENV: "5"})
    chains.append(chain)
    say = lambda line: _say(pytestconfig, f"coordinator: {line}")  # noqa: E731
    start_services(chain, inputs)
    _wait_started(chain)
    t0 = time.monotonic()
    start_replays(chain, inputs, SPEED)
    orders_name = f"{prefix}orders"
    _wait("the first orders", lambda: ends(b, orders_name) >= 2, 90, chain)
    trader_pid, paper_pid = chain.procs["trader"].p.pid, chain.procs["paper"].p.pid  # type: ignore[union-attr]
    txn_id = f"{prefix}tickflow-trader-{POLICY}"
    watch = CommittedWatch(chain, txn_id)
    node = txn_coordinator(b, txn_id)
    at = ends(b, orders_name), ends(b, f"{prefix}signals.features")
    killed = local.kill(node)
    assert killed is not None
    say(f"SIGKILLed node {node} (pid {killed.pid}), coordinator of {txn_id} and {prefix}tickflow-paper "
        f"(__transaction_state[{txn_partition(txn_id)}]), at {time.monotonic() - t0:.1f}s with {at[0]} orders "
        f"and {at[1]:,} features out")
    try:
        recovered = _wait("the trader's recovery in process",
                          lambda: "recovered in" in chain.procs["trader"].text(), 120, chain)
    except AssertionError:
        chain.procs["trader"].stop(signal.SIGABRT)
        raise AssertionError(f"the trader did not recover:\n{chain.procs['trader'].text()[-4000:]}") from None
    _wait("the paper broker's recovery in process", lambda: "recovered in" in chain.procs["paper"].text(), 60,
          chain)
    say(f"trader and paper broker recovered in process {recovered:.1f}s after the kill (pids {trader_pid}, "
        f"{paper_pid} unchanged)")
    local.start_node(node, timeout=120)
    back = _wait(f"node {node} in sync", lambda: _in_sync(b, node), 120)
    say(f"node {node} restarted at {time.monotonic() - t0:.1f}s, in every ISR {back:.1f}s later")
    leader = local.quorum_leader()
    assert leader is not None
    killed = local.kill(leader)
    assert killed is not None
    say(f"SIGKILLed node {leader} (pid {killed.pid}), the quorum leader, at {time.monotonic() - t0:.1f}s "
        f"with {ends(b, orders_name)} orders out")
    _wait("a new quorum leader", lambda: local.quorum_leader() not in (None, leader), 60)
    local.start_node(leader, timeout=120)
    say(f"node {leader} restarted at {time.monotonic() - t0:.1f}s; new quorum leader {local.quorum_leader()}")
    got = settle(chain, reference)
    watch.stop()
    assert chain.procs["trader"].p.pid == trader_pid and chain.procs["paper"].p.pid == paper_pid  # type: ignore
    assert_identical(got, reference, "coordinator and quorum leader SIGKILLed")
    checked, feats = committed_covers_orders(chain, txn_id)
    assert not watch.violations, watch.violations[0]
    assert watch.rounds >= 3, f"the read_committed check ran {watch.rounds} rounds only"
    say(f"compared {got.counts()} with the reference: identical; a read_committed reader checked {watch.rounds} "
        f"times during the run ({watch.interrupted} rounds cut by the faults) and once after: each of the "
        f"{checked} orders behind a committed offset of its feature ({feats:,} features); "
        f"{time.monotonic() - t0:.1f}s")


PROBE_WAIT_S = 20.0


def _probe_delivery(bootstrap: str, topic: str, wait_s: float) -> str:
    """One record produced as the services produce (idempotent, acks=all): "acknowledged", the delivery error, or,
    when no report comes within `wait_s` (an idempotent producer may wait for its producer id, which one node
    alone cannot hand out without the controller quorum, and an in-flight request is not timed out by the message
    timeout), the purge's error after the record is withdrawn."""
    probe = Producer(producer_config(bootstrap, {**LEADER_CHANGE_SAFE, "message.timeout.ms": 8_000,
                                                 "request.timeout.ms": 5_000}))
    reports: list[str] = []

    def report(err: object, _msg: object) -> None:
        reports.append("acknowledged" if err is None else str(err))

    probe.produce(topic, b"{}", b"probe", on_delivery=report)
    deadline = time.monotonic() + wait_s
    while not reports and time.monotonic() < deadline:
        probe.poll(0.5)
    if reports:
        return reports[0]
    probe.purge()
    probe.poll(1)
    return f"no report within {wait_s:.0f} s, then withdrawn ({reports[0] if reports else 'no purge report'})"


def test_two_of_three_nodes_down_nothing_is_acknowledged_nothing_acknowledged_is_lost(
        cluster: tuple[LocalCluster, Layout], inputs: Inputs, reference: Outputs, chains: list[Chain],
        pytestconfig: pytest.Config) -> None:
    """Two nodes SIGKILLed mid-stream: a producer gets no acknowledgement (min.insync.replicas=2) and the
    topics' ends do not move; the records acknowledged before are all there after the nodes return, and the
    chain completes as the reference."""
    local, layout = cluster
    b = layout.bootstrap
    prefix = "two-down."
    chain = open_chain(b, prefix, inputs.root / "two-down")
    chains.append(chain)
    say = lambda line: _say(pytestconfig, f"two down: {line}")  # noqa: E731
    start_services(chain, inputs)
    _wait_started(chain)
    t0 = time.monotonic()
    start_replays(chain, inputs, SPEED)
    trades_name = f"{prefix}market.trades"
    probe_name = f"{prefix}probe"  # not market.trades: an unacknowledged record may still be written later
    client = AdminClient({"bootstrap.servers": b})
    client.create_topics([NewTopic(probe_name, 1, NODES, config={"min.insync.replicas": "2"})])[probe_name].result(30)
    _wait("a third of the trades", lambda: ends(b, trades_name) >= 2_000, 90, chain)
    with _prefix(prefix):
        acked_before = {(m.partition(), m.offset()): m.value() for m in read_to_end(b, MARKET_TRADES)}
    survivor = local.quorum_leader() or 1
    down = [n for n in range(1, NODES + 1) if n != survivor]
    try:
        for n in down:
            local.kill(n)
        t_kill = time.monotonic() - t0
        delivery = _probe_delivery(b, probe_name, PROBE_WAIT_S)
        say(f"SIGKILLed nodes {down} at {t_kill:.1f}s with {len(acked_before):,} trades acknowledged; a probe "
            f"record's delivery: {delivery}")
        assert delivery != "acknowledged", "a record was acknowledged with one of three nodes up"
    finally:
        # both at once: one node alone is no quorum, so `start_node`'s wait for every broker cannot be used
        launched = [(local.node(n), local.node(n).launch(True, CLUSTER_HEAP)) for n in down
                    if local.node(n).running() is None]
        for node, run in launched:
            node.await_ready(run, 120)
        local.wait_brokers(NODES, 120)
    t_back = time.monotonic() - t0
    got = settle(chain, reference)
    say(f"nodes {down} restarted at {t_back:.1f}s (down {t_back - t_kill:.1f}s)")
    with _prefix(prefix):
        after = {(m.partition(), m.offset()): m.value() for m in read_to_end(b, MARKET_TRADES)}
    lost = [k for k, v in acked_before.items() if after.get(k) != v]
    assert not lost, f"{len(lost)} acknowledged trades lost or changed"
    assert_identical(got, reference, "two of three nodes down")
    say(f"all {len(acked_before):,} trades acknowledged before the kill still there ({len(after):,} in all); "
        f"compared {got.counts()} with the reference: identical")


def test_a_rolling_restart_of_every_node_during_the_chain_changes_nothing(
        cluster: tuple[LocalCluster, Layout], inputs: Inputs, reference: Outputs, chains: list[Chain],
        pytestconfig: pytest.Config) -> None:
    local, layout = cluster
    b = layout.bootstrap
    prefix = "rolling."
    chain = open_chain(b, prefix, inputs.root / "rolling")
    chains.append(chain)
    say = lambda line: _say(pytestconfig, f"rolling: {line}")  # noqa: E731
    start_services(chain, inputs)
    _wait_started(chain)
    t0 = time.monotonic()
    start_replays(chain, inputs, SPEED)
    _wait("the first trades", lambda: ends(b, f"{prefix}market.trades") >= 500, 90, chain)
    for n in range(1, NODES + 1):
        local.stop(n)
        t_stop = time.monotonic() - t0
        local.start_node(n, timeout=120)
        synced = _wait(f"node {n} in sync", partial(_in_sync, b, n), 120)
        say(f"node {n} stopped (SIGTERM) at {t_stop:.1f}s, restarted and in every ISR "
            f"{time.monotonic() - t0 - t_stop:.1f}s later ({synced:.1f}s to sync)")
    got = settle(chain, reference)
    assert_identical(got, reference, "rolling restart")
    say(f"compared {got.counts()} with the reference: identical; {time.monotonic() - t0:.1f}s")


class OutputClock:
    """Samples a topic's record count every 0.1 s in a thread: when it grew, for the pauses in its output."""

    def __init__(self, bootstrap: str, name: str) -> None:
        import threading

        self.bootstrap, self.name = bootstrap, name
        self.grew: list[tuple[float, int]] = []  # (monotonic time, count) at each growth
        self.done = threading.Event()
        self.thread = threading.Thread(target=self._run, daemon=True)
        self.thread.start()

    def _run(self) -> None:
        last = -1
        while not self.done.is_set():
            n = ends(self.bootstrap, self.name)
            if n != last:
                self.grew.append((time.monotonic(), n))
                last = n
            time.sleep(0.1)

    def stop(self) -> None:
        self.done.set()
        self.thread.join(30)

    def pause_after(self, t: float, within: float = 60) -> float:
        """The longest time without new records from ``t`` to ``within`` seconds later (or the output's end)."""
        times = [t] + [g for g, _ in self.grew if t < g <= t + within]
        return max((b - a for a, b in pairwise(times)), default=0.0)


def test_streams_workers_joining_and_one_sigkilled_mid_replay_give_the_one_worker_records(
        cluster: tuple[LocalCluster, Layout], inputs: Inputs, reference: Outputs, chains: list[Chain],
        pytestconfig: pytest.Config) -> None:
    """One streams worker starts the replay, a second and a third join mid-way, then the one reading the most
    partitions is SIGKILLed: bars and features equal the reference's (repeats only as identical records).
    The pause in signals.features output is measured after the join and after the kill."""
    _, layout = cluster
    b = layout.bootstrap
    prefix = "scale."
    chain = open_chain(b, prefix, inputs.root / "scale")
    chains.append(chain)
    say = lambda line: _say(pytestconfig, f"scale-out: {line}")  # noqa: E731
    chain.start("streams", "streams", "worker")
    _wait_started(chain)
    t0 = time.monotonic()
    start_replays(chain, inputs, SPEED)
    clock = OutputClock(b, f"{prefix}signals.features")
    try:
        _wait("a fifth of the features", lambda: ends(b, f"{prefix}signals.features") >= len(reference.features) // 5,
              90, chain)
        t_join = time.monotonic()
        for name in ("streams-2", "streams-3"):
            chain.start(name, "streams", "worker")
        say(f"workers 2 and 3 started at {t_join - t0:.1f}s with "
            f"{ends(b, f'{prefix}signals.features'):,} features out")
        _wait("the rebalance", lambda: all("Reading" in chain.procs[n].text() for n in ("streams-2", "streams-3")),
              90, chain)
        _wait("two thirds of the features",
              lambda: ends(b, f"{prefix}signals.features") >= 2 * len(reference.features) // 3, 120, chain)

        def partitions_read(name: str) -> int:
            lines = [ln for ln in chain.procs[name].text().splitlines() if "Reading" in ln and "partitions" in ln]
            return lines[-1].count(",") + 1 if lines and "[]" not in lines[-1] else 0

        victim = max(("streams", "streams-2", "streams-3"), key=partitions_read)
        held = partitions_read(victim)
        t_kill = time.monotonic()
        chain.procs.pop(victim).stop(signal.SIGKILL)  # out of the chain's liveness check
        say(f"SIGKILLed {victim} (it read {held} partitions) at {t_kill - t0:.1f}s with "
            f"{ends(b, f'{prefix}signals.features'):,} features out")
        for name, p in chain.procs.items():
            if name.startswith("replay-") and p.p is not None:
                assert p.p.wait(180) == 0, p.text()[-3000:]
        _wait("every feature of the reference", lambda: ends(b, f"{prefix}signals.features")
              >= len(reference.features), 180, chain)
    finally:
        clock.stop()
    got = settle(chain, reference)
    assert set(got.bars) == set(reference.bars) and got.bars == reference.bars, "bars differ from one worker's"
    assert set(got.features) == set(reference.features) and got.features == reference.features, \
        "features differ from one worker's"
    join_pause, kill_pause = clock.pause_after(t_join, within=t_kill - t_join), clock.pause_after(t_kill)
    say(f"pause in signals.features output: {join_pause * 1000:.0f} ms after two workers joined, "
        f"{kill_pause * 1000:.0f} ms after one was SIGKILLed")
    say(f"compared {len(got.bars):,} bars and {len(got.features):,} features ({got.repeats} identical repeats) "
        f"with the one-worker reference: identical")
