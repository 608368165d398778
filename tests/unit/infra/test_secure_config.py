"""The secure cluster's settings without a broker: KAFKA_SASL_* parsed and refused, client settings, ACLs
under the topic prefix, the nodes' SASL keys."""

from __future__ import annotations

from pathlib import Path

import pytest
from confluent_kafka.admin import AclOperation, ResourcePatternType, ResourceType

from contracts.client_config import client_config, producer_config
from contracts.errors import SettingsError
from contracts.settings import kafka_auth
from infra.kafka import acls
from infra.kafka.secure import Credentials


def test_sasl_settings_are_read_and_a_half_set_or_unknown_one_is_named() -> None:
    assert kafka_auth({}) is None
    auth = kafka_auth({"KAFKA_SASL_USERNAME": "ingestor", "KAFKA_SASL_PASSWORD": "pw"})
    assert auth is not None and auth.mechanism == "SCRAM-SHA-512" and "pw" not in repr(auth)
    with pytest.raises(SettingsError, match="KAFKA_SASL_USERNAME='ingestor' has no KAFKA_SASL_PASSWORD"):
        kafka_auth({"KAFKA_SASL_USERNAME": "ingestor"})
    with pytest.raises(SettingsError, match="KAFKA_SASL_PASSWORD is set but KAFKA_SASL_USERNAME is not"):
        kafka_auth({"KAFKA_SASL_PASSWORD": "pw"})
    with pytest.raises(SettingsError, match="KAFKA_SASL_MECHANISM='GSSAPI' is refused"):
        kafka_auth({"KAFKA_SASL_USERNAME": "a", "KAFKA_SASL_PASSWORD": "b", "KAFKA_SASL_MECHANISM": "gssapi"})


def test_every_client_logs_in_when_a_username_is_set(monkeypatch: pytest.MonkeyPatch) -> None:
    assert client_config("h:1", {}) == {"bootstrap.servers": "h:1"}
    monkeypatch.setenv("KAFKA_SASL_USERNAME", "paper")
    monkeypatch.setenv("KAFKA_SASL_PASSWORD", "pw")
    config = producer_config("h:1")
    assert (config["security.protocol"], config["sasl.mechanism"], config["sasl.username"]) == (
        "SASL_PLAINTEXT", "SCRAM-SHA-512", "paper")


def test_acls_follow_the_topic_prefix(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TICKFLOW_TOPIC_PREFIX", "dev.")
    writes = {(b.principal, b.name, b.resource_pattern_type) for b in acls.bindings()
              if b.restype == ResourceType.TOPIC and b.operation == AclOperation.WRITE}
    assert ("User:ingestor", "dev.market.", ResourcePatternType.PREFIXED) in writes
    assert ("User:trader", "dev.orders", ResourcePatternType.LITERAL) in writes
    assert ("User:paper", "dev.fills", ResourcePatternType.LITERAL) in writes
    assert ("User:trader", "dev.orders.shadow", ResourcePatternType.LITERAL) in writes  # the shadow lane
    assert ("User:paper", "dev.fills.shadow", ResourcePatternType.LITERAL) in writes
    assert not any(p == "User:ingestor" and "orders" in n for p, n, _ in writes)
    assert not any(n.startswith(("market.", "orders", "signals.")) for _, n, _ in writes)  # all under dev.


def test_credentials_are_private_files_and_go_into_the_storage_and_the_nodes(tmp_path: Path) -> None:
    creds = Credentials.create(tmp_path / "credentials")
    assert (tmp_path / "credentials").stat().st_mode & 0o777 == 0o700
    assert creds.file("ingestor").stat().st_mode & 0o777 == 0o600
    assert Credentials.read(tmp_path / "credentials").passwords == creds.passwords
    assert kafka_auth(creds.env("streams")) is not None
    scram = creds.scram_args()
    assert scram.count("--add-scram") == 5
    assert f"SCRAM-SHA-512=[name=admin,password={creds.passwords['admin']}]" in scram
    props = creds.broker_properties("127.0.0.1", 9092, 9093)
    assert props["listeners"] == "SASL_PLAINTEXT://127.0.0.1:9092,CONTROLLER://127.0.0.1:9093"
    assert props["super.users"] == "User:admin;User:controller"
    assert props["allow.everyone.if.no.acl.found"] == "false"


def test_the_views_feed_logs_in_to_a_secure_cluster(monkeypatch: pytest.MonkeyPatch) -> None:
    from tickflow.view.feed import TopicFeed
    from tickflow.view.state import ViewState

    monkeypatch.setenv("KAFKA_SASL_USERNAME", "admin")
    monkeypatch.setenv("KAFKA_SASL_PASSWORD", "pw")
    config = TopicFeed("h:1", ViewState()).consumer_config()
    assert (config["bootstrap.servers"], config["security.protocol"], config["sasl.username"]) == (
        "h:1", "SASL_PLAINTEXT", "admin")
    assert config["group.id"].startswith("tickflow-view-") and config["enable.auto.commit"] is False
