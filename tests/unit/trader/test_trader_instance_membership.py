"""An instance's share of the features (trader.instances), without Kafka: which symbols it owns, what it refuses,
which offsets it commits, and what its /health says about it."""

from __future__ import annotations

import json
import urllib.request
from pathlib import Path

import pytest

from contracts import market_key
from contracts.partitioning import partition_of
from tests.unit.trader.trader_support import feature, linear_bundle
from trader.handler import PolicyTrader
from trader.instances import Membership, check_instance
from trader.status import StatusServer

T0 = 1_750_000_000_000 - 1_750_000_000_000 % 60_000


def test_an_instance_owns_the_symbols_of_its_partitions_and_refuses_a_vector_keyed_elsewhere() -> None:
    mb = Membership("a", "signals.features", 4)
    home = partition_of(market_key("binance", "ETH-USDT"), 4)
    assert not mb.owns("binance", "ETH-USDT")  # nothing assigned yet
    mb.assigned([home])
    assert mb.owns("binance", "ETH-USDT")
    assert mb.misplaced(feature(T0, 1.0), home) is None
    reason = mb.misplaced(feature(T0, 1.0), (home + 1) % 4)
    assert reason is not None and f"belongs on partition {home} of 4" in reason
    assert mb.snapshot_key("p1") == b"p1@a"


def test_an_instance_commits_after_what_it_decided_on_the_partitions_it_owns_now() -> None:
    class Record:
        def __init__(self, partition: int, offset: int) -> None:
            self.p, self.o = partition, offset

        def partition(self) -> int:
            return self.p

        def offset(self) -> int:
            return self.o

    mb = Membership("a", "signals.features", 4)
    mb.assigned([0, 2])
    generation = mb.generation
    for p, off in ((0, 5), (2, 9), (0, 6)):
        mb.decided(Record(p, off))  # type: ignore[arg-type]  # what the service reads of a record
    assert [(tp.partition, tp.offset) for tp in mb.offsets()] == [(0, 7), (2, 10)]
    mb.revoked()
    assert mb.offsets() == [] and mb.generation == generation + 1


@pytest.mark.parametrize("name", ["", "-a", "a b", "a/b", "x" * 41])
def test_an_instance_id_that_cannot_name_a_transactional_id_is_refused(name: str) -> None:
    with pytest.raises(ValueError, match=r"instance id .* is refused"):
        check_instance(name)


def test_health_names_the_instance_and_its_partitions(tmp_path: Path) -> None:
    trader = PolicyTrader(linear_bundle(tmp_path / "b"), "p1", notional=1000.0, capital=10_000.0)
    server = StatusServer(trader, [], "127.0.0.1", 0)
    try:
        server.owner = {"instance": "a", "partitions": [0, 2], "topic": "signals.features"}
        with urllib.request.urlopen(f"http://127.0.0.1:{server.port}/health", timeout=5) as r:
            health = json.loads(r.read())
        assert (health["instance"], health["partitions"]) == ("a", [0, 2])
    finally:
        server.close()
