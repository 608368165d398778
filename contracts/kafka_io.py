"""Kafka plumbing more than one service uses: transactional loops, committed offsets, the DLQ writer.

Reading a topic to its end (rebuilds, dumps, reports) is in ``contracts.topic_reader``.
"""

from __future__ import annotations

import logging
import math
import os
import queue
import signal
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from functools import partial
from typing import Any

from confluent_kafka import OFFSET_BEGINNING, Consumer, KafkaError, KafkaException, Message, Producer, TopicPartition

from contracts import V1, DeadLetter, Topic
from contracts.broker_check import librdkafka_logger
from contracts.client_config import client_config, producer_config
from contracts.serde import encode
from contracts.settings import SettingsError
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
COMMIT_TIMEOUT_ENV = "TICKFLOW_COMMIT_TIMEOUT_S"
RECOVERY_WAIT_S = 180.0  # a new producer waits this long for its transaction coordinator
RECOVERIES_IN_A_ROW = 3  # in-doubt transactions recovered in a row (each within RECOVERY_WINDOW_S) before giving up
RECOVERY_WINDOW_S = 120.0
# librdkafka does not always honour a transactional call's timeout: send_offsets_to_transaction blocks past it
# while the group coordinator is down (librdkafka issues 5456 and 5511, open in 2026). Past its timeout and
# this grace the call is abandoned, in its thread, with its producer: the transaction is in doubt.
STUCK_GRACE_S = 5.0
_FENCED = {KafkaError._FENCED, KafkaError.PRODUCER_FENCED, KafkaError.INVALID_PRODUCER_EPOCH,
           KafkaError.TRANSACTIONAL_ID_AUTHORIZATION_FAILED}
LEADER_CHANGE_SAFE = {"enable.idempotence": True, "acks": "all", "message.timeout.ms": DELIVERY_TIMEOUT_MS,
                      "retry.backoff.ms": 5, "retry.backoff.max.ms": 1_000}


class TransactionInDoubt(KafkaException):
    """A transaction failed fatally or its commit timed out: the producer must not be used again.

    librdkafka does not bump the producer epoch per transaction (KIP-890), so continuing after such a
    failure may tear or lose transactions; ``run_recovering`` drops the producer, and a new one (whose
    ``init_transactions`` fences the old epoch and completes or aborts the transaction in doubt) rebuilds
    the state from the committed offsets. ``fenced``: another producer took the transactional id over (a
    newer instance of the service); then nothing is recovered, the instance stops.
    """

    def __init__(self, message: str, fenced: bool = False) -> None:
        super().__init__(message)
        self.fenced = fenced


def commit_timeout_s(env: dict[str, str] | None = None) -> float:
    """How long a commit (and the offsets' registration) may wait: ``TICKFLOW_COMMIT_TIMEOUT_S``, default 60."""
    raw = (os.environ if env is None else env).get(COMMIT_TIMEOUT_ENV)
    if raw is None:
        return COMMIT_TIMEOUT_S
    try:
        value = float(raw)
    except ValueError:
        value = math.nan
    if not (math.isfinite(value) and 0 < value <= TRANSACTION_TIMEOUT_MS / 1000):
        raise SettingsError(f"{COMMIT_TIMEOUT_ENV}={raw!r} is refused: seconds a transaction commit may wait, "
                            f"a number > 0 and <= {TRANSACTION_TIMEOUT_MS // 1000} (the transaction timeout)")
    return value


def transactional_producer(bootstrap: str, transactional_id: str, wait_s: float = 30.0,
                           transaction_timeout_ms: int = TRANSACTION_TIMEOUT_MS) -> Producer:
    """A producer with ``transactional_id``, initialised: that fences an older producer of the id and completes
    or aborts its open transaction. A coordinator that is not available yet is waited for up to ``wait_s``.

    ``transaction_timeout_ms``: after it the coordinator aborts a transaction its producer left open (a process
    SIGKILLed mid-transaction whose transactional id no one takes over); a record's delivery timeout stays
    within it, as librdkafka requires."""
    producer = Producer(producer_config(bootstrap, {
        "transactional.id": transactional_id, **LEADER_CHANGE_SAFE, "linger.ms": 0,
        "message.timeout.ms": min(DELIVERY_TIMEOUT_MS, transaction_timeout_ms),
        "transaction.timeout.ms": transaction_timeout_ms, "log_level": 3, "logger": librdkafka_logger()}))
    deadline = time.monotonic() + wait_s
    while True:
        try:
            producer.init_transactions(max(1.0, min(30.0, deadline - time.monotonic())))
            return producer
        except KafkaException as err:
            kerr = err.args[0]
            if not kerr.retriable() or time.monotonic() >= deadline:
                raise
            log.warning("Transactional id %s: waiting for its coordinator (%s).", transactional_id, kerr.str())


