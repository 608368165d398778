"""Shared fixtures: one real Kafka broker for the whole run, topic prefixes on it, and private brokers.

The broker is never mocked and never skipped: when it cannot start, the run fails with the broker's
last log lines. A test that does not stop, kill or restart a broker takes ``shared_broker``: the session
broker under a topic prefix of the test's own (``TICKFLOW_TOPIC_PREFIX`` is set for the test, so the
names it reads from the registry are the ones the services it starts use). A test that stops, kills or
restarts a broker takes ``make_broker``. The number of brokers the run started (every JVM, those of
`tickflow kafka start` and the demo included) is printed at the end.
"""

from __future__ import annotations

import itertools
import os
import re
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from contracts.topics import PREFIX_ENV
from infra.kafka.admin import ensure_topics
from infra.kafka.broker import BrokerError, BrokerInfo, LocalBroker, free_port

_BASETEMP = pytest.StashKey[Path]()
_PREFIXES = itertools.count(1)


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


@pytest.fixture(scope="session", autouse=True)
def _remember_basetemp(tmp_path_factory: pytest.TempPathFactory, pytestconfig: pytest.Config) -> None:
    """Every broker of the run keeps its log under the run's base temporary directory: counted at the end."""
    pytestconfig.stash[_BASETEMP] = tmp_path_factory.getbasetemp()


def pytest_terminal_summary(terminalreporter: pytest.TerminalReporter, config: pytest.Config) -> None:
    basetemp = config.stash.get(_BASETEMP, None)
    if basetemp is None:
        return
    starts = sum(log.read_text(errors="replace").count("Kafka Server started")
                 for log in basetemp.rglob("logs/broker.log"))  # one node and cluster nodes
    terminalreporter.write_line(f"kafka: {starts} broker starts in this run")


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
def shared_broker(broker: BrokerInfo, request: pytest.FixtureRequest,
                  monkeypatch: pytest.MonkeyPatch) -> BrokerInfo:
    """The session broker under a topic prefix of this test's own, with the registry's topics created.

    Its topics, consumer groups, transactional ids and Faust app hold only what the test puts there.
    """
    name = re.sub(r"[^A-Za-z0-9]+", "-", request.node.name.removeprefix("test_"))[:40].strip("-")
    monkeypatch.setenv(PREFIX_ENV, f"t{next(_PREFIXES)}-{name}.")
    ensure_topics(broker.bootstrap)
    return broker


@pytest.fixture
def make_broker(tmp_path_factory: pytest.TempPathFactory, pytestconfig: pytest.Config) -> Iterator[
        Callable[[], BrokerInfo]]:
    """Start private brokers (empty registry topics) for tests that stop, kill or restart one."""
    started: list[LocalBroker] = []

    def make() -> BrokerInfo:
        local, info = _start(tmp_path_factory.mktemp("kafka-private"), pytestconfig)
        started.append(local)
        return info

    yield make
    for local in started:
        local.stop()
