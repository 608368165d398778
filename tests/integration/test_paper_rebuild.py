"""The paper broker's rebuild at the committed offsets, where some input partitions have none yet.

The consumer reads a partition without a committed offset from its beginning, so the rebuild must take
nothing of it; otherwise its records count twice (a trade in the ring and again as it comes) or an order
is restored as open and then ignored as a duplicate when it comes (never checked, never filled from the
ring). Each scenario runs twice on a real broker: interrupted (a session drained, inputs written while it
is down, a second session, which is what a restart and an in-process recovery both open) and
uninterrupted (one session over all of it, under another topic prefix). The fills must be the same.
Input records go to explicit partitions, so which partition lacks a committed offset is fixed.
"""

from __future__ import annotations

import time
from collections.abc import Callable

import pytest
from confluent_kafka import Consumer, Producer

from contracts import V1, Fill, Order, Trade, decode, encode
from contracts.client_config import producer_config
from contracts.topic_reader import partition_watermarks, read_to_end
from contracts.topics import FILLS, MARKET_TRADES, ORDERS, PREFIX_ENV, prefixed, topic_prefix
from infra.kafka.admin import ensure_topics
from infra.kafka.broker import BrokerInfo
from paper.broker import PaperBroker
from paper.matching import PaperSettings

pytestmark = pytest.mark.integration
Record = tuple[str, int, bytes]  # topic, partition, value
FillRow = tuple[str, str, float, float, float, bool]
_PARTITION = {"ETH-USDT": 0, "BTC-USDT": 1}  # market.trades partition of each symbol's trades


def _trade(symbol: str, n: int, ts: int) -> Record:
    t = Trade(schema_version=V1, exchange="binance", symbol=symbol, venue_symbol=symbol.replace("-", ""),
              trade_id=f"{symbol}-{n}", price=100.0 + n, size=1.0, side="buy", ts_event=ts, ts_ingest=ts)
    return MARKET_TRADES.name, _PARTITION[symbol], encode(t)


def _order(oid: str, symbol: str, qty: float, ts: int, partition: int, policy: str = "champion") -> Record:
    o = Order(schema_version=V1, order_id=oid, policy_id=policy, policy_version="v", exchange="binance",
              symbol=symbol, side="buy", qty=qty, target_position=1.0, ts=ts, feature_ts=ts)
    return ORDERS.name, partition, encode(o)


def _produce(bootstrap: str, records: list[Callable[[], Record]]) -> None:
    """Write the records (built now, under the current topic prefix) to their partitions."""
    producer = Producer(producer_config(bootstrap))
    for make in records:
        topic, partition, value = make()
        producer.produce(topic, value, partition=partition)
    assert producer.flush(30) == 0, "records not delivered within 30 s"


def _caught_up(c: Consumer) -> bool:
    """True when the group's committed offset is at the end of every non-empty partition assigned to ``c``."""
    for tp in c.committed(c.assignment(), timeout=10):
        low, high = partition_watermarks(c, tp)
        if high > low and tp.offset < high:
            return False
    return True


def _drain(paper: PaperBroker) -> None:
    """One session of ``paper`` (what a start or an in-process recovery opens: a new producer, the state
    rebuilt at the committed offsets) stepped until it has consumed, and committed, every input record."""
    session = paper._session()
    deadline = time.monotonic() + 120
    try:
        while not _caught_up(session.consumers[0]):
            if time.monotonic() > deadline:
                c = session.consumers[0]
                raise AssertionError(f"the paper broker did not commit all its inputs within 120 s: committed "
                                     f"{c.committed(c.assignment(), timeout=10)}")
            session.step()
        session.finish()
    finally:
        session.close(in_doubt=False)


def _fills(bootstrap: str) -> list[FillRow]:
    rows = [decode(m.value() or b"", Fill) for m in read_to_end(bootstrap, FILLS)]
    return sorted((f.fill_id, f.trade_id, f.price, f.qty, f.fee, f.last) for f in rows)


