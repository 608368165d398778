"""Who may write where, on a real three-node secure cluster (`tickflow kafka start --nodes 3 --secure`):
SASL/SCRAM-SHA-512 logins, the services' ACLs under a topic prefix, and services run with their own
credentials. One cluster start for the module."""

from __future__ import annotations

import subprocess
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from confluent_kafka import KafkaError, KafkaException, Producer
from confluent_kafka.admin import AdminClient, NewTopic

from contracts.client_config import client_config, producer_config
from contracts.history import binance_dump_trades
from contracts.topic_reader import end_offsets, read_to_end
from contracts.topics import MARKET_TRADES, ORDERS, SIGNALS_BARS
from infra.kafka import acls
from infra.kafka.broker import BrokerError
from infra.kafka.cluster import Layout, LocalCluster
from infra.kafka.secure import Credentials
from tests.helpers import cli_env, tickflow_cmd
from tests.integration.ingest_kafka_support import N_TRADES, TRADES_CSV
from tests.integration.streams_support import Worker
from tests.integration.test_cluster import NODES, _say, free_base_port
from tests.integration.test_streams_worker import INTERVALS, _expected, assert_as_offline, collect

pytestmark = pytest.mark.integration
PREFIX = "sec."  # the ACLs must follow the environment's topic prefix


@pytest.fixture(scope="module")
def secure(tmp_path_factory: pytest.TempPathFactory, pytestconfig: pytest.Config) -> Iterator[
        tuple[Layout, Credentials]]:
    home = tmp_path_factory.mktemp("kafka-secure")
    local = LocalCluster(home)
    with pytest.MonkeyPatch.context() as env:
        env.setenv("TICKFLOW_TOPIC_PREFIX", PREFIX)
        for var in ("KAFKA_SASL_USERNAME", "KAFKA_SASL_PASSWORD", "KAFKA_SASL_MECHANISM"):
            env.delenv(var, raising=False)
        started = time.monotonic()
        try:
            layout = local.start(NODES, free_base_port(), timeout=180, die_with_parent=True, secure=True)
        except (BrokerError, TimeoutError) as err:
            pytest.fail(f"the secure three-node cluster did not start: {err}", pytrace=False)
        creds = local.credentials(layout)
        assert creds is not None
        _say(pytestconfig, f"secure: {NODES} nodes ready at {layout.bootstrap} in {time.monotonic() - started:.1f}s")
        yield layout, creds
        local.stop()


def _produce(bootstrap: str, topic: str, env: dict[str, str]) -> KafkaError | None:
    """One record to ``topic`` as the principal ``env`` names; the delivery's error (None: acknowledged)."""
    errors: list[KafkaError | None] = []
    with pytest.MonkeyPatch.context() as mp:
        for k, v in env.items():
            mp.setenv(k, v)
        producer = Producer(producer_config(bootstrap, {"linger.ms": 0, "message.timeout.ms": 20_000}))
    producer.produce(topic, b"{}", b"k", on_delivery=lambda err, _msg: errors.append(err))
    producer.flush(30)
    assert len(errors) == 1, f"no delivery report for {topic} within 30 s"
    return errors[0]


def test_a_client_without_credentials_or_with_a_wrong_password_is_refused(
        secure: tuple[Layout, Credentials], tmp_path: Path) -> None:
    layout, creds = secure
    anonymous = AdminClient({"bootstrap.servers": layout.bootstrap, "log_level": 0})
    with pytest.raises(KafkaException) as refused:
        anonymous.list_topics(timeout=5)
    assert refused.value.args[0].code() == KafkaError._TRANSPORT
    wrong = {**creds.env("ingestor"), "KAFKA_SASL_PASSWORD": "not-the-password"}
    seen: list[KafkaError] = []
    config: dict[str, Any] = {**client_config(layout.bootstrap, wrong), "log_level": 0, "error_cb": seen.append}
    client = AdminClient(config)
    with pytest.raises(KafkaException):
        client.list_topics(timeout=5)
    client.poll(0)
    assert KafkaError._AUTHENTICATION in {e.code() for e in seen}, seen
    # the one-line error a command prints without credentials
    env = cli_env(layout.bootstrap, tmp_path)
    done = subprocess.run(tickflow_cmd("kafka", "topics"), env=env, capture_output=True, text=True, timeout=60)
    assert done.returncode != 0
    assert "answers only clients with KAFKA_SASL_USERNAME and KAFKA_SASL_PASSWORD" in done.stderr, done.stderr


