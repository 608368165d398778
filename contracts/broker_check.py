"""Is a Kafka broker there? The one check every command that needs Kafka makes before it starts.

A TCP connection to each ``KAFKA_BOOTSTRAP`` address first (refused or timed out is said at once), then
one metadata request, so a command fails within a few seconds with one line naming the address and what
to run, instead of retrying for minutes. librdkafka's own log lines go to the ``librdkafka`` logger at
DEBUG, never to the terminal.
"""

from __future__ import annotations

import logging
import socket
import time
from typing import Any

from contracts.client_config import client_config
from contracts.settings import kafka_auth, kafka_bootstrap

log = logging.getLogger(__name__)

CONNECT_TIMEOUT_S = 2.0
METADATA_TIMEOUT_S = 4.0


class BrokerUnreachable(RuntimeError):
    """No Kafka broker answers at KAFKA_BOOTSTRAP. The message names the address and the fix."""


class DebugLogger(logging.LoggerAdapter[logging.Logger]):
    """librdkafka's lines (its FAIL and ERROR included) logged at DEBUG: a command reports the problem once."""

    def log(self, level: int, msg: object, *args: object, **kwargs: object) -> None:
        super().log(logging.DEBUG, msg, *args, **kwargs)  # type: ignore[arg-type]


def librdkafka_logger() -> DebugLogger:
    """The ``logger`` to give a confluent-kafka client so that its log lines stay at DEBUG."""
    return DebugLogger(logging.getLogger("librdkafka"), {})


def _tcp_problem(address: str) -> str | None:
    host, _, port = address.rpartition(":")
    try:
        with socket.create_connection((host.strip("[]"), int(port)), timeout=CONNECT_TIMEOUT_S):
            return None
    except OSError as err:
        return err.strerror or type(err).__name__


def require_broker(bootstrap: str | None = None) -> str:
    """Return the bootstrap address once a broker there answers a metadata request; else BrokerUnreachable."""
    from confluent_kafka import KafkaException
    from confluent_kafka.admin import AdminClient

    address = bootstrap or kafka_bootstrap()
    started = time.monotonic()
    problems = {a: _tcp_problem(a) for a in address.split(",")}
    if all(problems.values()):
        said = "; ".join(f"{a}: {p}" for a, p in problems.items())
        raise BrokerUnreachable(f"no Kafka broker at KAFKA_BOOTSTRAP={address} ({said}): start one with "
                                "`tickflow kafka start`, or set KAFKA_BOOTSTRAP to a running broker")
    refused: list[str] = []  # SASL failures librdkafka reports through error_cb
    config: dict[str, Any] = {**client_config(address), "logger": librdkafka_logger(),
                              "socket.connection.setup.timeout.ms": int(METADATA_TIMEOUT_S * 1000),
                              "error_cb": lambda e: refused.append(e.str()) if e.code() == e._AUTHENTICATION else None}
    client = AdminClient(config)
    try:
        md = client.list_topics(timeout=METADATA_TIMEOUT_S)
    except KafkaException as err:
        client.poll(0)  # serves error_cb
        auth = kafka_auth()
        if refused and auth is not None:
            raise BrokerUnreachable(f"KAFKA_BOOTSTRAP={address} refused KAFKA_SASL_USERNAME={auth.username!r} "
                                    f"({refused[0]}): check KAFKA_SASL_PASSWORD and KAFKA_SASL_MECHANISM") from err
        if auth is None:
            raise BrokerUnreachable(f"KAFKA_BOOTSTRAP={address} accepts connections but did not answer "
                                    f"({err.args[0].str()}): a secure cluster (`tickflow kafka start --secure`) "
                                    "answers only clients with KAFKA_SASL_USERNAME and KAFKA_SASL_PASSWORD; "
                                    "otherwise, is it Kafka, and is it still starting?") from err
        raise BrokerUnreachable(f"KAFKA_BOOTSTRAP={address} accepts connections but did not answer as a Kafka "
                                f"broker within {METADATA_TIMEOUT_S:.0f} s ({err.args[0].str()}): is it Kafka, "
                                "and is it still starting?") from err
    if not md.brokers:
        raise BrokerUnreachable(f"KAFKA_BOOTSTRAP={address} answered with no brokers: is it still starting?")
    log.debug("Kafka at %s answered in %.2f s (%d brokers).", address, time.monotonic() - started, len(md.brokers))
    return address