def transact(producer: Producer, records: Sequence[tuple[str, bytes, bytes | None]],
             offsets: Callable[[], tuple[list[TopicPartition], Any]] | None = None, attempts: int = 5) -> None:
    """Produce ``records`` and (when ``offsets`` gives them) the consumed offsets in one transaction.

    An abortable error (a leader or coordinator moved) in a transaction of offsets alone aborts and retries
    it; in one that produced records it raises ``TransactionInDoubt``, the producer not used again. librdkafka
    keeps the producer epoch across an abort (no KIP-890): a record of the aborted attempt that its leader
    appended after all (acknowledged late, two of three nodes down) carries the sequence number the same
    record sent again gets, so the broker takes the retry for a duplicate of the aborted record, and the
    retry commits without it (a fill lost, seen in the two-nodes-down test). A new producer's epoch starts
    its sequences afresh. A fatal error, a commit or offsets' registration that takes longer than
    ``commit_timeout_s()``, or ``attempts`` aborts in a row raise ``TransactionInDoubt`` as well.
    """
    timeout = commit_timeout_s()
    for attempt in range(1, attempts + 1):
        try:
            producer.begin_transaction()
            for topic, value, key in records:
                producer.produce(topic, value, key)
            if offsets is not None:
                positions, group = offsets()
                _bounded(partial(producer.send_offsets_to_transaction, positions, group, timeout), timeout,
                         "registering the consumed offsets", len(records))
            _bounded(partial(producer.commit_transaction, timeout), timeout, "the commit", len(records))
            return
        except TransactionInDoubt:
            raise
        except KafkaException as err:
            kerr = err.args[0]
            if not kerr.txn_requires_abort() or kerr.fatal():
                raise _in_doubt(len(records), kerr.str(), kerr.code() in _FENCED) from err
            if records:  # never sent again under this epoch (above)
                raise _in_doubt(len(records), f"{kerr.str()}; aborted after its records were sent") from err
            log.warning("Transaction of %d records aborted (attempt %d of %d): %s.", len(records), attempt,
                        attempts, kerr.str())
            try:
                producer.abort_transaction(timeout)
            except KafkaException as abort_err:
                raise _in_doubt(len(records), f"its abort failed: {abort_err.args[0].str()}") from abort_err
    raise _in_doubt(len(records), f"{attempts} transactions aborted in a row")


def _bounded(call: Callable[[], None], timeout: float, what: str, n: int) -> None:
    """Run a transactional ``call`` on the calling thread's ``_CallThread`` and wait for it ``timeout`` +
    ``STUCK_GRACE_S``; a call still blocked then is left there (its producer is never used again, its thread
    is replaced for the next call) as a transaction in doubt."""
    worker = getattr(_call_threads, "worker", None)
    if worker is None:
        worker = _call_threads.worker = _CallThread()
    if not worker.run(call, timeout + STUCK_GRACE_S):
        _call_threads.worker = None
        raise _in_doubt(n, f"{what} did not return within {timeout + STUCK_GRACE_S:g} s, past its timeout")


class _CallThread:
    """A thread that runs one transactional call at a time for the thread that owns it. It lives as long as its
    calls return: handing a call to a waiting thread costs a few microseconds where starting a thread per call
    cost 0.1 ms at p50 and 3 ms at p99 on a loaded 2-vCPU machine, twice per transaction."""

    def __init__(self) -> None:
        self._calls: queue.SimpleQueue[Callable[[], None]] = queue.SimpleQueue()
        self._done: queue.SimpleQueue[BaseException | None] = queue.SimpleQueue()
        self._abandoned = False
        threading.Thread(target=self._serve, name="transactional-call", daemon=True).start()

    def _serve(self) -> None:
        while not self._abandoned:  # an abandoned call that returns at last ends its thread
            call = self._calls.get()
            try:
                call()
                self._done.put(None)
            except BaseException as err:  # handed to the caller, in its thread
                self._done.put(err)

    def run(self, call: Callable[[], None], wait_s: float) -> bool:
        """Run ``call`` here; False when it has not returned within ``wait_s`` (this thread is then lost to it).
        The call's exception is raised in the caller."""
        self._calls.put(call)
        try:
            failed = self._done.get(timeout=wait_s)
        except queue.Empty:
            self._abandoned = True
            return False
        if failed is not None:
            raise failed
        return True


