"""Where a keyed record lands: Kafka's default partitioner, as every tickflow producer places keys.

Every producer hashes keys with murmur2 (``contracts.client_config.PARTITIONER``), as Java's clients,
Kafka Streams and ksqlDB do, and the streams worker writes a symbol's features to its trades' partition:
so ``partition_of(market_key(exchange, symbol), partitions)`` names the partition of a symbol on each
``exchange:symbol`` topic. The trader's instances use it to tell the symbols they own (``trader.instances``).
tests/integration/test_partitioning.py checks the same hash, written there independently, against Java's.
"""

from __future__ import annotations

_M, _R, _MASK = 0x5BD1E995, 24, 0xFFFFFFFF


def murmur2(data: bytes) -> int:
    """Java's ``org.apache.kafka.common.utils.Utils.murmur2`` (seed 0x9747b28c) as a signed 32-bit int."""
    length = len(data)
    h = (0x9747B28C ^ length) & _MASK
    for i in range(0, length - length % 4, 4):
        k = (int.from_bytes(data[i:i + 4], "little") * _M) & _MASK
        k ^= k >> _R
        h = ((h * _M) & _MASK) ^ ((k * _M) & _MASK)
    tail, base = length % 4, length - length % 4
    if tail == 3:
        h ^= data[base + 2] << 16
    if tail >= 2:
        h ^= data[base + 1] << 8
    if tail >= 1:
        h = ((h ^ data[base]) * _M) & _MASK
    h ^= h >> 13
    h = (h * _M) & _MASK
    h ^= h >> 15
    return h - (1 << 32) if h & 0x80000000 else h


def partition_of(key: bytes, partitions: int) -> int:
    """The partition Kafka's default partitioner gives ``key`` on a topic of ``partitions``."""
    if partitions < 1:
        raise ValueError(f"a topic has at least one partition, not {partitions}")
    return (murmur2(key) & 0x7FFFFFFF) % partitions
