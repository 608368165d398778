"""Kafka plumbing more than one service uses: transactional loops, committed offsets, the DLQ writer.

Reading a topic to its end (rebuilds, dumps, reports) is in ``contracts.topic_reader``.
"""

from __future__ import annotations

import logging
import signal
import threading
import time
from typing import Any

from confluent_kafka import OFFSET_BEGINNING, Consumer, KafkaError, KafkaException, Message, Producer, TopicPartition

from contracts import V1, DeadLetter, Topic
from contracts.broker_check import librdkafka_logger
from contracts.serde import encode
from contracts.timeutil import now_ms

log = logging.getLogger(__name__)
_COORDINATOR_WAIT = {KafkaError.NOT_COORDINATOR, KafkaError.COORDINATOR_LOAD_IN_PROGRESS,
                     KafkaError.COORDINATOR_NOT_AVAILABLE, KafkaError._TIMED_OUT, KafkaError._TRANSPORT}


def consumer(bootstrap: str, group: str, **extra: Any) -> Consumer:
    conf = {"bootstrap.servers": bootstrap, "group.id": group, "enable.auto.commit": False,
            "auto.offset.reset": "earliest", "isolation.level": "read_committed",
            "enable.partition.eof": False, "fetch.wait.max.ms": 5, "log_level": 3, "logger": librdkafka_logger()}
    conf.update(extra)
    return Consumer(conf)


def transactional_producer(bootstrap: str, transactional_id: str) -> Producer:
    producer = Producer({"bootstrap.servers": bootstrap, "transactional.id": transactional_id,
                         "enable.idempotence": True, "linger.ms": 0, "transaction.timeout.ms": 60_000,
                         "retry.backoff.ms": 5,
                         "log_level": 3, "logger": librdkafka_logger()})
    producer.init_transactions(30)
    return producer


def partitions(c: Consumer, topic: Topic | str) -> list[TopicPartition]:
    name = topic if isinstance(topic, str) else topic.name
    md = c.list_topics(name, timeout=10)
    meta = md.topics.get(name)
    if meta is None or meta.error is not None:
        raise KafkaException(f"topic {name} is not available: {meta.error if meta else 'missing'}")
    return [TopicPartition(name, p) for p in sorted(meta.partitions)]


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
