"""contracts.partitioning hashes as Java's clients do (vectors from kafka-clients-4.1.1 and Kafka's UtilsTest)."""

from __future__ import annotations

import pytest

from contracts.partitioning import murmur2, partition_of


@pytest.mark.parametrize(("key", "value", "part"), [
    (b"21", -973932308, 0), (b"foobar", -790332482, 2), (b"a-little-bit-long-string", -985981536, 0),
    (b"abc", 479470107, 3), (b"binance:BTC-USDT", 646878651, 3), (b"binance:ETH-USDT", 331253766, 2),
    (b"coinbase:BTC-USD", 300975881, 1)])
def test_murmur2_and_the_partition_are_java_s(key: bytes, value: int, part: int) -> None:
    assert murmur2(key) == value
    assert partition_of(key, 4) == part


def test_a_topic_without_partitions_is_refused() -> None:
    with pytest.raises(ValueError, match="at least one partition, not 0"):
        partition_of(b"abc", 0)
