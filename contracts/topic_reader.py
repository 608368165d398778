"""Reading topics: to their end (``read_to_end``, the one such read of tickflow), on while records
arrive (``follow``), one record by its offset (``read_at``), offsets by time (``offsets_at``), and the
services' start-up rebuilds with their error policy (``RebuildRead``)."""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Iterator
from typing import TypeVar

from confluent_kafka import OFFSET_BEGINNING, Consumer, KafkaError, KafkaException, Message, Producer, TopicPartition

from contracts import DeadLetter, Topic, kafka_io
from contracts.errors import ContractError
from contracts.messages import Message as ContractMessage
from contracts.serde import decode
from contracts.topics import DLQ_BY_SOURCE

log = logging.getLogger(__name__)
M = TypeVar("M", bound=ContractMessage)
_TAIL_WAIT_S = 0.05  # read_to_end's wait per batch: at most this long past a topic's last record


def read_to_end(bootstrap: str, topic: Topic | str, start: dict[int, int] | None = None,
                stop: dict[int, int] | None = None, idle_s: float = 120.0) -> Iterator[Message]:
    """Every committed record of ``topic`` from ``start`` (default: the beginning) to ``stop`` (default:
    the end right now), partition by partition order preserved. The one "read a topic to its end" of
    tickflow: the services' rebuilds, `tickflow topic dump`, the demo's report and the tests use it.

    Raises KafkaException when the topic does not exist, TimeoutError when the broker delivers nothing
    for ``idle_s`` seconds before the end is reached.
    """
    name = topic if isinstance(topic, str) else topic.name
    c = kafka_io.consumer(bootstrap, f"tickflow-read-{name}")
    try:
        ends, assign = _bounds(c, kafka_io.partitions(c, name), start, stop)
        if not assign:
            return
        c.assign(assign)
        last = time.monotonic()
        while ends and time.monotonic() - last < idle_s:
            # a short wait: a batch of fewer than 1,000 records (the last of a read) returns after the timeout,
            # and the positions below tell whether the end is reached
            for m in c.consume(1000, timeout=_TAIL_WAIT_S):
                last = time.monotonic()
                if not kafka_io.usable(m):
                    continue
                p, off = m.partition() or 0, m.offset() or 0
                if p not in ends:
                    continue
                if off < ends[p]:
                    yield m
                if off >= ends[p] - 1:
                    ends.pop(p, None)
            # read_committed: aborted records and markers leave holes; position tells where we are
            for tp in c.position([TopicPartition(name, p) for p in list(ends)]):
                if tp.offset >= ends.get(tp.partition, 0):
                    ends.pop(tp.partition, None)
        if ends:
            raise TimeoutError(f"reading {name} to its end stalled for {idle_s:g} s: partitions {sorted(ends)} left")
    finally:
        c.close()


def watermarks(bootstrap: str, topic: Topic | str) -> dict[int, tuple[int, int]]:
    """The first and the end offset (low and high watermarks) of every partition of ``topic`` now."""
    c = kafka_io.consumer(bootstrap, "tickflow-end-offsets")
    try:
        return {tp.partition: partition_watermarks(c, tp) for tp in kafka_io.partitions(c, topic)}
    finally:
        c.close()


def end_offsets(bootstrap: str, topic: Topic | str) -> dict[int, int]:
    """The end offset (high watermark) of every partition of ``topic`` now."""
    return {p: high for p, (_, high) in watermarks(bootstrap, topic).items()}


def offsets_at(bootstrap: str, topic: Topic | str, ts_ms: int) -> dict[int, int]:
    """For each partition of ``topic``, the first offset whose record timestamp is at or after ``ts_ms``
    (the broker's ``offsets_for_times``); the end offset where every record is older."""
    name = topic if isinstance(topic, str) else topic.name
    c = kafka_io.consumer(bootstrap, "tickflow-offsets-at")
    try:
        tps = kafka_io.partitions(c, name)
        found = c.offsets_for_times([TopicPartition(name, tp.partition, ts_ms) for tp in tps], timeout=10)
        return {tp.partition: tp.offset if tp.offset >= 0 else partition_watermarks(c, tp)[1]
                for tp in found}
    finally:
        c.close()


