"""Features v1, incrementally: ``FeatureEngine.update(bar) -> values``, one engine per key and interval.

The Faust agent and the offline builder both call this class, on the same bars, so online and offline
features are the same numbers. The definitions are in ``contracts/feature_schema.py`` (a bundle pins
them). Statistics are recomputed over their (short) windows at each bar rather than kept as running
sums, so no rounding error accumulates over a long replay; z-scores work on deviations from the
newest value, which avoids cancellation. The state is plain numbers (``to_builtins`` /
``from_builtins``) and round-trips exactly.
"""

from __future__ import annotations

import math
from collections import deque
from collections.abc import Sequence
from itertools import islice
from operator import mul
from typing import Any, Protocol

from contracts.feature_schema import FEATURE_NAMES, WARMUP_BARS

NAN = math.nan
_RET_N = (1, 5, 15, 60)
_RV_N = (20, 60)
_Z_N = 20
_A12, _A26, _A9, _A10 = 2 / 13, 2 / 27, 2 / 10, 2 / 11
_A_RSI = 1 / 14
_MAX_CLOSES = max(_RET_N) + 1
_MAX_RETS = max(_RV_N)
_WARMUP = tuple(WARMUP_BARS[name] for name in FEATURE_NAMES)
_WARM = max(_WARMUP)  # from this update on, no value is NaN for warming up


class BarLike(Protocol):
    """What the engine reads from a bar (contracts.Bar and streams.bars.ClosedBar both fit)."""

    @property
    def close(self) -> float: ...
    @property
    def vwap(self) -> float: ...
    @property
    def volume(self) -> float: ...
    @property
    def buy_volume(self) -> float: ...
    @property
    def sell_volume(self) -> float: ...
    @property
    def trades(self) -> int: ...


def zscore(values: Sequence[float]) -> float:
    """z-score of the last value within ``values`` (population std); 0 when all values are equal."""
    last = values[-1]
    n = len(values)
    dev = [v - last for v in values]
    mean = sum(dev) / n
    centred = [d - mean for d in dev]
    var = sum(map(mul, centred, centred)) / n  # the same products, summed in the same order, as a loop would
    if var <= 0.0:
        return 0.0
    return -mean / math.sqrt(var)


def _ema(prev: float, x: float, alpha: float) -> float:
    return (1.0 - alpha) * prev + alpha * x


class FeatureEngine:
    """The features of one key and interval, updated once per closed bar."""

    __slots__ = ("closes", "counts", "ema12", "ema26", "flow_ema", "gain", "loss", "n", "rets", "signal", "squares",
                 "volumes")

    def __init__(self) -> None:
        self.n = 0
        self.closes: deque[float] = deque(maxlen=_MAX_CLOSES)
        self.rets: deque[float] = deque(maxlen=_MAX_RETS)
        self.squares: deque[float] = deque(maxlen=_MAX_RETS)  # r * r of each of rets (not state: derived)
        self.volumes: deque[float] = deque(maxlen=_Z_N)
        self.counts: deque[float] = deque(maxlen=_Z_N)
        self.ema12 = self.ema26 = self.signal = self.gain = self.loss = self.flow_ema = 0.0

    @property
    def ready(self) -> bool:
        """True once every feature has a value (the last update returned no NaN)."""
        return self.n > max(_WARMUP)

    def update(self, bar: BarLike) -> list[float]:
        """Apply one closed bar; return the values in FEATURE_NAMES order, NaN while a feature warms up."""
        c = bar.close
        i = self.n
        closes = self.closes
        if i == 0:
            self.ema12 = self.ema26 = c
            self.signal = 0.0
        else:
            prev = closes[-1]
            r = math.log(c / prev)
            self.rets.append(r)
            self.squares.append(r * r)
            diff = c - prev
            g, lo = (diff, 0.0) if diff > 0 else (0.0, -diff)
            if i == 1:
                self.gain, self.loss = g, lo
            else:
                self.gain = _ema(self.gain, g, _A_RSI)
                self.loss = _ema(self.loss, lo, _A_RSI)
            self.ema12 = _ema(self.ema12, c, _A12)
            self.ema26 = _ema(self.ema26, c, _A26)
        closes.append(c)
        macd = self.ema12 / self.ema26 - 1.0
        if i > 0:
            self.signal = _ema(self.signal, macd, _A9)
        total = bar.buy_volume + bar.sell_volume
        flow = (bar.buy_volume - bar.sell_volume) / total if total > 0 else 0.0
        self.flow_ema = flow if i == 0 else _ema(self.flow_ema, flow, _A10)
        self.volumes.append(bar.volume)
        self.counts.append(float(bar.trades))
        self.n = i + 1

        squares = self.squares
        k = len(closes)
        m = len(squares)
        values = [math.log(c / closes[k - 1 - n]) if k > n else NAN for n in _RET_N]
        for n in _RV_N:  # the sum of the last n squared returns, oldest first
            values.append(math.sqrt(sum(islice(squares, m - n, None))) if m >= n else NAN)
        moved = self.gain + self.loss
        values.append(100.0 * self.gain / moved if moved > 0 else 50.0)
        values.append(macd)
        values.append(self.signal)
        values.append(zscore(list(islice(closes, k - _Z_N, None))) if k >= _Z_N else NAN)
        values.append(math.log(c / bar.vwap))
        values.append(zscore(self.volumes) if len(self.volumes) >= _Z_N else NAN)
        values.append(flow)
        values.append(self.flow_ema)
        values.append(zscore(self.counts) if len(self.counts) >= _Z_N else NAN)
        if i >= _WARM:
            return values
        return [v if i >= w else NAN for v, w in zip(values, _WARMUP, strict=True)]

    def to_builtins(self) -> list[Any]:
        return [self.n, list(self.closes), list(self.rets), list(self.volumes), list(self.counts), self.ema12,
                self.ema26, self.signal, self.gain, self.loss, self.flow_ema]

    @classmethod
    def from_builtins(cls, state: list[Any]) -> FeatureEngine:
        eng = cls()
        eng.n = state[0]
        eng.closes.extend(state[1])
        eng.rets.extend(state[2])
        eng.squares.extend(r * r for r in state[2])
        eng.volumes.extend(state[3])
        eng.counts.extend(state[4])
        eng.ema12, eng.ema26, eng.signal, eng.gain, eng.loss, eng.flow_ema = state[5:11]
        return eng
