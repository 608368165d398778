"""Small feature frames of the offline builder's shape, for tests that must not build real features."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from contracts import V1, FeatureVector
from contracts.feature_schema import V1 as V1_NAMES
from trader.policy.bundle import GOLDEN_CASES, Bundle, write
from trader.policy.runtime import Layer

NAMES = ("ret_1", "ret_5", "ret_15", "ret_60", "rv_20")  # a selection of feature schema v1, in its order


def synthetic_frame(n: int = 3000, seed: int = 1, drift: float = 0.0) -> pd.DataFrame:
    """Random-walk closes with features that partly predict the next return (so learning is possible)."""
    rng = np.random.default_rng(seed)
    signal = rng.normal(size=n)
    rets = drift + 0.001 * (0.5 * np.r_[0.0, signal[:-1]] + rng.normal(size=n))
    close = 100 * np.exp(np.cumsum(rets))
    frame = pd.DataFrame({"ts": (np.arange(n) + 1) * 60_000, "window_start": np.arange(n) * 60_000,
                          "open": np.r_[100.0, close[:-1]], "close": close, "ready": True})
    frame[NAMES[0]] = signal
    for k in range(1, len(NAMES)):
        frame[NAMES[k]] = rng.normal(size=n)
    return frame


def linear_bundle(out: Path, names: tuple[str, ...] = NAMES, every: int = 1, schema: str = "v1") -> Bundle:
    """A hand-made long-only bundle: long when the first feature is positive, flat otherwise."""
    n = len(names)
    weight = np.zeros((2, n + 1), np.float32)
    weight[1, 0] = 1.0
    layers = [Layer(weight, np.zeros(2, np.float32), "identity")]
    manifest = {"algo": "linear", "mode": "long_only", "action_map": [0.0, 1.0], "feature_schema": schema,
                "feature_names": list(names), "decision_every": every, "interval_s": 60,
                "costs": {"fee_bps": 5.0, "slippage_bps": 1.0, "impact_bps_per_10k": 0.0}}
    golden = [([(-1.0) ** k * (k + 1)] + [0.0] * (n - 1), float(k % 2)) for k in range(GOLDEN_CASES)]
    return write(out, layers, np.zeros(n), np.ones(n), manifest, golden)


def feature(ts: int, f0: float, close: float = 100.0, symbol: str = "ETH-USDT", ready: bool = True,
            names: tuple[str, ...] = NAMES) -> FeatureVector:
    values: dict[str, float | None] = {n: 0.0 for n in V1_NAMES}  # a vector carries its whole schema
    values[names[0]] = f0
    return FeatureVector(schema_version=V1, exchange="binance", symbol=symbol, interval_s=60, ts=ts,
                         feature_schema="v1", ready=ready, features=values, close=close)
