"""Benchmarks on a three-node local cluster (``LocalCluster``, `tickflow kafka start --nodes 3`), one per run.

- kafka.cluster_producer_perf_records_per_s: Kafka's ProducerPerformance (as bench.kafka_perf runs it) on a
  topic of 4 partitions (as ``market.trades``) with replication factor 3 and ``min.insync.replicas`` 2,
  acks=all, idempotent.
- ingest.cluster_replay_trades_per_s: bench.ingest's replay (about 1.05M trades) into the cluster's
  ``market.trades`` (RF 3, min ISR 2); goal at least 0.6 of the figure above, same run.
- cluster.failover_ms: five times, the leader of a one-partition RF 3 topic is SIGKILLed and one record is
  produced (the leader-change-safe producer settings of ``contracts.kafka_io``); from the kill to that
  record's acknowledgement; the node is restarted and back in the ISR before the next kill. Median and worst.
- streams.rebalance_pause_ms: a streams worker consumes live trades (bench.streams' load: 20 symbols now,
  1 s bars) under a topic prefix of its own; a second worker joins (then leaves, and the output settles)
  three times. For each join, the longest gap between two ``signals.features`` records arriving at a
  consumer within 40 s of the second worker's launch; median of three. Beside it, the longest gap in the
  15 s before the first join (the 1 s bars' own rhythm).
"""

from __future__ import annotations

import itertools
import os
import signal
import statistics
import subprocess
import sys
import threading
import time
from pathlib import Path

from confluent_kafka import OFFSET_END, Consumer, Producer, TopicPartition
from confluent_kafka.admin import AdminClient, NewTopic

from bench.context import BenchContext
from bench.ingest import CANDLES, replay
from bench.kafka_perf import producer_perf
from bench.results import Result
from bench.streams import GRACE_MS, _trade_load
from contracts.client_config import client_config, producer_config
from contracts.kafka_io import LEADER_CHANGE_SAFE
from contracts.topics import MARKET_TRADES, PREFIX_ENV, SIGNALS_FEATURES
from infra.kafka.admin import ensure_topics
from infra.kafka.broker import free_port, port_in_use
from infra.kafka.cluster import Layout, LocalCluster

REPO = Path(__file__).resolve().parents[1]
NODES = 3
KILLS = 5
JOINS = 3
JOIN_WINDOW_S = 40.0


class ClusterContext(BenchContext):
    """A BenchContext whose bootstrap is the cluster's list (the Java tools and the replay take it)."""

    def __init__(self, layout: Layout, node_one: BenchContext) -> None:
        super().__init__(node_one.broker, node_one.workdir)
        self.layout = layout

    @property
    def bootstrap(self) -> str:
        return self.layout.bootstrap


def _base_port() -> int:
    while True:
        port = free_port()
        if not any(port_in_use("127.0.0.1", port + i) for i in range(1, NODES)):
            return port


def _replicated(admin: AdminClient, name: str, partitions: int) -> None:
    for fut in admin.create_topics([NewTopic(name, partitions, NODES,
                                             config={"min.insync.replicas": "2"})]).values():
        fut.result(30)


def _leader_and_isr(admin: AdminClient, topic: str) -> tuple[int, list[int]]:
    p = admin.list_topics(topic, timeout=10).topics[topic].partitions[0]
    return p.leader, sorted(p.isrs)


