"""`tickflow explain` finds an order near its time: the id names its bar end, so of thousands of orders on the
topic it reads those written from a minute before it, not the whole topic; an id without a time, and an order
stamped before its time, are still found (the whole topic read)."""

from __future__ import annotations

import time

import pytest
from confluent_kafka import Producer

from contracts import ORDER_V2, Order
from contracts.client_config import producer_config
from contracts.serde import encode
from contracts.topics import ORDERS, market_key
from infra.kafka.broker import BrokerInfo
from trader.explain import find_order
from trader.handler import order_id, order_time

pytestmark = pytest.mark.integration
N = 4_000
T0 = int(time.time() * 1000) - 2 * N * 1000  # one order a second, written 0.5 s after its bar end
SYMBOLS = ("BTC-USDT", "ETH-USDT", "SOL-USDT", "XRP-USDT")


def _order(oid: str, ts: int, symbol: str) -> Order:
    return Order(schema_version=ORDER_V2, order_id=oid, policy_id="p", policy_version="v1", exchange="binance",
                 symbol=symbol, side="buy", qty=1.0, target_position=1.0, ts=ts, feature_ts=ts)


def test_explain_seeks_the_orders_topic_by_the_time_the_id_names(shared_broker: BrokerInfo) -> None:
    p = Producer(producer_config(shared_broker.bootstrap, {"linger.ms": 20}))
    old_style = "o-" + "0" * 32  # an id written before ids carried their time
    p.produce(ORDERS.name, encode(_order(old_style, T0, "BTC-USDT")), market_key("binance", "BTC-USDT"),
              timestamp=T0)
    ids = []
    for i in range(N):
        ts, symbol = T0 + i * 1000, SYMBOLS[i % len(SYMBOLS)]
        ids.append(order_id("p", "v1", "binance", symbol, ts))
        p.produce(ORDERS.name, encode(_order(ids[-1], ts, symbol)), market_key("binance", symbol), timestamp=ts + 500)
    ahead_ts = T0 + (N + 600) * 1000  # its record stamped 40 minutes before the bar end its id names
    ahead = order_id("p", "v1", "binance", "BTC-USDT", ahead_ts)
    p.produce(ORDERS.name, encode(_order(ahead, ahead_ts, "BTC-USDT")), market_key("binance", "BTC-USDT"),
              timestamp=T0 + 1)
    assert p.flush(30) == 0

    target = ids[3_000]
    assert order_time(target) == T0 + 3_000 * 1000 and order_time(old_style) is None
    found = find_order(shared_broker.bootstrap, target)
    assert found is not None
    m, order, read = found
    assert order.order_id == target and m.topic() == ORDERS.name
    # the records from a minute before it to the end are 1,000 + 60 + 1 of the topic's 4,002
    assert read <= 1_061, read

    for oid in (old_style, ahead):  # no time, or stamped before it: read from the start, and found
        again = find_order(shared_broker.bootstrap, oid)
        assert again is not None and again[1].order_id == oid
    assert find_order(shared_broker.bootstrap, order_id("p", "v1", "binance", "BTC-USDT", T0 + 7)) is None
