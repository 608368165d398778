"""Several instances of one policy (`tickflow trade --instance ID`): one consumer group, partitions split.

The instances of a policy SUBSCRIBE to ``signals.features`` in the policy's group
(``tickflow-trader-<policy>``); the group splits the partitions between them (the eager ``range``
protocol: at each rebalance every instance gives up all its partitions, then gets its new share). Each
has its own transactional id, ``<group>-<instance>``, and commits its offsets with the group's metadata
(``send_offsets_to_transaction(..., consumer.consumer_group_metadata())``): an instance the group has
moved on from (a zombie) is fenced by the group generation (KIP-447), not by its transactional id.

The features topic is keyed ``exchange:symbol`` (murmur2, ``contracts.partitioning``), so a symbol lives on
one partition and an instance owns the symbols of its partitions: it rebuilds their intended positions from
their committed orders, books only their fills, and decides only their features. What spans symbols is
per instance: its book (cash from ``TRADER__CAPITAL``, equity, drawdown), the drawdown halt (it flattens the
instance's own symbols), the order rate limit, and its portfolio snapshot, keyed ``<policy>@<instance>``.
A halt is restored at every rebuild from any of the policy's snapshots: a halted instance's symbols are not
traded again by the instance that takes them over.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Callable

from confluent_kafka import Consumer, Message, TopicPartition

from contracts import FeatureVector, market_key
from contracts.partitioning import partition_of

log = logging.getLogger(__name__)
_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_-]{0,39}$")


def check_instance(name: str) -> str:
    """``name`` when it can be an instance id (it goes into a transactional id and a snapshot key)."""
    if not _NAME.match(name):
        raise ValueError(f"instance id {name!r} is refused: 1 to 40 letters, digits, '-' or '_', starting with a "
                         "letter or digit")
    return name


class Membership:
    """One instance's share of ``signals.features``: the partitions the group gave it, the symbols on them,
    the offset after each feature it decided, and a generation that moves at every assignment and revocation."""

    def __init__(self, instance: str, topic: str, partitions_total: int) -> None:
        self.instance = check_instance(instance)
        self.topic = topic
        self.total = partitions_total
        self.partitions: frozenset[int] = frozenset()
        self.generation = 0
        self.next: dict[int, int] = {}  # partition -> the offset after the last feature decided since assignment

    def owns(self, exchange: str, symbol: str) -> bool:
        return partition_of(market_key(exchange, symbol), self.total) in self.partitions

    def misplaced(self, fv: FeatureVector, partition: int) -> str | None:
        """Why a feature vector read from ``partition`` is not traded (a DLQ reason): its key places it on
        another partition, so the instances of the policy could not tell which owns its symbol."""
        home = partition_of(market_key(fv.exchange, fv.symbol), self.total)
        if home == partition:
            return None
        return (f"{fv.exchange}:{fv.symbol} belongs on partition {home} of {self.total} (murmur2 of its key), not "
                f"{partition}: the trader's instances tell the symbols they own by it")

    def assigned(self, partitions: list[int]) -> None:
        self.partitions, self.next = frozenset(partitions), {}
        self.generation += 1

    def revoked(self) -> None:
        self.partitions, self.next = frozenset(), {}
        self.generation += 1

    def decided(self, m: Message) -> None:
        self.next[m.partition() or 0] = (m.offset() or 0) + 1

    def offsets(self) -> list[TopicPartition]:
        """The offsets to commit: after the features decided, on the partitions owned now."""
        return [TopicPartition(self.topic, p, off) for p, off in sorted(self.next.items()) if p in self.partitions]

    def poll(self, consumer: Consumer, batch: int, polling: Callable[[bool], None]) -> list[Message]:
        """Up to ``batch`` records, polled one at a time (``polling(True)`` while it polls). A rebalance runs its
        callbacks inside a poll: the records polled before it are dropped (their partitions were given up and
        are read again from the committed offsets, here or by the instance that owns them now); the record a
        poll returns is always of the assignment its callbacks left."""
        msgs: list[Message] = []
        generation = self.generation
        polling(True)
        try:
            m = consumer.poll(0.05)
            while True:
                if self.generation != generation:
                    if msgs:
                        log.info("Instance %s dropped %d records polled before a rebalance.", self.instance,
                                 len(msgs))
                    msgs, generation = [], self.generation
                if m is None or len(msgs) + 1 >= batch:
                    break
                msgs.append(m)
                m = consumer.poll(0)
            if m is not None:
                msgs.append(m)
        finally:
            polling(False)
        return msgs

    def describe(self) -> str:
        return f"partitions {sorted(self.partitions)} of {self.topic}'s {self.total}"

    def snapshot_key(self, policy_id: str) -> bytes:
        return f"{policy_id}@{self.instance}".encode()
