"""Trades with a learnable, costed edge, and a champion trained where there is none (the retrain tests).

1-minute bars of 6 trades each; in bar t the takers buy 5 of the 6 trades or sell 5 of 6 (a coin flip
s_t, so the bar's ``flow_imb`` is +-2/3), and the next bar's price moves by ``s_t * edge_bp`` (plus 10 bp
of noise) from its first trade to its last (tests/integration/test_policy_gate.py says why it is learnable).
"""

from __future__ import annotations

import math
import time
from pathlib import Path

import numpy as np
from confluent_kafka import Producer

from contracts.client_config import producer_config
from contracts.messages import Side, Trade
from contracts.serde import encode
from contracts.topics import MARKET_TRADES, market_key
from streams.offline import closed_bars, features_frame
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
