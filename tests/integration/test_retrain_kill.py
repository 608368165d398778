"""SIGKILL of `tickflow retrain` mid-training, run again: one decision, the uninterrupted run's, orders once.

The champion serves as "edge" and, the same bundle, as "ref". `tickflow retrain --policy-id edge` is
killed while it trains (its log says training began and never that it ended), then run again; "ref" is
retrained once without interruption on the same window. The champion trades "edge" throughout (its
features arrive half before the kill, half after) and "ref" beside it. Afterwards:

- the registry holds exactly one gate decision for edge's challenger, equal to ref's in everything but
  its wall-clock time (same challenger version, figures, windows, reason): retraining is deterministic;
- a third run on the same window writes nothing (the registry keeps the one decision: a promoted
  challenger is the version serving, a rejected one was decided on this evidence);
- the champion's orders are exactly once: no order id twice, and the same decisions as ref's.
"""

from __future__ import annotations

import signal
import subprocess
import time
from pathlib import Path

import msgspec
import pytest
from confluent_kafka import Producer

from contracts import FeatureVector, Order, decode, encode, market_key
from contracts.client_config import producer_config
from contracts.policy_registry import latest
from contracts.topic_reader import read_to_end
from contracts.topics import ORDERS, SIGNALS_FEATURES
from streams.offline import closed_bars, features_frame
from tests.helpers import REPO, cli_env, tickflow_cmd
from tests.integration.edge_support import START_MS, champion_without_edge, edge_trades, produce
from tickflow.cli import main
from trader.policy.dataset import feature_vectors

pytestmark = pytest.mark.integration


def _wait(path: Path, text: str, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if text in path.read_text(errors="replace"):
            return
        time.sleep(0.05)
    raise AssertionError(f"{path.name} did not log {text!r} within {timeout:.0f} s")


@pytest.mark.usefixtures("shared_broker")
def test_a_retrain_killed_mid_training_and_run_again_leaves_the_uninterrupted_run_s_one_decision(
        bootstrap: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    started = time.monotonic()
    home = tmp_path / "home"
    monkeypatch.setenv("TICKFLOW_HOME", str(home))
    trades = edge_trades(1200, 30.0, seed=5, start_ms=START_MS)
    produce(bootstrap, trades)
    until = trades[-1].ts_event + 60_000
    fvs = feature_vectors(features_frame(next(iter(closed_bars(trades).values()))), "EDGE-USDT")
    p = Producer(producer_config(bootstrap, {"linger.ms": 5}))

    def features(part: list[FeatureVector]) -> None:
        for fv in part:
            p.produce(SIGNALS_FEATURES.name, encode(fv), market_key(fv.exchange, fv.symbol))
        assert p.flush(30) == 0

    champion_without_edge(tmp_path / "champion")
    for pid in ("edge", "ref"):
        assert main(["policy", "promote", pid, "--bundle", str(tmp_path / "champion")]) == 0
    env = cli_env(bootstrap, home)
    env["TRADER__HTTP_PORT"] = "-1"
    traders = [subprocess.Popen(tickflow_cmd("trade", "--bundle", str(tmp_path / "champion"), "--policy-id", pid),
                                env=env, cwd=REPO, stdout=(tmp_path / f"trade-{pid}.log").open("wb"),
                                stderr=subprocess.STDOUT) for pid in ("edge", "ref")]
    retrain = ["retrain", "--window", "1d", "--until", str(until), "--resamples", "1000"]
    try:
        features(fvs[: len(fvs) // 2])
        log = tmp_path / "retrain-killed.log"
        with log.open("wb") as out:
            killed = subprocess.Popen(tickflow_cmd(*retrain, "--policy-id", "edge"), env=env, cwd=REPO, stdout=out,
                                      stderr=subprocess.STDOUT)
        try:
            _wait(log, "Training PPO for", 120)  # at once: 2,048 steps take under a second on a quiet machine
            killed.send_signal(signal.SIGKILL)
            killed.wait(30)
        finally:
            killed.kill()
        assert "Trained PPO" not in log.read_text(errors="replace"), "the kill should land mid-training"
        assert latest(bootstrap, "edge").revision == 1  # type: ignore[union-attr]  # nothing was written
        features(fvs[len(fvs) // 2:])

        assert main([*retrain, "--policy-id", "edge"]) == 0  # run again
        assert main([*retrain, "--policy-id", "ref"]) == 0  # uninterrupted
        edge, ref = latest(bootstrap, "edge"), latest(bootstrap, "ref")
        assert edge is not None and ref is not None
        gate = [d for d in edge.history if d.by == "gate"]
        assert len(gate) == 1
        same = lambda d: {k: v for k, v in msgspec.to_builtins(d).items() if k != "ts"}  # noqa: E731
        assert same(gate[0]) == same(ref.decision)
        assert main([*retrain, "--policy-id", "edge"]) == 0  # once more, as after a kill between write and exit
        assert latest(bootstrap, "edge") == edge

        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            orders = [decode(m.value() or b"", Order) for m in read_to_end(bootstrap, ORDERS)]
            if {o.feature_ts for o in orders if o.policy_id == "edge"} == \
                    {o.feature_ts for o in orders if o.policy_id == "ref"} and orders:
                break
            time.sleep(1)
    finally:
        for t in traders:
            t.send_signal(signal.SIGTERM)
        for t in traders:
            t.wait(60)
    by = {pid: [o for o in orders if o.policy_id == pid] for pid in ("edge", "ref")}
    assert by["edge"] and len({o.order_id for o in by["edge"]}) == len(by["edge"]), "an order twice"
    assert [(o.feature_ts, o.side, o.qty) for o in by["edge"]] == [(o.feature_ts, o.side, o.qty) for o in by["ref"]]
    print(f"retrain kill test: {time.monotonic() - started:.1f} s")
