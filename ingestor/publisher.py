"""The Kafka side of the ingestor: one idempotent producer (acks=all), keyed ``exchange:symbol``.

Throughput settings follow what librdkafka needs to batch well from Python: linger 50 ms, large
batches, lz4, a deep but byte-bounded local queue (memory stays flat however long the input). When
the local queue is full, ``produce`` waits for room (serving delivery reports) instead of dropping.

Delivery reports are counted. With ``reports="errors"`` (replay at full speed) librdkafka reports only
failed deliveries; after ``flush`` returns with nothing outstanding, every other message was
acknowledged by the broker, so delivered = produced - failed.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from typing import Any, Literal

from confluent_kafka import KafkaError, Message, Producer

from contracts import client_config
from contracts.broker_check import librdkafka_logger
from contracts.messages import DeadLetter, MarketEvent, Trade
from contracts.serde import encode
from contracts.topics import MARKET_EVENTS, MARKET_TRADES, market_key

log = logging.getLogger(__name__)


def producer_config(bootstrap: str, reports: Literal["all", "errors"] = "all") -> dict[str, Any]:
    return client_config.producer_config(bootstrap, {
        "linger.ms": 50,
        "batch.size": 4_000_000,
        "batch.num.messages": 100_000,
        "compression.type": "lz4",
        "queue.buffering.max.messages": 2_000_000,
        "queue.buffering.max.kbytes": 32_768,  # bounds the memory of a replay however long it is
        "message.timeout.ms": 300_000,  # a broker away for 5 minutes fails the delivery (reported)
        "delivery.report.only.error": reports == "errors",
        "socket.keepalive.enable": True,
    })


class Publisher:
    """Produces trades, events and dead letters; counts what the broker acknowledged."""

    def __init__(self, bootstrap: str, reports: Literal["all", "errors"] = "all",
                 on_latency: Callable[[float], None] | None = None) -> None:
        self.reports = reports
        config = producer_config(bootstrap, reports)
        config["on_delivery"] = self._report
        self.producer = Producer(config, logger=librdkafka_logger())  # failures are counted and reported
        self.produced = 0
        self.acked = 0
        self.failed = 0
        self.first_error = ""
        self._on_latency = on_latency
        self._keys: dict[tuple[str, str], bytes] = {}
        # under the topic prefix of the moment the publisher is made (TICKFLOW_TOPIC_PREFIX)
        self.trades_topic, self.events_topic = MARKET_TRADES.name, MARKET_EVENTS.name
        self.dlq_topic = MARKET_TRADES.dlq.name

    # -- delivery reports --------------------------------------------------------------------------
    def _report(self, err: KafkaError | None, msg: Message) -> None:
        if err is not None:
            self.failed += 1
            if not self.first_error:
                self.first_error = f"{msg.topic()}: {err}"
                log.error("Delivery to %s failed: %s.", msg.topic(), err)
            return
        self.acked += 1
        if self._on_latency is not None:
            latency = msg.latency()
            if latency is not None:
                self._on_latency(latency)

    def key(self, exchange: str, symbol: str) -> bytes:
        k = self._keys.get((exchange, symbol))
        if k is None:
            k = self._keys[(exchange, symbol)] = market_key(exchange, symbol)
        return k

    def produce(self, topic: str, value: bytes, key: bytes | None) -> None:
        """Produce one record; when the local queue is full, serve reports until there is room."""
        while True:
            try:
                self.producer.produce(topic, value, key)
                break
            except BufferError:
                self.producer.poll(0.05)
        self.produced += 1

    def trade(self, t: Trade) -> None:
        self.produce(self.trades_topic, encode(t), self.key(t.exchange, t.symbol))

    def event(self, e: MarketEvent) -> None:
        self.produce(self.events_topic, encode(e), self.key(e.exchange, e.symbol))

    def dead_letter(self, d: DeadLetter) -> None:
        self.produce(self.dlq_topic, encode(d), None)

    def poll(self) -> None:
        self.producer.poll(0)

    def queued(self) -> int:
        return len(self.producer)

    def flush(self, timeout_s: float = 330.0, stop: threading.Event | None = None) -> int:
        """Wait until every record is acknowledged or failed, or ``stop`` is set; return how many are still
        outstanding."""
        deadline = time.monotonic() + timeout_s
        remaining = len(self.producer)
        said = time.monotonic()
        while remaining and time.monotonic() < deadline and not (stop is not None and stop.is_set()):
            remaining = self.producer.flush(min(0.5, max(0.1, deadline - time.monotonic())))
            if remaining and time.monotonic() - said >= 5.0:
                log.info("Waiting for the broker to acknowledge %d records.", remaining)
                said = time.monotonic()
        return remaining

    @property
    def delivered(self) -> int:
        """Records the broker acknowledged (exact once ``flush`` returned 0)."""
        if self.reports == "errors":
            return self.produced - self.failed - len(self.producer)
        return self.acked
