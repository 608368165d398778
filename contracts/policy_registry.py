"""The policy registry on Kafka: read a policy's record (``latest``, ``follow``) and write decisions.

The topic is ``policies`` (compacted, key ``policy_id``, one partition); its record is
``contracts.policy_record.PolicyRecord``. A write reads the policy's newest record, builds the next
one (``promoted``, ``rejected``, ``rolled_back``) and produces it with the shared producer settings.
One writer at a time per policy is assumed (the retrain job, or a person by hand); ``revision``
counts the writes, so a reader can tell a lost update.

For the trader that follows the registry: ``latest(bootstrap, policy_id)`` gives the newest record
(or None), ``follow(bootstrap, policy_id)`` yields it and then every later record of that policy as
it arrives (``trader.swap`` follows it in a thread of its own, until ``stopped()``); ``unpack``
(contracts.policy_record) writes a record's bundle to a directory, which ``trader.policy.bundle.load``
then verifies before anything serves it.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Callable, Iterator

from confluent_kafka import KafkaError, Message, Producer

from contracts.broker_check import librdkafka_logger
from contracts.client_config import producer_config
from contracts.errors import ContractError
from contracts.policy_record import (
    HISTORY_KEEP,
    MAX_RECORD_BYTES,
    Decision,
    PackedBundle,
    PolicyRecord,
    RegistryError,
)
from contracts.serde import decode, encode
from contracts.topic_reader import end_offsets, read_to_end
from contracts.topic_reader import follow as follow_topic
from contracts.topics import POLICIES

log = logging.getLogger(__name__)


def _decoded(m: Message) -> PolicyRecord | None:
    if m.value() is None:  # a tombstone: the policy was deleted
        return None
    try:
        return decode(m.value() or b"", PolicyRecord)
    except ContractError as err:
        log.warning("Skipped %s[%d]@%d, not a policy record: %s.", m.topic(), m.partition(), m.offset(), err)
        return None


def records(bootstrap: str) -> dict[str, PolicyRecord]:
    """The newest record of every policy on the registry, by policy id."""
    out: dict[str, PolicyRecord] = {}
    for m in read_to_end(bootstrap, POLICIES):
        key = (m.key() or b"").decode()
        rec = _decoded(m)
        if rec is None:
            out.pop(key, None)
        else:
            out[key] = rec
    return out


def latest(bootstrap: str, policy_id: str) -> PolicyRecord | None:
    """The newest record of ``policy_id``, None when the registry has none."""
    return records(bootstrap).get(policy_id)


def follow(bootstrap: str, policy_id: str, idle_s: float = math.inf,
           stopped: Callable[[], bool] | None = None) -> Iterator[PolicyRecord]:
    """The newest record of ``policy_id`` now (when there is one), then each later one as it arrives,
    until none has arrived for ``idle_s`` seconds (default: for ever) or ``stopped()`` is true."""
    ends = end_offsets(bootstrap, POLICIES)
    current = None
    for m in read_to_end(bootstrap, POLICIES, stop=ends):
        if (m.key() or b"").decode() == policy_id:
            current = _decoded(m)
    if current is not None:
        yield current
    for m in follow_topic(bootstrap, POLICIES, ends, idle_s, stopped):
        if (m.key() or b"").decode() == policy_id:
            rec = _decoded(m)
            if rec is not None:
                log.info("Registry record %d of policy %s at %s[%d]@%d: %s %s.", rec.revision, policy_id, m.topic(),
                         m.partition(), m.offset(), rec.decision.kind, rec.decision.version)
                yield rec


def write(bootstrap: str, record: PolicyRecord) -> tuple[int, int]:
    """Produce ``record`` under its policy id and wait for the broker; returns (partition, offset)."""
    value = encode(record)
    if len(value) > MAX_RECORD_BYTES:
        raise RegistryError(f"policy {record.policy_id}: the record is {len(value):,} bytes, over the registry's "
                            f"{MAX_RECORD_BYTES:,} (max.message.bytes of {POLICIES.name})")
    placed: list[tuple[int, int]] = []
    failed: list[KafkaError] = []

    def delivered(err: KafkaError | None, m: Message) -> None:
        if err is not None:
            failed.append(err)
        else:
            placed.append((m.partition() or 0, m.offset() or 0))

    producer = Producer(producer_config(bootstrap, {"message.max.bytes": MAX_RECORD_BYTES + 65_536, "linger.ms": 0,
                                                    "log_level": 3, "logger": librdkafka_logger()}))
    producer.produce(POLICIES.name, value, record.policy_id.encode(), on_delivery=delivered)
    left = producer.flush(30)
    if failed or left or not placed:
        why = failed[0].str() if failed else "no acknowledgement within 30 s"
        raise RegistryError(f"policy {record.policy_id}: writing revision {record.revision} to {POLICIES.name} "
                            f"failed: {why}")
    partition, offset = placed[0]
    log.info("Wrote revision %d of policy %s (%s %s) to %s[%d]@%d, %d bytes.", record.revision, record.policy_id,
             record.decision.kind, record.decision.version, POLICIES.name, partition, offset, len(value))
    return partition, offset


def next_record(current: PolicyRecord | None, policy_id: str, decision: Decision,
                serving: PackedBundle | None, previous: PackedBundle | None) -> PolicyRecord:
    """The record after ``current`` that ``decision`` makes, with the history carried over."""
    history = [*(current.history if current else []), decision][-HISTORY_KEEP:]
    return PolicyRecord(schema_version=1, policy_id=policy_id, revision=(current.revision + 1) if current else 1,
                        serving=serving, previous=previous, decision=decision, history=history)


def promoted(current: PolicyRecord | None, policy_id: str, bundle: PackedBundle, decision: Decision) -> PolicyRecord:
    """``bundle`` serves; the version serving until now becomes the previous one."""
    if current is not None and current.serving is not None and current.serving.version == bundle.version:
        raise RegistryError(f"policy {policy_id} already serves version {bundle.version}")
    return next_record(current, policy_id, decision, bundle, current.serving if current else None)


def rejected(current: PolicyRecord | None, policy_id: str, decision: Decision) -> PolicyRecord:
    """Nothing changes but the history: the serving and previous versions stay."""
    return next_record(current, policy_id, decision, current.serving if current else None,
                       current.previous if current else None)


def rolled_back(current: PolicyRecord | None, policy_id: str, decision: Decision) -> PolicyRecord:
    """The previous version serves again; there is no previous version after it (a second rollback is refused)."""
    if current is None or current.serving is None:
        raise RegistryError(f"policy {policy_id} has no serving version on the registry: nothing to roll back")
    if current.previous is None:
        raise RegistryError(f"policy {policy_id} has no previous version to roll back to (serving "
                            f"{current.serving.version}, revision {current.revision})")
    return next_record(current, policy_id, decision, current.previous, None)