def read_at(bootstrap: str, topic: Topic | str, partition: int, offset: int, idle_s: float = 30.0) -> Message | None:
    """The committed record at ``topic[partition]@offset``; None when there is none (before the start or at
    or past the end of the partition, compacted away, a transaction marker or an aborted record)."""
    name = topic if isinstance(topic, str) else topic.name
    c = kafka_io.consumer(bootstrap, f"tickflow-read-{name}")
    try:
        low, high = partition_watermarks(c, TopicPartition(name, partition))
        if not low <= offset < high:
            return None
        c.assign([TopicPartition(name, partition, offset)])
        last = time.monotonic()
        while time.monotonic() - last < idle_s:
            for m in c.consume(1, timeout=0.5):  # one record: returned as soon as it is fetched
                last = time.monotonic()
                if kafka_io.usable(m):
                    return m if m.offset() == offset else None
            if c.position([TopicPartition(name, partition)])[0].offset > offset:
                return None  # skipped: a marker or an aborted record sat there
        raise TimeoutError(f"reading {name}[{partition}]@{offset} stalled for {idle_s:g} s")
    finally:
        c.close()


def follow(bootstrap: str, topic: Topic | str, start: dict[int, int], idle_s: float,
           stopped: Callable[[], bool] | None = None) -> Iterator[Message]:
    """The records of ``topic`` from ``start`` (partition -> offset) on, as they arrive, until none has
    arrived for ``idle_s`` seconds or ``stopped()`` is true (after a ``read_to_end`` with ``stop=start``:
    what came since)."""
    name = topic if isinstance(topic, str) else topic.name
    c = kafka_io.consumer(bootstrap, f"tickflow-follow-{name}")
    try:
        c.assign([TopicPartition(name, p, off) for p, off in sorted(start.items())])
        last = time.monotonic()
        while time.monotonic() - last < idle_s and not (stopped and stopped()):
            for m in c.consume(1000, timeout=0.2):
                last = time.monotonic()
                if kafka_io.usable(m):
                    yield m
    finally:
        c.close()


def read_then_follow(bootstrap: str, topic: Topic | str, idle_s: float) -> Iterator[Message]:
    """Every record up to the end offsets now, then those that arrive until none has for ``idle_s`` s
    (what `tickflow topic dump` and `tickflow book dump` print)."""
    ends = end_offsets(bootstrap, topic)
    yield from read_to_end(bootstrap, topic, stop=ends, idle_s=idle_s)
    yield from follow(bootstrap, topic, ends, idle_s)


_NOT_SERVING_YET = (KafkaError.NOT_LEADER_FOR_PARTITION, KafkaError.LEADER_NOT_AVAILABLE)


def partition_watermarks(c: Consumer, tp: TopicPartition, wait_s: float = 15.0) -> tuple[int, int]:
    """A partition's low and high offsets. A retriable error (a broker that just started, or a partition just
    created, answers NOT_LEADER_FOR_PARTITION for a moment after its metadata names a leader) is asked again
    for up to ``wait_s`` seconds, nothing else."""
    deadline = time.monotonic() + wait_s
    while True:
        try:
            low, high = c.get_watermark_offsets(tp, timeout=10)
            return int(low), int(high)
        except KafkaException as err:
            e = err.args[0]
            # librdkafka does not mark NOT_LEADER_FOR_PARTITION retriable on this call: named here
            if not (e.retriable() or e.code() in _NOT_SERVING_YET) or time.monotonic() > deadline:
                raise
            log.debug("Waiting for %s[%d]: %s.", tp.topic, tp.partition, err.args[0].str())
            time.sleep(0.2)


def _bounds(c: Consumer, tps: list[TopicPartition], start: dict[int, int] | None,
            stop: dict[int, int] | None) -> tuple[dict[int, int], list[TopicPartition]]:
    """The end offset of each partition with records to read, and the assignment at their first offsets."""
    ends: dict[int, int] = {}
    assign = []
    for tp in tps:
        low, high = partition_watermarks(c, tp)
        end = high if stop is None else min(high, stop.get(tp.partition, high))
        begin = OFFSET_BEGINNING if start is None else max(low, start.get(tp.partition, low))
        if (start is None and low < end) or (start is not None and begin < end):
            ends[tp.partition] = end
            assign.append(TopicPartition(tp.topic, tp.partition, begin))
    return ends, assign


STABLE_WAIT_S = 200.0  # past the transaction timeout (180 s), after which the coordinator aborts an open one


