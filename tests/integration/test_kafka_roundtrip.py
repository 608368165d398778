"""200,000 trades through a real broker: exact count, per-key order, byte-equal round trip."""

from __future__ import annotations

import uuid
from collections import defaultdict

import pytest
from confluent_kafka import Consumer, Producer

from contracts import V1, Topic, Trade, decode, encode, market_key
from contracts.client_config import client_config, producer_config
from infra.kafka.admin import ensure_topics
from infra.kafka.broker import BrokerInfo

pytestmark = pytest.mark.integration

N = 200_000
SYMBOLS = [("binance", f"S{i:02d}-USDT") for i in range(12)] + [("kraken", "BTC-USD"), ("okx", "ETH-USDT")]


def test_200k_trades_idempotent_producer_to_consumer_group(broker: BrokerInfo) -> None:
    name = f"test.roundtrip.{uuid.uuid4().hex[:6]}"
    ensure_topics(broker.bootstrap, [Topic(name, "exchange:symbol", Trade, 4)])
    producer = Producer(producer_config(broker.bootstrap, {"linger.ms": 20, "compression.type": "lz4"}))
    sent: dict[bytes, list[bytes]] = defaultdict(list)
    delivered = 0

    def on_delivery(err: object, _msg: object) -> None:
        nonlocal delivered
        assert err is None, err
        delivered += 1

    for i in range(N):
        exchange, symbol = SYMBOLS[i % len(SYMBOLS)]
        trade = Trade(schema_version=V1, exchange=exchange, symbol=symbol, venue_symbol=symbol,
                      trade_id=str(i), price=100.0 + i * 1e-4, size=0.001 * (1 + i % 7),
                      side="buy" if i % 3 else "sell", ts_event=1_700_000_000_000 + i,
                      ts_ingest=1_700_000_000_000 + i)
        key, value = market_key(exchange, symbol), encode(trade)
        sent[key].append(value)
        while True:
            try:
                producer.produce(name, value, key, on_delivery=on_delivery)
                break
            except BufferError:
                producer.poll(0.05)
        producer.poll(0)
    assert producer.flush(60) == 0
    assert delivered == N

    consumer = Consumer({
        **client_config(broker.bootstrap), "group.id": f"g-{name}", "auto.offset.reset": "earliest",
        "enable.auto.commit": False,
    })
    consumer.subscribe([name])
    got: dict[bytes, list[bytes]] = defaultdict(list)
    partitions_of: dict[bytes, set[int]] = defaultdict(set)
    count, idle = 0, 0
    while count < N and idle < 100:
        batch = consumer.consume(5000, timeout=0.2)
        idle = 0 if batch else idle + 1
        for msg in batch:
            assert msg.error() is None, msg.error()
            got_key, got_value, partition = msg.key(), msg.value(), msg.partition()
            assert got_key is not None and got_value is not None and partition is not None
            got[got_key].append(got_value)
            partitions_of[got_key].add(partition)
            count += 1
    # Anything more would be a duplicate: wait a little for it.
    extra = consumer.consume(1000, timeout=2.0)
    consumer.close()

    assert count == N and not extra
    assert {len(p) for p in partitions_of.values()} == {1}, "a key spread over partitions"
    assert len({next(iter(p)) for p in partitions_of.values()}) > 1, "all keys landed in one partition"
    for key, values in sent.items():
        assert got[key] == values, f"order or bytes differ for {key!r}"
    sample = decode(got[SYMBOLS[0][0].encode() + b":" + SYMBOLS[0][1].encode()][-1], Trade)
    assert encode(sample) == sent[market_key(*SYMBOLS[0])][-1]