def failover_ms(cluster: LocalCluster, bootstrap: str, kills: int = KILLS) -> list[float]:
    """SIGKILL the partition leader ``kills`` times; ms from each kill to the next acknowledged record."""
    admin = AdminClient({**client_config(bootstrap), "log_level": 0})
    topic = "bench.failover"
    _replicated(admin, topic, 1)
    producer = Producer(producer_config(bootstrap, {**LEADER_CHANGE_SAFE, "linger.ms": 0, "log_level": 0}))
    out = []
    for k in range(kills):
        producer.produce(topic, b"before")
        assert producer.flush(60) == 0, f"kill {k + 1}: the cluster acknowledged nothing before the kill"
        leader, isr = _leader_and_isr(admin, topic)
        assert isr == list(range(1, NODES + 1)), f"kill {k + 1}: ISR {isr} before the kill"
        acked: list[float] = []

        def delivered(err: object, _msg: object, acked: list[float] = acked) -> None:
            if err is None:
                acked.append(time.monotonic())

        killed = time.monotonic()
        cluster.kill(leader)
        producer.produce(topic, b"after", on_delivery=delivered)
        producer.flush(150)
        assert acked, f"kill {k + 1}: the record produced after node {leader}'s kill was never acknowledged"
        out.append((acked[0] - killed) * 1000)
        print(f"  kill {k + 1}: node {leader} SIGKILLed; next write acknowledged after {out[-1]:,.0f} ms", flush=True)
        cluster.start_node(leader, timeout=180)
        deadline = time.monotonic() + 120
        while leader not in _leader_and_isr(admin, topic)[1]:
            assert time.monotonic() < deadline, f"node {leader} not back in the ISR of {topic} in 120 s"
            time.sleep(0.2)
    return out


def _arrivals(bootstrap: str, topic: str, stop: threading.Event, ready: threading.Event,
              times: list[float]) -> None:
    c = Consumer({**client_config(bootstrap), "group.id": f"bench-gap-{time.time_ns()}",
                  "enable.auto.commit": False, "fetch.wait.max.ms": 5})
    c.assign([TopicPartition(topic, p, OFFSET_END) for p in range(SIGNALS_FEATURES.partitions)])
    c.consume(1, 0.5)
    ready.set()
    while not stop.is_set():
        m = c.poll(0.05)
        if m is not None and not m.error():
            times.append(time.monotonic())
    c.close()


def _max_gap_ms(times: list[float], start: float, end: float) -> float:
    """The longest wait between arrivals in [start, end] (the edges count: no record at all is a gap)."""
    inside = [start, *(t for t in times if start <= t <= end), end]
    return max(b - a for a, b in itertools.pairwise(inside)) * 1000


def _worker(env: dict[str, str], home: Path, log: Path) -> subprocess.Popen[bytes]:
    return subprocess.Popen([sys.executable, "-m", "tickflow", "streams", "worker"],
                            env={**env, "TICKFLOW_HOME": str(home)}, stdout=log.open("ab"),
                            stderr=subprocess.STDOUT, cwd=REPO)


def rebalance_pause_ms(bootstrap: str, workdir: Path, joins: int = JOINS) -> tuple[list[float], float]:
    """(the longest output gap after each join, the longest gap before the first join), in ms."""
    prefix = "bench-rebalance."
    os.environ[PREFIX_ENV] = prefix  # this process's names, and the workers' (they inherit it)
    try:
        ensure_topics(bootstrap)
        env = dict(os.environ, KAFKA_BOOTSTRAP=bootstrap, PYTHONPATH=str(REPO), STREAMS__GRACE_MS=str(GRACE_MS),
                   STREAMS__SESSION_TIMEOUT_S="10", TICKFLOW_LOG_LEVEL="INFO")
        seconds = 180.0 + joins * (JOIN_WINDOW_S + 40.0)  # outlasts the start and the joins
        load = threading.Thread(target=_trade_load, args=(bootstrap, MARKET_TRADES.name, seconds), daemon=True)
        stop, ready = threading.Event(), threading.Event()
        times: list[float] = []
        reader = threading.Thread(target=_arrivals, args=(bootstrap, SIGNALS_FEATURES.name, stop, ready, times),
                                  daemon=True)
        reader.start()
        ready.wait(10)
        load.start()
        first = _worker(env, workdir / "w1", workdir / "rebalance-w1.log")
        try:
            deadline = time.monotonic() + 180  # its start-up, on a machine shared with other work
            while len(times) < 100:
                log = (workdir / "rebalance-w1.log").read_text(errors="replace")[-2000:]
                assert first.poll() is None, f"the first worker exited ({first.returncode}):\n{log}"
                assert time.monotonic() < deadline, f"the first worker published no features in 180 s:\n{log}"
                time.sleep(0.2)
            time.sleep(15)
            steady = _max_gap_ms(times, time.monotonic() - 15, time.monotonic())
            pauses = []
            for j in range(joins):
                launched = time.monotonic()
                second = _worker(env, workdir / "w2", workdir / f"rebalance-w2-{j + 1}.log")
                time.sleep(JOIN_WINDOW_S)
                pauses.append(_max_gap_ms(times, launched, launched + JOIN_WINDOW_S))
                print(f"  join {j + 1}: longest gap in {SIGNALS_FEATURES.name} {pauses[-1]:,.0f} ms "
                      f"(steady {steady:,.0f} ms)", flush=True)
                second.send_signal(signal.SIGTERM)
                second.wait(60)
                time.sleep(25)  # the leave's rebalance, then output settles on the first worker
        finally:
            first.send_signal(signal.SIGTERM)
            first.wait(60)
            stop.set()
            reader.join(10)
        load.join(seconds + 30)
        return pauses, steady
    finally:
        os.environ.pop(PREFIX_ENV, None)


