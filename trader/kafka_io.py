"""Kafka plumbing shared by the trader and the paper broker: transactional loops, rebuild reads, DLQ."""

from __future__ import annotations

import logging
import signal
import threading
import time
from collections.abc import Iterator
from typing import Any

from confluent_kafka import OFFSET_BEGINNING, Consumer, KafkaError, KafkaException, Message, Producer, TopicPartition

from contracts import V1, DeadLetter, Topic
from contracts.client_config import producer_config
from contracts.timeutil import now_ms

log = logging.getLogger(__name__)
_COORDINATOR_WAIT = {KafkaError.NOT_COORDINATOR, KafkaError.COORDINATOR_LOAD_IN_PROGRESS,
                     KafkaError.COORDINATOR_NOT_AVAILABLE, KafkaError._TIMED_OUT, KafkaError._TRANSPORT}


def consumer(bootstrap: str, group: str, **extra: Any) -> Consumer:
    conf = {"bootstrap.servers": bootstrap, "group.id": group, "enable.auto.commit": False,
            "auto.offset.reset": "earliest", "isolation.level": "read_committed",
            "enable.partition.eof": False, "fetch.wait.max.ms": 5, "log_level": 3}
    conf.update(extra)
    return Consumer(conf)


def transactional_producer(bootstrap: str, transactional_id: str) -> Producer:
    producer = Producer(producer_config(bootstrap, {"transactional.id": transactional_id, "linger.ms": 0,
                                                    "transaction.timeout.ms": 60_000, "retry.backoff.ms": 5,
                                                    "log_level": 3}))
    producer.init_transactions(30)
    return producer


def partitions(c: Consumer, topic: Topic) -> list[TopicPartition]:
    md = c.list_topics(topic.name, timeout=10)
    meta = md.topics.get(topic.name)
    if meta is None or meta.error is not None:
        raise KafkaException(f"topic {topic.name} is not available: {meta.error if meta else 'missing'}")
    return [TopicPartition(topic.name, p) for p in sorted(meta.partitions)]


def read_to_end(bootstrap: str, topic: Topic, start: dict[int, int] | None = None,
                stop: dict[int, int] | None = None) -> Iterator[Message]:
    """Every committed record of ``topic`` from ``start`` (default: the beginning) to ``stop`` (default:
    the end right now), partition by partition order preserved."""
    c = consumer(bootstrap, f"tickflow-rebuild-{topic.name}")
    try:
        tps = partitions(c, topic)
        ends: dict[int, int] = {}
        assign = []
        for tp in tps:
            low, high = c.get_watermark_offsets(tp, timeout=10)
            end = high if stop is None else min(high, stop.get(tp.partition, high))
            begin = OFFSET_BEGINNING if start is None else max(low, start.get(tp.partition, low))
            if (start is None and low < end) or (start is not None and begin < end):
                ends[tp.partition] = end
                assign.append(TopicPartition(topic.name, tp.partition, begin))
        if not assign:
            return
        c.assign(assign)
        deadline = time.monotonic() + 120
        while ends and time.monotonic() < deadline:
            for m in c.consume(1000, timeout=0.5):
                if not usable(m):
                    continue
                p, off = m.partition() or 0, m.offset() or 0
                if p not in ends:
                    continue
                if off < ends[p]:
                    yield m
                if off >= ends[p] - 1:
                    ends.pop(p, None)
            # read_committed: aborted records and markers leave holes; position tells where we are
            for tp in c.position([TopicPartition(topic.name, p) for p in list(ends)]):
                if tp.offset >= ends.get(tp.partition, 0):
                    ends.pop(tp.partition, None)
        if ends:
            raise TimeoutError(f"reading {topic.name} to its end did not finish: partitions {sorted(ends)} left")
    finally:
        c.close()


def usable(m: Message) -> bool:
    """True for a record; False (logged) for a transient consumer error; raises on a fatal one."""
    err = m.error()
    if err is None:
        return True
    if err.fatal():
        raise KafkaException(err)
    log.warning("Consumer reported %s on %s[%s]; continuing.", err, m.topic(), m.partition())
    return False


def dead_letter(m: Message, source: Topic, reason: str) -> tuple[str, bytes]:
    """The DLQ topic name and value for a refused record (logged with topic[partition]@offset)."""
    raw = m.value() or b""
    log.warning("Refused %s[%d]@%d: %s.", m.topic(), m.partition(), m.offset(), reason)
    dl = DeadLetter(schema_version=V1, source=source.name, raw=raw.decode("utf-8", "replace")[:10_000],
                    reason=reason, ts=now_ms(), partition=m.partition(), offset=m.offset())
    from contracts import encode

    return source.dlq.name, encode(dl)


class Stopper:
    """Set on SIGTERM/SIGINT; the loops finish their transaction and close."""

    def __init__(self) -> None:
        self.event = threading.Event()

    def install(self) -> None:
        for sig in (signal.SIGTERM, signal.SIGINT):
            signal.signal(sig, lambda *_: self.event.set())

    @property
    def stopped(self) -> bool:
        return self.event.is_set()


def assign_at_committed(c: Consumer, topics: list[Topic]) -> None:
    """Assign every partition of ``topics`` at the group's committed offset (the beginning without one).

    The offsets are fetched here, with retries, rather than by the consumer: a consumer whose own fetch
    of committed offsets fails on a fresh broker ("not coordinator") never starts fetching.
    """
    assignment = []
    for topic in topics:
        at = committed(c, topic)
        assignment += [TopicPartition(topic.name, tp.partition, at.get(tp.partition, OFFSET_BEGINNING))
                       for tp in partitions(c, topic)]
    c.assign(assignment)


def committed(c: Consumer, topic: Topic) -> dict[int, int]:
    """The group's committed offsets for ``topic`` (partitions without one are left out)."""
    deadline = time.monotonic() + 60
    while True:
        try:
            got = c.committed(partitions(c, topic), timeout=10)
            break
        except KafkaException as err:
            # a fresh broker answers "not coordinator" / "coordinator loading" for a few seconds
            kerr = err.args[0]
            if not (kerr.retriable() or kerr.code() in _COORDINATOR_WAIT) or time.monotonic() > deadline:
                raise
            log.info("Waiting for the group coordinator of %s: %s.", topic.name, kerr.str())
            time.sleep(0.5)
    return {tp.partition: tp.offset for tp in got if tp.offset >= 0}
