"""``RebuildRead.records`` on a real broker: to the end without ``stop``; with ``stop`` (a consumer's committed
offsets) up to them, and nothing of a partition they leave out, which the consumer reads from its beginning
(read to its end, those records were in the rebuilt state and then processed again: the paper broker's
trade ring and open orders)."""

from __future__ import annotations

import pytest
from confluent_kafka import Producer

from contracts import V1, Order, encode
from contracts.client_config import producer_config
from contracts.topic_reader import RebuildRead
from contracts.topics import ORDERS
from infra.kafka.broker import BrokerInfo

pytestmark = pytest.mark.integration


def _order(partition: int, n: int) -> bytes:
    return encode(Order(schema_version=V1, order_id=f"o{partition}-{n}", policy_id="p", policy_version="v",
                        exchange="binance", symbol="ETH-USDT", side="buy", qty=1.0, target_position=1.0, ts=n,
                        feature_ts=n))


def test_a_partition_left_out_of_stop_is_not_read(shared_broker: BrokerInfo) -> None:
    producer = Producer(producer_config(shared_broker.bootstrap))
    for p in (0, 1, 2):
        for n in range(2):
            producer.produce(ORDERS.name, _order(p, n), partition=p)
    assert producer.flush(30) == 0
    rebuild = RebuildRead(shared_broker.bootstrap)

    def read(**bounds: dict[int, int]) -> list[tuple[int, int]]:
        return sorted((m.partition() or 0, m.offset() or 0) for m, o in rebuild.records(ORDERS, Order, **bounds)
                      if o is not None)

    assert read() == [(p, n) for p in (0, 1, 2) for n in range(2)]
    assert read(stop={0: 1, 1: 2}) == [(0, 0), (1, 0), (1, 1)]  # partition 2 has no committed offset: not read
    assert read(start={0: 1, 2: 0}, stop={0: 2}) == [(0, 1)]
    assert read(stop={}) == []
