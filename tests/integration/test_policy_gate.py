"""Retrain from market.trades on a real broker: a better challenger is promoted, a worse one rejected.

The data is constructed to hold a learnable edge that survives the costs: 1-minute bars of 6 trades
each; in bar t the takers buy 5 of the 6 trades or sell 5 of 6 (a coin flip s_t, so the bar's
``flow_imb`` is +-2/3), and the next bar's price moves by ``s_t * 30 bp`` (plus 10 bp of noise) from
its first trade to its last. A long-only policy that holds bar t+1 when ``flow_imb`` of bar t was
positive earns about 15 bp a bar on average and pays 6 bp (5 bp fee, 1 bp slippage) per position
change. The champion is first trained on an earlier stretch without the edge (the flow says
nothing about the next bar), so it cannot know it; the window on the topic has the edge.

1. retrain with the champion's recipe: the challenger learns the edge and is promoted;
2. retrain again on the same window: the challenger is bit-for-bit the version now serving (same
   records, same recipe, same seed), so its difference is zero and it is rejected;
3. retrain with far fewer steps (``--timesteps 512``): a worse challenger, rejected; run twice, the
   same challenger version and the same figures.
Every decision and its figures are on the registry (`tickflow policy history`).
"""

from __future__ import annotations

import math
import time
from pathlib import Path

import numpy as np
import pytest
from confluent_kafka import Producer

from contracts.client_config import producer_config
from contracts.messages import Side, Trade
from contracts.policy_registry import latest
from contracts.serde import encode
from contracts.topics import MARKET_TRADES, market_key
from streams.offline import closed_bars, features_frame
from tickflow.cli import main
from trader.policy.dataset import from_frame
from trader.policy.train import TrainConfig, train

FEATURES = ("ret_1", "flow_imb")
# A day ago, on a minute: the topic's retention (7 days) would delete records timestamped earlier at once.
START_MS = (time.time_ns() // 1_000_000 - 86_400_000) // 60_000 * 60_000
PER_BAR = 6
RECIPE = {"n_steps": 128, "batch_size": 128, "learning_rate": 3e-3}


def edge_trades(n_bars: int, edge_bp: float, seed: int, start_ms: int, symbol: str = "EDGEUSDT") -> list[Trade]:
    """Trades whose bar flow predicts the next bar's move by ``edge_bp`` (0: no edge); see the module."""
    rng = np.random.default_rng(seed)
    signs = rng.choice([-1.0, 1.0], size=n_bars)
    price, out = 100.0, []
    for t in range(n_bars):
        drift = (signs[t - 1] if t else 0.0) * edge_bp / 1e4
        close = price * math.exp(drift + rng.normal(0.0, 10 / 1e4))
        buy: list[Side] = ["buy"]
        sell: list[Side] = ["sell"]
        sides = buy * (5 if signs[t] > 0 else 1) + sell * (1 if signs[t] > 0 else 5)
        rng.shuffle(sides)
        for k in range(PER_BAR):
            ts = start_ms + t * 60_000 + k * 10_000 + 1
            out.append(Trade(schema_version=1, exchange="binance", symbol=symbol.replace("USDT", "-USDT"),
                             venue_symbol=symbol, trade_id=f"{symbol}-{t}-{k}",
                             price=round(price + (close - price) * (k + 1) / PER_BAR, 6), size=1.0, side=sides[k],
                             ts_event=ts, ts_ingest=ts))
        price = close
    return out


def produce(bootstrap: str, trades: list[Trade]) -> None:
    p = Producer(producer_config(bootstrap, {"linger.ms": 5}))
    for t in trades:  # the Kafka timestamp is the event time, as the window is read by Kafka time
        p.produce(MARKET_TRADES.name, encode(t), market_key(t.exchange, t.symbol), timestamp=t.ts_event)
    assert p.flush(30) == 0


def champion_without_edge(out: Path) -> str:
    trades = edge_trades(1200, 0.0, seed=11, start_ms=START_MS - 3 * 86_400_000)
    frame = features_frame(next(iter(closed_bars(trades).values())))
    data = from_frame(frame, FEATURES, "v1", source="no-edge", symbol="EDGEUSDT", candles=False)
    cfg = TrainConfig(algo="ppo", timesteps=2048, seed=3, every=1, episode_len=128, progress=False,
                      hyperparameters=RECIPE)
    return train(data, cfg, out).bundle.version


def retrain(policy_id: str, until: int, *extra: str) -> None:
    assert main(["retrain", "--policy-id", policy_id, "--window", "1d", "--until", str(until), "--resamples", "1000",
                 *extra]) == 0


@pytest.mark.usefixtures("shared_broker")
def test_retrain_promotes_the_better_challenger_and_rejects_the_worse(bootstrap: str, tmp_path: Path,
                                                                      monkeypatch: pytest.MonkeyPatch,
                                                                      capsys: pytest.CaptureFixture[str]) -> None:
    started = time.monotonic()
    monkeypatch.setenv("TICKFLOW_HOME", str(tmp_path / "home"))
    window = edge_trades(1200, 30.0, seed=5, start_ms=START_MS)
    produce(bootstrap, window + edge_trades(50, 30.0, seed=6, start_ms=START_MS, symbol="OTHERUSDT"))
    until = window[-1].ts_event + 60_000
    first = champion_without_edge(tmp_path / "champion")
    assert main(["policy", "promote", "edge", "--bundle", str(tmp_path / "champion")]) == 0

    retrain("edge", until)
    rec = latest(bootstrap, "edge")
    assert rec is not None and rec.decision.kind == "promoted", rec and rec.decision.reason
    better = rec.decision.version
    f = rec.decision.figures
    assert rec.serving is not None and rec.serving.version == better != first
    assert rec.previous is not None and rec.previous.version == first
    assert f["diff_lower"] > 0 and f["challenger"]["total_return"] > f["champion"]["total_return"]
    assert f["data"]["trades"] == len(window)  # the other symbol is left out
    assert rec.decision.training_window and rec.decision.test_window
    assert rec.decision.test_window.start_ts > rec.decision.training_window.end_ts  # scored out of sample

    retrain("edge", until)  # same window, same recipe: the same bundle as the one serving
    rec = latest(bootstrap, "edge")
    assert rec is not None and rec.decision.kind == "rejected" and rec.decision.version == better
    assert rec.decision.figures["mean_diff"] == 0.0 and rec.serving is not None and rec.serving.version == better

    worse = []
    for _ in range(2):
        retrain("edge", until, "--timesteps", "512")
        rec = latest(bootstrap, "edge")
        assert rec is not None and rec.decision.kind == "rejected", rec and rec.decision.reason
        assert rec.serving is not None and rec.serving.version == better
        worse.append(rec.decision)
    assert worse[0].version == worse[1].version != better
    assert worse[0].figures == worse[1].figures and worse[0].figures["diff_lower"] < 0

    capsys.readouterr()
    assert main(["policy", "history", "edge"]) == 0
    shown = capsys.readouterr().out
    assert [line.split()[2] for line in shown.splitlines() if line[:2] == "20"] == \
        ["promoted", "promoted", "rejected", "rejected", "rejected"]
    assert f"challenger {better}" in shown and "lower bound" in shown and "dsr" in shown
    print(f"retrain gate test: {time.monotonic() - started:.1f} s")
