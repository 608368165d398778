"""Shared helpers of the streams integration tests: produce trades, run a worker, read topics."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import time
from collections.abc import Iterable
from pathlib import Path

from confluent_kafka import Consumer, KafkaException, Producer, TopicPartition

from contracts import Trade, encode, market_key
from contracts.client_config import client_config, producer_config
from contracts.topic_reader import read_to_end
from contracts.topics import MARKET_TRADES
from tests.helpers import REPO, cli_env


def produce_trades(bootstrap: str, trades: Iterable[Trade], topic: str | None = None) -> int:
    """Produce trades keyed ``exchange:symbol`` with an idempotent producer (to market.trades unless ``topic``
    is given); return how many."""
    topic = topic or MARKET_TRADES.name
    producer = Producer(producer_config(bootstrap, {"linger.ms": 20, "compression.type": "lz4"}))
    n = 0
    for t in trades:
        while True:
            try:
                producer.produce(topic, key=market_key(t.exchange, t.symbol), value=encode(t))
                break
            except BufferError:
                producer.poll(0.05)
        n += 1
        if n % 10_000 == 0:
            producer.poll(0)
    assert producer.flush(60) == 0
    return n


def produce_raw(bootstrap: str, values: list[tuple[bytes, bytes]], topic: str | None = None) -> None:
    topic = topic or MARKET_TRADES.name
    producer = Producer(producer_config(bootstrap))
    for key, value in values:
        producer.produce(topic, key=key, value=value)
    assert producer.flush(30) == 0


def read_all(bootstrap: str, topic: str) -> list[tuple[bytes, dict]]:
    """Every record of ``topic``, from the beginning to its end offsets now, as (key, JSON value)."""
    return [(m.key() or b"", json.loads(m.value() or b"")) for m in read_to_end(bootstrap, topic)]


def count_records(bootstrap: str, topic: str) -> int:
    consumer = Consumer({**client_config(bootstrap), "group.id": f"c-{time.time_ns()}"})
    md = consumer.list_topics(topic, timeout=10)
    total = 0
    for p in md.topics[topic].partitions:
        lo, hi = consumer.get_watermark_offsets(TopicPartition(topic, p), timeout=10)
        total += hi - lo
    consumer.close()
    return total


def wait_for_count(bootstrap: str, topic: str, want: int, timeout_s: float = 90.0) -> int:
    deadline = time.monotonic() + timeout_s
    n = count_records(bootstrap, topic)
    while n < want and time.monotonic() < deadline:
        time.sleep(0.5)
        n = count_records(bootstrap, topic)
    return n


class Worker:
    """`tickflow streams worker` as a subprocess with its own TICKFLOW_HOME."""

    def __init__(self, bootstrap: str, home: Path, **settings: str) -> None:
        env = cli_env(bootstrap, home)
        env.update({f"STREAMS__{k.upper()}": v for k, v in settings.items()})
        home.mkdir(parents=True, exist_ok=True)
        self.log = home / "worker.log"
        self.proc = subprocess.Popen([sys.executable, "-m", "tickflow", "streams", "worker"], env=env,
                                     stdout=self.log.open("ab"), stderr=subprocess.STDOUT, cwd=REPO)

    def stop(self, sig: int = signal.SIGTERM, timeout: float = 30.0) -> int:
        if self.proc.poll() is None:
            self.proc.send_signal(sig)
        return self.proc.wait(timeout)

    def tail(self) -> str:
        return self.log.read_text(errors="replace")[-3000:]


def wait_committed(bootstrap: str, group: str, topic: str | None = None, timeout_s: float = 120.0,
                   faust: bool = True) -> bool:
    """Wait until ``group`` has committed the end offset of every partition of ``topic`` (market.trades).
    ``faust``: the group commits the offset of its last processed record, as Faust does (False: the next one's,
    as Java clients and the trader do)."""
    topic = topic or MARKET_TRADES.name
    consumer = Consumer({**client_config(bootstrap), "group.id": group, "enable.auto.commit": False})
    md = consumer.list_topics(topic, timeout=10)
    tps = [TopicPartition(topic, p) for p in md.topics[topic].partitions]
    ends = {tp.partition: consumer.get_watermark_offsets(tp, timeout=10)[1] for tp in tps}
    deadline = time.monotonic() + timeout_s
    try:
        while time.monotonic() < deadline:
            try:
                committed = {tp.partition: tp.offset for tp in consumer.committed(tps, timeout=10)}
            except KafkaException:  # the group coordinator is still loading
                committed = {}
            # Faust commits the offset of the last processed record (not the next one, as Java clients do)
            if committed and all(end == 0 or committed[p] >= end - (1 if faust else 0) for p, end in ends.items()):
                return True
            time.sleep(0.5)
        return False
    finally:
        consumer.close()
