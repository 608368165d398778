"""The thin Kafka wiring of the live view: one consumer thread that decodes records into a ViewState.

The view is a read-only observer, not a stage of the pipeline: it uses its own throw-away consumer
group (every view instance sees every partition), commits nothing, and a record that fails its
contract is counted and logged with ``topic[partition]@offset`` but not dead-lettered (the real
consumer of that topic dead-letters it; a second copy from the view would double the DLQ).
"""

from __future__ import annotations

import logging
import threading
import uuid
from typing import Any

from confluent_kafka import Consumer, KafkaError, KafkaException

from contracts.client_config import client_config
from contracts.errors import ContractError
from contracts.serde import decode
from contracts.topics import topic
from tickflow.view.state import VIEW_TOPICS, ViewState

log = logging.getLogger(__name__)


class TopicFeed(threading.Thread):
    """Consume the view's topics from ``start`` ("earliest" or "latest") into ``state`` until stopped."""

    def __init__(self, bootstrap: str, state: ViewState, start: str = "earliest",
                 topics: tuple[str, ...] | None = None) -> None:
        super().__init__(name="view-feed", daemon=True)
        self.bootstrap = bootstrap
        self.state = state
        self.start_from = start
        self.topics = topics or tuple(t.name for t in VIEW_TOPICS)
        self.error: BaseException | None = None
        self._stop_event = threading.Event()

    def stop(self, timeout: float = 10.0) -> None:
        self._stop_event.set()
        self.join(timeout)

    def consumer_config(self) -> dict[str, Any]:
        """The view's consumer settings: the shared client ones (with KAFKA_SASL_*, the login to a secure
        cluster), a throw-away group, no commits."""
        return {
            **client_config(self.bootstrap),
            "group.id": f"tickflow-view-{uuid.uuid4().hex[:12]}",
            "enable.auto.commit": False,
            "enable.auto.offset.store": False,
            "auto.offset.reset": self.start_from,
            "topic.metadata.refresh.interval.ms": 5000,
            "client.id": "tickflow-view",
        }

    def run(self) -> None:
        consumer = Consumer(self.consumer_config())
        try:
            consumer.subscribe(list(self.topics))
            log.info("The view follows %s at %s from the %s offsets.", ", ".join(self.topics), self.bootstrap,
                     self.start_from)
            while not self._stop_event.is_set():
                for msg in consumer.consume(num_messages=1000, timeout=0.5):
                    err = msg.error()
                    if err is not None:
                        if err.fatal():
                            raise KafkaException(err)
                        if err.code() != KafkaError._PARTITION_EOF:
                            log.debug("The view's consumer reports: %s", err)
                        continue
                    self._apply(msg.topic(), msg.partition(), msg.offset(), msg.value())
        except BaseException as exc:
            self.error = exc
            log.exception("The view's Kafka feed stopped on an error.")
            raise
        finally:
            consumer.close()

    def _apply(self, name: str | None, partition: int | None, offset: int | None, value: bytes | None) -> None:
        if name is None:
            return
        if value is None:
            return  # a tombstone on the compacted portfolio topic: nothing to show
        try:
            message = decode(value, topic(name).value_type)
        except ContractError as err:
            self.state.refuse(name)
            log.warning("The view skipped %s[%s]@%s, which fails its contract: %s", name, partition, offset, err)
            return
        self.state.apply(name, message)