def run(ctx: BenchContext) -> list[Result]:
    cluster = LocalCluster(ctx.workdir / "cluster")
    layout = cluster.start(NODES, _base_port(), timeout=240, die_with_parent=True)
    try:
        node_one = cluster.node(1).running()
        assert node_one is not None
        cctx = ClusterContext(layout, BenchContext(node_one, ctx.workdir))
        admin = AdminClient({**client_config(layout.bootstrap), "log_level": 0})
        _replicated(admin, "bench.producer-perf", MARKET_TRADES.partitions)  # as the replay's topic
        perf = producer_perf(cctx, records=1_000_000)
        trades, seconds, _rss = replay(cctx, CANDLES)
        kills = failover_ms(cluster, layout.bootstrap)
        pauses, steady = rebalance_pause_ms(layout.bootstrap, ctx.workdir)
    finally:
        cluster.stop()
    return [
        Result("kafka.cluster_producer_perf_records_per_s", perf, "records/s", None,
               "Kafka's ProducerPerformance on three local KRaft nodes, 1,000,000 records of 200 bytes, 4 "
               "partitions (as market.trades and the one-broker figure's topic), replication factor 3, "
               "min.insync.replicas 2, acks=all, idempotent"),
        Result("ingest.cluster_replay_trades_per_s", trades / seconds, "trades/s",
               "kafka.cluster_producer_perf_records_per_s",
               f"tickflow ingest replay of {trades:,} trades (both 1m candle files expanded) into the cluster's "
               "market.trades (4 partitions, RF 3, min ISR 2), acks=all, idempotent, lz4; goal >= 0.6 of the "
               "reference"),
        Result("cluster.failover_ms", statistics.median(kills), "ms", None,
               f"median of {len(kills)} SIGKILLs of the leader of a one-partition RF 3 topic: kill -> the next "
               "record acknowledged (idempotent, acks=all, retries up to 1 s apart); the node restarted and "
               "back in the ISR before the next kill", {"worst_ms": max(kills), **{f"kill_{i + 1}_ms": v
                                                                              for i, v in enumerate(kills)}}),
        Result("streams.rebalance_pause_ms", statistics.median(pauses), "ms", None,
               f"median of {len(pauses)} joins of a second streams worker (its launch included) beside a running "
               f"one, live trades of 20 symbols, 1 s bars: the longest gap between signals.features records at a "
               f"consumer within {JOIN_WINDOW_S:.0f} s of the launch; steady_gap_ms is the longest gap before the "
               "first join", {"steady_gap_ms": steady, **{f"join_{i + 1}_ms": v for i, v in enumerate(pauses)}}),
    ]
