"""Kafka plumbing more than one service uses: transactional loops, committed offsets, the DLQ writer.

Reading a topic to its end (rebuilds, dumps, reports) is in ``contracts.topic_reader``.
"""

from __future__ import annotations

import logging
import signal
import threading
import time
from collections.abc import Callable, Sequence
from typing import Any

from confluent_kafka import OFFSET_BEGINNING, Consumer, KafkaError, KafkaException, Message, Producer, TopicPartition

from contracts import V1, DeadLetter, Topic
from contracts.broker_check import librdkafka_logger
from contracts.client_config import client_config, producer_config
from contracts.serde import encode
from contracts.timeutil import now_ms

log = logging.getLogger(__name__)
_COORDINATOR_WAIT = {KafkaError.NOT_COORDINATOR, KafkaError.COORDINATOR_LOAD_IN_PROGRESS,
                     KafkaError.COORDINATOR_NOT_AVAILABLE, KafkaError._TIMED_OUT, KafkaError._TRANSPORT}


def consumer(bootstrap: str, group: str, **extra: Any) -> Consumer:
    conf = {**client_config(bootstrap), "group.id": group, "enable.auto.commit": False,
            "auto.offset.reset": "earliest", "isolation.level": "read_committed",
            "enable.partition.eof": False, "fetch.wait.max.ms": 5, "log_level": 3, "logger": librdkafka_logger()}
    conf.update(extra)
    return Consumer(conf)


# Settings that survive a leader change (a broker of a cluster dies): every write waits for the in-sync
# replicas (acks=all, idempotent so a retry never duplicates), and librdkafka retries a record until its
# delivery timeout. A leader moves within the broker session timeout (18 s in KRaft) plus an election:
# 120 s leaves room for that several times over, and stays under the transaction timeout, as librdkafka
# requires of a transactional producer.
DELIVERY_TIMEOUT_MS = 120_000
TRANSACTION_TIMEOUT_MS = 180_000
COMMIT_TIMEOUT_S = 60.0  # a commit not acknowledged by then leaves the producer's epoch in doubt
LEADER_CHANGE_SAFE = {"enable.idempotence": True, "acks": "all", "message.timeout.ms": DELIVERY_TIMEOUT_MS,
                      "retry.backoff.ms": 5, "retry.backoff.max.ms": 1_000}


class TransactionInDoubt(KafkaException):
    """A transaction failed fatally or its commit timed out: the producer must not be used again.

    librdkafka does not bump the producer epoch per transaction (KIP-890), so continuing after such a
    failure may tear or lose transactions; the caller stops, and a new producer (a restart) rebuilds its
    state from the committed offsets.
    """


def transactional_producer(bootstrap: str, transactional_id: str) -> Producer:
    producer = Producer(producer_config(bootstrap, {"transactional.id": transactional_id, **LEADER_CHANGE_SAFE,
                                                    "linger.ms": 0, "transaction.timeout.ms": TRANSACTION_TIMEOUT_MS,
                                                    "log_level": 3, "logger": librdkafka_logger()}))
    producer.init_transactions(30)
    return producer


def transact(producer: Producer, records: Sequence[tuple[str, bytes, bytes | None]],
             offsets: Callable[[], tuple[list[TopicPartition], Any]] | None = None, attempts: int = 5) -> None:
    """Produce ``records`` and (when ``offsets`` gives them) the consumed offsets in one transaction.

    An abortable error (a leader or coordinator moved) aborts and retries the same records and offsets;
    a fatal error, a commit that times out, or ``attempts`` aborts in a row raise ``TransactionInDoubt``.
    """
    for attempt in range(1, attempts + 1):
        try:
            producer.begin_transaction()
            for topic, value, key in records:
                producer.produce(topic, value, key)
            if offsets is not None:
                producer.send_offsets_to_transaction(*offsets())
            producer.commit_transaction(COMMIT_TIMEOUT_S)
            return
        except KafkaException as err:
            kerr = err.args[0]
            if not kerr.txn_requires_abort() or kerr.fatal():
                raise _in_doubt(len(records), kerr.str()) from err
            log.warning("Transaction of %d records aborted (attempt %d of %d): %s.", len(records), attempt,
                        attempts, kerr.str())
            try:
                producer.abort_transaction(COMMIT_TIMEOUT_S)
            except KafkaException as abort_err:
                raise _in_doubt(len(records), f"its abort failed: {abort_err.args[0].str()}") from abort_err
    raise _in_doubt(len(records), f"{attempts} transactions aborted in a row")


def _in_doubt(n: int, why: str) -> TransactionInDoubt:
    return TransactionInDoubt(f"a transaction of {n} records failed ({why}); its producer is not used again: "
                              "restart the service to rebuild its state from the committed offsets")


def replication(brokers: int) -> tuple[int, int]:
    """The replication factor and min.insync.replicas of a topic on ``brokers`` brokers: min(3, brokers)
    replicas, and two of them in sync from three on (one may be down and writes go on)."""
    rf = max(1, min(3, brokers))
    return rf, 2 if rf >= 3 else 1


def replication_at(bootstrap: str, timeout: float = 10.0) -> int:
    """The replication factor for new topics at ``bootstrap``: min(3, the brokers its metadata lists)."""
    from confluent_kafka.admin import AdminClient

    md = AdminClient({**client_config(bootstrap), "log_level": 3}).list_topics(timeout=timeout)
    return replication(len(md.brokers))[0]


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