def test_the_ingestors_principal_writes_market_trades_but_not_orders_nor_another_prefix(
        secure: tuple[Layout, Credentials], tmp_path: Path) -> None:
    layout, creds = secure
    ingestor = creds.env("ingestor")
    assert MARKET_TRADES.name == f"{PREFIX}market.trades"
    assert _produce(layout.bootstrap, MARKET_TRADES.name, ingestor) is None
    refused = _produce(layout.bootstrap, ORDERS.name, ingestor)
    assert refused is not None and refused.code() == KafkaError.TOPIC_AUTHORIZATION_FAILED, refused
    # another environment's market.trades (no prefix) on the same cluster: not the ingestor's to write
    other = AdminClient({**client_config(layout.bootstrap, creds.env("admin")), "log_level": 0})
    for fut in other.create_topics([NewTopic("market.trades", 1, 3)]).values():
        fut.result()
    refused = _produce(layout.bootstrap, "market.trades", ingestor)
    assert refused is not None and refused.code() == KafkaError.TOPIC_AUTHORIZATION_FAILED, refused
    # the trader's principal writes orders
    assert _produce(layout.bootstrap, ORDERS.name, creds.env("trader")) is None
    # `tickflow kafka acls` as admin (for a cluster not started here): the same table again, a no-op
    env = {**cli_env(layout.bootstrap, tmp_path), **creds.env("admin")}
    done = subprocess.run(tickflow_cmd("kafka", "acls"), env=env, capture_output=True, text=True, timeout=60)
    assert done.returncode == 0 and done.stdout.startswith(f"{len(acls.bindings())} ACL bindings for "), \
        done.stdout + done.stderr


def test_a_replay_and_a_streams_worker_run_with_their_own_credentials(
        secure: tuple[Layout, Credentials], tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
        pytestconfig: pytest.Config) -> None:
    """`tickflow ingest replay` as ingestor, `tickflow streams worker` as streams; the bars read back as the
    trader equal the offline ones."""
    layout, creds = secure
    bootstrap = layout.bootstrap
    started = time.monotonic()
    env = {**cli_env(bootstrap, tmp_path), **creds.env("ingestor")}
    done = subprocess.run(tickflow_cmd("ingest", "replay", str(TRADES_CSV), "--speed", "max", "--no-progress"),
                          env=env, capture_output=True, text=True, timeout=180)
    assert done.returncode == 0, done.stdout + done.stderr[-3000:]
    assert f"delivered {N_TRADES:,} of {N_TRADES:,} records" in done.stdout, done.stdout
    want = _expected(list(binance_dump_trades(TRADES_CSV, "BTCUSDT")), INTERVALS)
    for k, v in creds.env("streams").items():
        monkeypatch.setenv(k, v)
    worker = Worker(bootstrap, tmp_path / "worker")
    for k, v in creds.env("trader").items():  # the reader from here on: the trader may read signals.*
        monkeypatch.setenv(k, v)
    try:
        deadline = time.monotonic() + 150
        while sum(end_offsets(bootstrap, SIGNALS_BARS).values()) < len(want["signals.bars"]):
            assert worker.proc.poll() is None, "the worker exited: " + worker.tail()
            assert time.monotonic() < deadline, "the worker did not publish every bar in 150 s: " + worker.tail()
            time.sleep(0.5)
        got = collect(bootstrap)
    finally:
        code = worker.stop()
    assert code == 0, worker.tail()
    assert_as_offline(got, want)
    with pytest.raises(KafkaException, match="TOPIC_AUTHORIZATION_FAILED"):  # market.trades is not the trader's
        list(read_to_end(bootstrap, MARKET_TRADES))
    for k, v in creds.env("paper").items():  # the paper broker's is
        monkeypatch.setenv(k, v)
    trades = sum(1 for _ in read_to_end(bootstrap, MARKET_TRADES))
    _say(pytestconfig, f"secure: replay as ingestor and worker as streams: {len(got['signals.bars']):,} bars and "
         f"{len(got['signals.features']):,} features equal the offline ones ({trades:,} records on "
         f"{MARKET_TRADES.name}) in {time.monotonic() - started:.1f}s")
