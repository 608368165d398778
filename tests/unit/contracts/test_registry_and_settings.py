from __future__ import annotations

import msgspec
import pytest

from contracts import REGISTRY, SettingsError, topic
from contracts.settings import kafka_bootstrap, load


def test_registry_declares_every_topic_of_the_architecture() -> None:
    for name in ("market.trades", "market.events", "market.trades.dlq", "signals.bars",
                 "signals.features", "orders", "fills", "portfolio"):
        assert name in REGISTRY


def test_every_consumed_topic_has_a_dead_letter_topic() -> None:
    for name in ("market.trades", "signals.bars", "signals.features", "orders", "fills"):
        assert topic(name).dlq.name == f"{name}.dlq"
        assert topic(name).dlq.name in REGISTRY


def test_unknown_topic_names_the_known_ones() -> None:
    with pytest.raises(KeyError, match=r"market\.trades"):
        topic("market.trade")


def test_bootstrap_default_and_bad_value() -> None:
    assert kafka_bootstrap({}) == "127.0.0.1:9092"
    assert kafka_bootstrap({"KAFKA_BOOTSTRAP": "a:1,b:2"}) == "a:1,b:2"
    with pytest.raises(SettingsError, match="KAFKA_BOOTSTRAP='localhost'"):
        kafka_bootstrap({"KAFKA_BOOTSTRAP": "localhost"})


class Risk(msgspec.Struct, frozen=True):
    max_drawdown: float = 0.2


class Svc(msgspec.Struct, frozen=True):
    interval_s: int = 60
    risk: Risk = Risk()


def test_settings_from_nested_environment_names() -> None:
    s = load(Svc, "SVC", {"SVC__INTERVAL_S": "5", "SVC__RISK__MAX_DRAWDOWN": "0.1"})
    assert s == Svc(5, Risk(0.1))
    assert load(Svc, "SVC", {}) == Svc()


def test_bad_setting_names_the_variable() -> None:
    with pytest.raises(SettingsError, match="SVC__RISK__MAX_DRAWDOWN='lots'"):
        load(Svc, "SVC", {"SVC__RISK__MAX_DRAWDOWN": "lots"})


def test_a_topic_prefix_is_read_when_a_name_is_asked_for(monkeypatch: pytest.MonkeyPatch) -> None:
    from contracts.topics import MARKET_TRADES, PREFIX_ENV, prefixed

    assert MARKET_TRADES.name == "market.trades" and prefixed("ksql-bars") == "ksql-bars"
    monkeypatch.setenv(PREFIX_ENV, "dev.")
    assert MARKET_TRADES.name == "dev.market.trades" and MARKET_TRADES.dlq.name == "dev.market.trades.dlq"
    assert prefixed("ksql-bars") == "dev.ksql-bars"
    assert sorted(REGISTRY) == sorted(f"dev.{t.base}" for t in REGISTRY.values()) and len(REGISTRY) == 21
    assert topic("orders") is topic("dev.orders") is REGISTRY["dev.orders"]
    assert "orders" not in REGISTRY  # the registry holds names as they are on the broker
    with pytest.raises(KeyError, match=r"prefix 'dev\.'"):
        topic("prod.orders")


@pytest.mark.parametrize("bad", ["dev/", "a b.", "été.", "x" * 201])
def test_a_prefix_kafka_refuses_names_the_setting(monkeypatch: pytest.MonkeyPatch, bad: str) -> None:
    from contracts.topics import PREFIX_ENV, SIGNALS_BARS

    monkeypatch.setenv(PREFIX_ENV, bad)
    with pytest.raises(SettingsError, match="TICKFLOW_TOPIC_PREFIX"):
        _ = SIGNALS_BARS.name