def _run(bootstrap: str, before: list[Callable[[], Record]], after: list[Callable[[], Record]],
         interrupted: bool, same_process: bool) -> list[FillRow]:
    """The fills of a paper broker over ``before`` then ``after``: with ``interrupted``, one session over
    ``before``, ``after`` written while none runs, then a second session (of the same PaperBroker, the
    in-process recovery path, or of a new one, a restart); else one session over both."""
    settings = PaperSettings(policies="champion")
    paper = PaperBroker(settings, bootstrap=bootstrap, group=prefixed("rebuild-paper"))
    if interrupted:
        _produce(bootstrap, before)
        _drain(paper)
        _produce(bootstrap, after)
        _drain(paper if same_process else PaperBroker(settings, bootstrap=bootstrap, group=prefixed("rebuild-paper")))
    else:
        _produce(bootstrap, before + after)
        _drain(paper)
    return _fills(bootstrap)


def _interrupted_and_whole(info: BrokerInfo, monkeypatch: pytest.MonkeyPatch, before: list[Callable[[], Record]],
                           after: list[Callable[[], Record]], same_process: bool) -> tuple[list[FillRow],
                                                                                           list[FillRow]]:
    interrupted = _run(info.bootstrap, before, after, interrupted=True, same_process=same_process)
    monkeypatch.setenv(PREFIX_ENV, f"{topic_prefix()}whole.")
    ensure_topics(info.bootstrap)
    return interrupted, _run(info.bootstrap, before, after, interrupted=False, same_process=same_process)


@pytest.mark.parametrize("same_process", [True, False], ids=["in-process-recovery", "restart"])
def test_an_order_on_a_partition_without_a_committed_offset_fills_as_in_an_uninterrupted_run(
        shared_broker: BrokerInfo, monkeypatch: pytest.MonkeyPatch, same_process: bool) -> None:
    # orders[0] gets a committed offset in the first session; orders[1] has none when the second starts, and
    # holds an order the trades already in the ring fill, and one of a policy not served: restored as open by
    # the rebuild, each was then taken for a duplicate when it came (never checked, nothing from the ring),
    # and only the next trade filled them (b once, the refused x too) on the code before
    before = [lambda: _order("a", "ETH-USDT", 1.0, 500, 0),
              *(lambda n=n: _trade("ETH-USDT", n, 1_000 * n) for n in range(1, 5))]
    after = [lambda: _order("b", "ETH-USDT", 2.0, 1_500, 1), lambda: _order("x", "ETH-USDT", 1.0, 1_500, 1, "intruder"),
             lambda: _trade("ETH-USDT", 5, 5_000)]
    interrupted, whole = _interrupted_and_whole(shared_broker, monkeypatch, before, after, same_process)
    assert [row[:2] for row in whole] == [("a-1", "ETH-USDT-1"), ("b-1", "ETH-USDT-2"), ("b-2", "ETH-USDT-3")]
    assert interrupted == whole


@pytest.mark.parametrize("same_process", [True, False], ids=["in-process-recovery", "restart"])
def test_trades_on_a_partition_without_a_committed_offset_fill_as_in_an_uninterrupted_run(
        shared_broker: BrokerInfo, monkeypatch: pytest.MonkeyPatch, same_process: bool) -> None:
    # market.trades[0] gets a committed offset in the first session; market.trades[1] (BTC-USDT) has none when
    # the second starts: read into the ring by the rebuild and again by the consumer, each of its trades
    # filled the new order twice (six fills of four trades before 31ee68e)
    before = [lambda: _order("a", "ETH-USDT", 1.0, 500, 0), lambda: _trade("ETH-USDT", 1, 1_000)]
    after = [*(lambda n=n: _trade("BTC-USDT", n, 1_000 * n) for n in range(1, 5)),
             lambda: _order("b", "BTC-USDT", 6.0, 500, 0)]
    interrupted, whole = _interrupted_and_whole(shared_broker, monkeypatch, before, after, same_process)
    assert [row[:2] for row in whole] == [("a-1", "ETH-USDT-1"), *((f"b-{n}", f"BTC-USDT-{n}") for n in range(1, 5))]
    assert interrupted == whole
