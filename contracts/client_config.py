"""The producer settings every tickflow producer shares (librdkafka / confluent-kafka).

``partitioner=murmur2_random`` hashes keys as Java's clients, Kafka Streams and ksqlDB do (murmur2 of
the key bytes, positive-masked, modulo the partition count; keyless records spread at random).
librdkafka's default (``consistent_random``, CRC32) puts a key on another partition than ksqlDB looks
it up on, and a table built by a Java client would not co-partition with the project's streams.
Idempotence (which implies ``acks=all``) keeps retries from duplicating or reordering a partition.

``client_config`` is what every client (producer, consumer, admin) starts from: the bootstrap list and,
when ``KAFKA_SASL_USERNAME`` is set (a secure cluster, ``tickflow kafka start --secure``), SASL over
plaintext with that principal's SCRAM credentials.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from contracts.errors import SettingsError
from contracts.settings import kafka_auth
from contracts.topics import Topic

PARTITIONER = "murmur2_random"


def client_config(bootstrap: str, env: Mapping[str, str] | None = None) -> dict[str, Any]:
    """The settings every client to ``bootstrap`` starts from: the address, and the SASL identity that
    ``env`` (default: the process's environment) names, if any."""
    config: dict[str, Any] = {"bootstrap.servers": bootstrap}
    auth = kafka_auth(env)
    if auth is not None:
        config.update({"security.protocol": "SASL_PLAINTEXT", "sasl.mechanism": auth.mechanism,
                       "sasl.username": auth.username, "sasl.password": auth.password})
    return config


def producer_config(bootstrap: str, overrides: Mapping[str, Any] | None = None) -> dict[str, Any]:
    """The settings of a producer to ``bootstrap``: the shared ones, then ``overrides`` (librdkafka names).

    An override that changes the partitioner is refused: every producer must place keys as ksqlDB does.
    """
    config: dict[str, Any] = {**client_config(bootstrap), "partitioner": PARTITIONER,
                              "enable.idempotence": True, "acks": "all"}
    extra = dict(overrides or {})
    if extra.get("partitioner", PARTITIONER) != PARTITIONER:
        raise SettingsError(f"producer setting partitioner={extra['partitioner']!r} is refused: every tickflow "
                            f"producer uses {PARTITIONER!r}, as Java clients and ksqlDB do")
    config.update(extra)
    return config


def check_copartitioned(client: Any, topics: Sequence[Topic], timeout: float = 10.0) -> dict[str, int]:
    """Refuse to start when topics keyed alike have different partition counts; return the counts.

    ``client`` is any confluent-kafka client (its ``list_topics``). A key is found by hashing it modulo
    the partition count, so a table and a stream co-partition (ksqlDB, the Faust worker's per-partition
    state) only when the counts agree. Topics not created yet are left out.
    """
    md = client.list_topics(timeout=timeout)
    counts = {t.name: len(md.topics[t.name].partitions) for t in topics
              if t.name in md.topics and md.topics[t.name].error is None}
    if len(set(counts.values())) > 1:
        shown = ", ".join(f"{name} has {n}" for name, n in counts.items())
        want = ", ".join(f"{t.name} {t.partitions}" for t in topics)
        raise SettingsError(f"co-partitioned topics differ in partition count ({shown}): their keys would not meet "
                            f"on the same partition; recreate them with the registry's counts ({want})")
    return counts