_call_threads = threading.local()  # each thread that transacts hands its calls to a _CallThread of its own


def _in_doubt(n: int, why: str, fenced: bool = False) -> TransactionInDoubt:
    if fenced:
        return TransactionInDoubt(f"a transaction of {n} records failed ({why}): another instance took the "
                                  "transactional id over; this one stops", fenced=True)
    return TransactionInDoubt(f"a transaction of {n} records failed ({why}); its producer is not used again: "
                              "a new producer rebuilds the state from the committed offsets", fenced=False)


@dataclass
class Session:
    """One producer's life in a transactional service: ``step`` runs one loop iteration, ``finish`` the last
    transaction of a clean stop; ``consumers`` are closed with it."""

    producer: Producer
    step: Callable[[], None]
    finish: Callable[[], None]
    consumers: list[Consumer] = field(default_factory=list)

    def close(self, in_doubt: bool) -> None:
        for c in self.consumers:
            c.close()
        if in_doubt:
            self.producer.purge()  # nothing of a transaction in doubt is sent again by this producer
        else:
            self.producer.flush(10)


def run_recovering(open_session: Callable[[], Session], stopper: Stopper, what: str,
                   max_seconds: float | None = None) -> int:
    """Run ``open_session()``'s steps until a stop (or ``max_seconds``); the number of recoveries.

    On ``TransactionInDoubt`` the session is closed and its producer never used again: ``open_session`` is
    called again, which must build the service's state afresh from the committed offsets with a new
    producer of the same transactional id (the recovery a restart after a SIGKILL does, inside the running
    process). A fenced producer, ``RECOVERIES_IN_A_ROW`` recoveries each within ``RECOVERY_WINDOW_S`` of
    the previous, or a coordinator not found within ``RECOVERY_WAIT_S`` raise.
    """
    started = time.monotonic()
    recoveries = in_a_row = 0
    last_recovery = -math.inf
    session = open_session()
    while True:
        try:
            while not stopper.stopped:
                if max_seconds is not None and time.monotonic() - started > max_seconds:
                    break
                session.step()
            session.finish()
        except TransactionInDoubt as err:
            session.close(in_doubt=True)
            now = time.monotonic()
            in_a_row = in_a_row + 1 if now - last_recovery < RECOVERY_WINDOW_S else 1
            if err.fenced or in_a_row > RECOVERIES_IN_A_ROW:
                raise
            recoveries, last_recovery = recoveries + 1, now
            log.warning("%s: %s; recovering in process (recovery %d).", what, err, recoveries)
            session = _reopen(open_session, what)
            log.info("%s recovered in %.1fs: a new producer, state rebuilt from the committed offsets.", what,
                     time.monotonic() - now)
            continue
        except BaseException:
            session.close(in_doubt=True)
            raise
        session.close(in_doubt=False)
        return recoveries


def _reopen(open_session: Callable[[], Session], what: str) -> Session:
    deadline = time.monotonic() + RECOVERY_WAIT_S
    while True:
        try:
            return open_session()
        except KafkaException as err:
            kerr = err.args[0]
            retry = isinstance(kerr, KafkaError) and (kerr.retriable() or kerr.code() in _COORDINATOR_WAIT)
            if not retry or time.monotonic() >= deadline:
                raise TransactionInDoubt(f"{what} could not recover: {kerr}") from err
            log.warning("%s: recovery waits for the cluster (%s).", what, kerr)
            time.sleep(1.0)


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
    log.info("Assigned at the committed offsets: %s.", ", ".join(
        f"{tp.topic}[{tp.partition}]@{tp.offset if tp.offset >= 0 else 'beginning'}" for tp in assignment))


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