def stable_ends(bootstrap: str, topic: Topic | str, stop: dict[int, int] | None = None,
                wait_s: float = STABLE_WAIT_S) -> dict[int, int]:
    """Where a rebuild of ``topic`` must read to, per partition: without ``stop``, the high watermark now;
    with ``stop`` (a consumer's committed offsets), its offset, and 0 for a partition it leaves out (the
    consumer reads that partition from its beginning: a rebuild that read it would hold records the consumer
    then processes again); returned once every record before that is stable (the last stable offset, where
    a read_committed read ends, has caught up with it).

    A read_committed read to "the end now" stops at the first record of a transaction still open: one that
    a recovering producer's ``init_transactions`` has just decided but whose markers are still on their
    way, or a committed offset's record not yet under a new leader's high watermark. A rebuild that read
    only that far would miss records the committed offsets already count; it waits instead, and raises
    TimeoutError naming the partition after ``wait_s``.
    """
    name = topic if isinstance(topic, str) else topic.name
    committed_view = kafka_io.consumer(bootstrap, "tickflow-end-offsets")
    written_view = kafka_io.consumer(bootstrap, "tickflow-end-offsets", **{"isolation.level": "read_uncommitted"})
    try:
        ends: dict[int, int] = {}
        for tp in kafka_io.partitions(committed_view, name):
            p = tp.partition
            want = partition_watermarks(written_view, tp)[1] if stop is None else stop.get(p, 0)
            started = time.monotonic()
            first = stable = partition_watermarks(committed_view, tp)[1]
            while stable < want:
                if time.monotonic() - started > wait_s:
                    raise TimeoutError(f"{name}[{p}]: its last stable offset stayed at {stable}, below the {want} "
                                       f"to read, for {wait_s:g} s: a transaction left open")
                time.sleep(0.1)
                stable = partition_watermarks(committed_view, tp)[1]
            if first < want:
                log.info("Rebuild of %s[%d] waited %.2fs for its last stable offset to pass %d (it was at %d).", name,
                         p, time.monotonic() - started, want, first)
            ends[p] = want
        return ends
    finally:
        committed_view.close()
        written_view.close()


class RebuildRead:
    """The reads of a service's start-up rebuild, with one error policy: a record that fails its
    contract is logged with topic[partition]@offset and kept for its topic's dead-letter topic;
    ``send_dead_letters`` produces those the DLQ does not hold yet (a restart reads the same records
    again, and a record refused while the service ran is there already) in one transaction. Each read
    goes to ``stable_ends``: every record written before it, or up to the committed offsets given (nothing
    of a partition without one), none of a transaction still open skipped.
    """

    def __init__(self, bootstrap: str) -> None:
        self.bootstrap = bootstrap
        self.refused: dict[Topic, list[tuple[int, int, bytes]]] = {}  # source -> (partition, offset, dead letter)

    def records(self, topic: Topic, kind: type[M], start: dict[int, int] | None = None,
                stop: dict[int, int] | None = None) -> Iterator[tuple[Message, M | None]]:
        """(record, its value) from ``read_to_end`` to ``stable_ends``; the value is None when the record was
        refused. ``stop``: the consumer's committed offsets (``kafka_io.committed``), where it resumes; a
        partition they leave out is not read, as the consumer reads it from its beginning."""
        ends = stable_ends(self.bootstrap, topic, stop)
        log.info("Rebuild reads %s to %s.", topic.name, ", ".join(f"[{p}]@{off}" for p, off in sorted(ends.items())))
        for m in read_to_end(self.bootstrap, topic, start, ends):
            try:
                yield m, decode(m.value() or b"", kind)
            except ContractError as err:
                if topic.name not in DLQ_BY_SOURCE:
                    log.warning("Refused %s[%d]@%d while rebuilding: %s (the topic has no dead-letter topic).",
                                m.topic(), m.partition(), m.offset(), err)
                else:
                    _, value = kafka_io.dead_letter(m, topic, f"{err} (read while rebuilding)")
                    self.refused.setdefault(topic, []).append((m.partition() or 0, m.offset() or 0, value))
                yield m, None

    def send_dead_letters(self, producer: Producer) -> int:
        """Produce the refused records that their DLQ lacks, in one transaction; returns how many."""
        fresh: list[tuple[str, bytes]] = []
        for source, refused in self.refused.items():
            held = set()
            for m in read_to_end(self.bootstrap, source.dlq):
                try:
                    d = decode(m.value() or b"", DeadLetter)
                except ContractError as err:
                    log.warning("Skipped %s[%d]@%d, not a dead letter: %s.", m.topic(), m.partition(), m.offset(), err)
                    continue
                held.add((d.source, d.partition, d.offset))
            fresh += [(source.dlq.name, value) for p, off, value in refused if (source.name, p, off) not in held]
        if fresh:
            producer.begin_transaction()
            for dlq, value in fresh:
                producer.produce(dlq, value)
            producer.commit_transaction()
        self.refused.clear()
        return len(fresh)
