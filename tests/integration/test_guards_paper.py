"""The paper broker refuses what no sane order is, on a real broker: an order of qty 1e300 under a real
policy id was filled and took the trader's book to 10 BTC and -606,626 cash. Each refused order goes to
orders.dlq with the reason; the sane one is filled. (Before a symbol's first trade reaches the broker only
the quantity limit applies: the notional needs a price.)"""

from __future__ import annotations

from confluent_kafka import Producer

from contracts import V1, DeadLetter, Fill, Order, Trade, decode, encode, market_key
from contracts.topic_reader import read_to_end
from contracts.topics import FILLS, MARKET_TRADES, ORDERS, prefixed
from infra.kafka.broker import BrokerInfo
from paper.broker import PaperBroker
from paper.matching import PaperSettings


def _order(oid: str, qty: float, policy: str = "champion") -> Order:
    return Order(schema_version=V1, order_id=oid, policy_id=policy, policy_version="v", exchange="binance",
                 symbol="ETH-USDT", side="buy", qty=qty, target_position=1.0, ts=1_000, feature_ts=1_000)


def test_absurd_orders_and_unserved_policies_go_to_the_dlq(shared_broker: BrokerInfo) -> None:
    info = shared_broker
    producer = Producer({"bootstrap.servers": info.bootstrap, "enable.idempotence": True})
    key = market_key("binance", "ETH-USDT")
    trade = Trade(schema_version=V1, exchange="binance", symbol="ETH-USDT", venue_symbol="ETHUSDT", trade_id="1",
                  price=100.0, size=50.0, side="buy", ts_event=900, ts_ingest=900)
    producer.produce(MARKET_TRADES.name, encode(trade), key)
    producer.flush(30)
    settings = PaperSettings(max_notional=1_000_000.0, policies="champion")
    # the broker has seen the symbol's price (kept across its restart by the trade ring's rebuild)
    PaperBroker(settings, bootstrap=info.bootstrap, group=prefixed("guards-paper")).run(max_seconds=3)
    for order in (_order("huge", 1e300), _order("over-notional", 20_000.0), _order("intruder", 1.0, "intruder"),
                  _order("sane", 2.0)):
        producer.produce(ORDERS.name, encode(order), key)
    later = Trade(schema_version=V1, exchange="binance", symbol="ETH-USDT", venue_symbol="ETHUSDT", trade_id="2",
                  price=100.0, size=50.0, side="buy", ts_event=2_000, ts_ingest=2_000)
    producer.produce(MARKET_TRADES.name, encode(later), key)
    producer.flush(30)
    PaperBroker(settings, bootstrap=info.bootstrap, group=prefixed("guards-paper")).run(max_seconds=6)
    # a restart rebuilds the open orders from the orders topic: the refused ones must stay refused
    third = Trade(schema_version=V1, exchange="binance", symbol="ETH-USDT", venue_symbol="ETHUSDT", trade_id="3",
                  price=100.0, size=1e6, side="buy", ts_event=3_000, ts_ingest=3_000)
    producer.produce(MARKET_TRADES.name, encode(third), key)
    producer.flush(30)
    PaperBroker(settings, bootstrap=info.bootstrap, group=prefixed("guards-paper")).run(max_seconds=5)
    fills = [decode(m.value() or b"", Fill) for m in read_to_end(info.bootstrap, FILLS)]
    assert {f.order_id for f in fills} == {"sane"}
    letters = [decode(m.value() or b"", DeadLetter) for m in read_to_end(info.bootstrap, ORDERS.dlq)]
    refused = {decode(d.raw.encode(), Order).order_id: d.reason for d in letters}
    assert set(refused) == {"huge", "over-notional", "intruder"}, refused
    assert "qty" in refused["huge"] and "notional" in refused["over-notional"]
    assert "PAPER__POLICIES" in refused["intruder"]
