"""The demo's settle check (`tickflow.demo.runner.TradesCommitted`): true only once the streams worker's group
has committed every non-empty ``market.trades`` partition to its end, on a real broker."""

from __future__ import annotations

from confluent_kafka import Consumer, Producer, TopicPartition

from contracts.client_config import client_config, producer_config
from contracts.topics import MARKET_TRADES
from infra.kafka.broker import BrokerInfo
from tickflow.demo.runner import TradesCommitted


def _commit(bootstrap: str, group: str, offsets: dict[int, int]) -> None:
    c = Consumer({**client_config(bootstrap), "group.id": group, "enable.auto.commit": False})
    try:
        c.commit(offsets=[TopicPartition(MARKET_TRADES.name, p, off) for p, off in offsets.items()],
                 asynchronous=False)
    finally:
        c.close()


def test_caught_up_once_every_non_empty_partition_is_committed_to_its_end(shared_broker: BrokerInfo) -> None:
    bootstrap, group = shared_broker.bootstrap, f"{MARKET_TRADES.name}-settle"
    p = Producer(producer_config(bootstrap))
    for _ in range(5):
        p.produce(MARKET_TRADES.name, b"x", partition=1)
    for _ in range(3):
        p.produce(MARKET_TRADES.name, b"x", partition=2)
    assert p.flush(30) == 0  # partitions 0 and 3 stay empty: never committed, nothing to read
    check = TradesCommitted(bootstrap, group)
    try:
        assert not check()  # nothing committed yet
        _commit(bootstrap, group, {1: 5, 2: 2})
        assert not check()  # one record of partition 2 not yet applied
        _commit(bootstrap, group, {2: 3})
        assert check()
    finally:
        check.close()
