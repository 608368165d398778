"""Admin operations against a broker: readiness, topics from the registry, listings."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable, Mapping
from typing import Any

from confluent_kafka import KafkaError, KafkaException
from confluent_kafka.admin import AdminClient, NewTopic

from contracts.broker_check import librdkafka_logger
from contracts.client_config import client_config
from contracts.kafka_io import replication
from contracts.topics import REGISTRY, Topic


def admin(bootstrap: str, quiet: bool = False, env: Mapping[str, str] | None = None) -> AdminClient:
    """An admin client with the SASL identity ``env`` names (default: the process's environment);
    ``quiet`` silences librdkafka's connection errors (expected while starting)."""
    config: dict[str, Any] = {**client_config(bootstrap, env), "log_level": 0 if quiet else 3,
                              "logger": librdkafka_logger()}
    return AdminClient(config)


def wait_ready(bootstrap: str, timeout: float, alive: Callable[[], bool] = lambda: True,
               env: Mapping[str, str] | None = None) -> None:
    """Return once the broker answers a metadata request; TimeoutError after ``timeout`` seconds."""
    client = admin(bootstrap, quiet=True, env=env)
    deadline = time.monotonic() + timeout
    last = "no answer yet"
    while time.monotonic() < deadline:
        if not alive():
            raise TimeoutError("the broker process exited during start")
        try:
            md = client.list_topics(timeout=1.0)
            if md.brokers:
                return
        except KafkaException as err:
            last = str(err)
        time.sleep(0.2)
    raise TimeoutError(last)


def ensure_topics(bootstrap: str, topics: Iterable[Topic] | None = None, timeout: float = 30.0,
                  env: Mapping[str, str] | None = None) -> list[str]:
    """Create the registry's topics (or the given ones) that do not exist yet; return those created, once
    every partition of them has a leader (a record produced or an offset asked for then finds them).

    Each gets min(3, brokers) replicas, and ``min.insync.replicas`` 2 from three replicas on."""
    wanted = list(REGISTRY.values()) if topics is None else list(topics)
    client = admin(bootstrap, env=env)
    md = client.list_topics(timeout=timeout)
    existing = set(md.topics)
    rf, min_isr = replication(len(md.brokers))
    new = [
        NewTopic(t.name, num_partitions=t.partitions, replication_factor=rf,
                 config={"cleanup.policy": t.cleanup, "min.insync.replicas": str(min_isr), **dict(t.configs)})
        for t in wanted if t.name not in existing
    ]
    if not new:
        return []
    created = []
    for name, fut in client.create_topics(new, operation_timeout=timeout).items():
        try:
            fut.result()
            created.append(name)
        except KafkaException as err:
            if err.args[0].code() != KafkaError.TOPIC_ALREADY_EXISTS:
                raise
    _wait_for_leaders(client, {t.name: t.partitions for t in wanted if t.name in created}, timeout)
    return created


def _wait_for_leaders(client: AdminClient, partitions: dict[str, int], timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while partitions:
        topics = client.list_topics(timeout=timeout).topics
        partitions = {name: n for name, n in partitions.items()
                      if name not in topics or topics[name].error is not None or len(topics[name].partitions) < n
                      or any(p.leader < 0 for p in topics[name].partitions.values())}
        if partitions and time.monotonic() > deadline:
            raise TimeoutError(f"topics without a leader {timeout:.0f}s after their creation: {sorted(partitions)}")
        if partitions:
            time.sleep(0.1)


def describe_topics(bootstrap: str, timeout: float = 10.0) -> dict[str, int]:
    """Topic name -> partition count, internal topics left out."""
    md = admin(bootstrap).list_topics(timeout=timeout)
    return {name: len(t.partitions) for name, t in sorted(md.topics.items()) if not name.startswith("__")}
