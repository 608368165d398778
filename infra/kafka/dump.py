"""Read a topic from the beginning: `tickflow topic dump`."""

from __future__ import annotations

import json
import sys
import time
import uuid
from collections.abc import Iterator
from typing import TextIO

from confluent_kafka import OFFSET_BEGINNING, Consumer, KafkaException, Message, TopicPartition


def read_topic(bootstrap: str, name: str, idle_timeout: float, limit: int | None = None) -> Iterator[Message]:
    """Yield the topic's committed records from offset 0 until none arrives for ``idle_timeout`` s."""
    consumer = Consumer({
        "bootstrap.servers": bootstrap,
        "group.id": f"tickflow-dump-{uuid.uuid4().hex[:8]}",
        "enable.auto.commit": False,
        "isolation.level": "read_committed",
        "log_level": 3,
    })
    try:
        md = consumer.list_topics(name, timeout=10)
        meta = md.topics.get(name)
        if meta is None or meta.error is not None or not meta.partitions:
            raise KafkaException(f"topic {name!r} does not exist at {bootstrap}")
        consumer.assign([TopicPartition(name, p, OFFSET_BEGINNING) for p in meta.partitions])
        seen = 0
        last = time.monotonic()
        while limit is None or seen < limit:
            batch = consumer.consume(num_messages=1000, timeout=0.2)
            if not batch:
                if time.monotonic() - last >= idle_timeout:
                    return
                continue
            last = time.monotonic()
            for msg in batch:
                if msg.error():
                    raise KafkaException(msg.error())
                yield msg
                seen += 1
                if limit is not None and seen >= limit:
                    return
    finally:
        consumer.close()


def dump(bootstrap: str, name: str, idle_timeout: float, limit: int | None, with_meta: bool,
         out: TextIO = sys.stdout) -> int:
    """Print values as JSON lines (or with topic/partition/offset/key when ``with_meta``)."""
    count = 0
    for msg in read_topic(bootstrap, name, idle_timeout, limit):
        value = (msg.value() or b"").decode("utf-8", errors="replace")
        if with_meta:
            key = (msg.key() or b"").decode("utf-8", errors="replace")
            try:
                parsed: object = json.loads(value)
            except ValueError:
                parsed = value
            record = {"partition": msg.partition(), "offset": msg.offset(), "key": key, "value": parsed}
            out.write(json.dumps(record) + "\n")
        else:
            out.write(value + "\n")
        count += 1
    out.flush()
    return count
