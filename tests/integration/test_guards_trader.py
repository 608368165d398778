"""The trader service on a real broker refuses, to the dead-letter topics, a feature record carrying 45,000
extra keys and a fill of an order it never sent (the two once moved its book), and still trades on a good
vector."""

from __future__ import annotations

import signal
import subprocess
import time
from collections.abc import Mapping
from pathlib import Path

import numpy as np
from confluent_kafka import Producer

from contracts import V1, DeadLetter, FeatureVector, Fill, Order, PortfolioSnapshot, decode, encode, market_key
from contracts.client_config import producer_config
from contracts.feature_schema import V1 as V1_NAMES
from contracts.topic_reader import read_to_end
from contracts.topics import FILLS, ORDERS, PORTFOLIO, SIGNALS_FEATURES
from infra.kafka.broker import BrokerInfo
from tests.helpers import REPO, cli_env, tickflow_cmd
from trader.policy import bundle
from trader.policy.runtime import Layer


def _bundle(out: Path) -> Path:
    """Long when ret_1 is positive, flat otherwise (a hand-made policy over all of schema v1)."""
    n = len(V1_NAMES)
    weight = np.zeros((2, n + 1), np.float32)
    weight[1, 0] = 1.0
    manifest = {"algo": "linear", "mode": "long_only", "action_map": [0.0, 1.0], "feature_schema": "v1",
                "feature_names": list(V1_NAMES), "decision_every": 1, "interval_s": 60, "costs": {}}
    golden = [([(-1.0) ** k * (k + 1)] + [0.0] * (n - 1), 0.0) for k in range(bundle.GOLDEN_CASES)]
    return bundle.write(out, [Layer(weight, np.zeros(2, np.float32), "identity")], np.zeros(n), np.ones(n),
                        manifest, golden).path


def _vector(ts: int, features: Mapping[str, float | None]) -> FeatureVector:
    return FeatureVector(schema_version=V1, exchange="binance", symbol="ETH-USDT", interval_s=60, ts=ts,
                         feature_schema="v1", ready=True, features=dict(features), close=100.0)


def _wait(path: Path, text: str, timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if text in path.read_text(errors="replace"):
            return
        time.sleep(0.2)
    raise AssertionError(f"{path.name} did not log {text!r}: {path.read_text(errors='replace')[-2000:]}")


def test_bloated_vectors_and_forged_fills_go_to_the_dlq(shared_broker: BrokerInfo, tmp_path: Path) -> None:
    info = shared_broker
    env = cli_env(info.bootstrap, tmp_path)
    env.update({"TRADER__HTTP_PORT": "-1"})
    log = tmp_path / "trader.log"
    with log.open("wb") as out:
        proc = subprocess.Popen(tickflow_cmd("trade", "--bundle", str(_bundle(tmp_path / "b")), "--policy-id", "p1"),
                                env=env, cwd=REPO, stdout=out, stderr=subprocess.STDOUT)
    try:
        _wait(log, f"consumes {SIGNALS_FEATURES.name}")
        producer = Producer(producer_config(info.bootstrap))
        key = market_key("binance", "ETH-USDT")
        good = {n: 0.0 for n in V1_NAMES}
        bloated = {**good, "ret_1": 1.0, **{f"junk_{i}": 0.0 for i in range(45_000)}}
        producer.produce(SIGNALS_FEATURES.name, encode(_vector(60_000, bloated)), key)
        forged = Fill(schema_version=V1, fill_id="forged-1", order_id="o-forged", policy_id="p1", exchange="binance",
                      symbol="ETH-USDT", side="buy", price=100.0, qty=10.0, fee=0.0, slippage=0.0, ts=60_000,
                      last=True)
        producer.produce(FILLS.name, encode(forged), key)
        producer.produce(SIGNALS_FEATURES.name, encode(_vector(120_000, {**good, "ret_1": 1.0})), key)
        producer.flush(30)
        _wait(log, "Order o-")
        deadline = time.monotonic() + 30  # and the bloated vector and the forged fill refused
        for dlq in (SIGNALS_FEATURES.dlq, FILLS.dlq):
            while not any(True for _ in read_to_end(info.bootstrap, dlq)):
                assert time.monotonic() < deadline, f"no dead letter on {dlq.name} within 30 s"
                time.sleep(0.2)
    finally:
        proc.send_signal(signal.SIGTERM)
        proc.wait(60)
    feature_letters = [decode(m.value() or b"", DeadLetter) for m in read_to_end(info.bootstrap, SIGNALS_FEATURES.dlq)]
    fill_letters = [decode(m.value() or b"", DeadLetter) for m in read_to_end(info.bootstrap, FILLS.dlq)]
    assert len(feature_letters) == 1 and "bytes" in feature_letters[0].reason, feature_letters
    assert len(fill_letters) == 1 and "never sent" in fill_letters[0].reason, fill_letters
    orders = [decode(m.value() or b"", Order) for m in read_to_end(info.bootstrap, ORDERS)]
    assert [o.feature_ts for o in orders] == [120_000]  # the good vector only
    snaps = [decode(m.value() or b"", PortfolioSnapshot) for m in read_to_end(info.bootstrap, PORTFOLIO)]
    assert snaps and snaps[-1].cash == 10_000.0  # the forged fill was not booked
