"""The demo's settle check (`tickflow.demo.runner.Committed`): true only once every (group, topic) it watches has
committed each non-empty partition to its end, on a real broker."""

from __future__ import annotations

from confluent_kafka import Consumer, Producer, TopicPartition

from contracts import Topic
from contracts.client_config import client_config, producer_config
from contracts.topics import MARKET_TRADES, SIGNALS_FEATURES
from infra.kafka.broker import BrokerInfo
from tickflow.demo.runner import Committed


def _commit(bootstrap: str, group: str, topic: Topic, offsets: dict[int, int]) -> None:
    c = Consumer({**client_config(bootstrap), "group.id": group, "enable.auto.commit": False})
    try:
        c.commit(offsets=[TopicPartition(topic.name, p, off) for p, off in offsets.items()], asynchronous=False)
    finally:
        c.close()


def test_caught_up_once_every_non_empty_partition_is_committed_to_its_end(shared_broker: BrokerInfo) -> None:
    bootstrap = shared_broker.bootstrap
    streams, trader = f"{MARKET_TRADES.name}-settle-streams", f"{MARKET_TRADES.name}-settle-trader"
    p = Producer(producer_config(bootstrap))
    for _ in range(5):
        p.produce(MARKET_TRADES.name, b"x", partition=1)
    for _ in range(3):
        p.produce(MARKET_TRADES.name, b"x", partition=2)
    p.produce(SIGNALS_FEATURES.name, b"x", partition=0)
    assert p.flush(30) == 0  # the other partitions stay empty: never committed, nothing to read
    check = Committed(bootstrap, [(streams, MARKET_TRADES), (trader, SIGNALS_FEATURES)])
    try:
        assert not check()  # nothing committed yet
        _commit(bootstrap, streams, MARKET_TRADES, {1: 5, 2: 2})
        assert not check()  # one record of partition 2 not yet applied
        _commit(bootstrap, streams, MARKET_TRADES, {2: 3})
        assert not check()  # the trades are, the feature is not
        _commit(bootstrap, trader, SIGNALS_FEATURES, {0: 1})
        assert check()
    finally:
        check.close()
