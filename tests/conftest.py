"""Shared fixtures: one real Kafka broker for the whole run, and a factory for private ones.

The broker is never mocked and never skipped: when it cannot start, the run fails with the broker's
last log lines.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from infra.kafka.broker import BrokerError, BrokerInfo, LocalBroker, free_port


def _start(home: Path, config: pytest.Config) -> tuple[LocalBroker, BrokerInfo]:
    broker = LocalBroker(home, "127.0.0.1", free_port())
    try:
        info = broker.start(timeout=120, die_with_parent=True)
    except BrokerError as err:
        pytest.fail(f"the local Kafka broker did not start: {err}", pytrace=False)
    reporter = config.pluginmanager.get_plugin("terminalreporter")
    capture = config.pluginmanager.get_plugin("capturemanager")
    if reporter is not None and capture is not None:
        with capture.global_and_fixture_disabled():
            reporter.write_line(
                f"\nkafka: Apache Kafka {info.version} (KRaft) ready at {info.bootstrap} "
                f"in {info.ready_s:.2f}s, pid {info.pid}"
            )
    return broker, info


@pytest.fixture(scope="session")
def broker(tmp_path_factory: pytest.TempPathFactory, pytestconfig: pytest.Config) -> Iterator[BrokerInfo]:
    """One real broker for the whole test session, with the registry's topics created."""
    local, info = _start(tmp_path_factory.mktemp("kafka-session"), pytestconfig)
    previous = os.environ.get("KAFKA_BOOTSTRAP")
    os.environ["KAFKA_BOOTSTRAP"] = info.bootstrap
    yield info
    if previous is None:
        os.environ.pop("KAFKA_BOOTSTRAP", None)
    else:
        os.environ["KAFKA_BOOTSTRAP"] = previous
    local.stop()


@pytest.fixture
def bootstrap(broker: BrokerInfo) -> str:
    return broker.bootstrap


@pytest.fixture
def make_broker(tmp_path_factory: pytest.TempPathFactory, pytestconfig: pytest.Config) -> Iterator[
        Callable[[], BrokerInfo]]:
    """Start private brokers (empty registry topics) for tests that need a clean slate."""
    started: list[LocalBroker] = []

    def make() -> BrokerInfo:
        local, info = _start(tmp_path_factory.mktemp("kafka-private"), pytestconfig)
        started.append(local)
        return info

    yield make
    for local in started:
        local.stop()
