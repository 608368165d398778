"""The training environment: one symbol's closed bars, a discrete target position, costs as in the paper broker.

Decisions are taken at decision bars: every bar, or with ``every=k`` the bars whose end is a multiple
of k intervals (epoch-aligned, as the live trader does). At decision bar t the agent sees the features
of bar t (closed) and its current target position, and picks a new target position. The trade is
filled at the open of bar t+1 with the shared cost model; the reward is the change of log equity from
the close of bar t to the close of the next decision bar, net of fees and slippage. Episodes start at
a random decision bar and are truncated after ``episode_len`` decisions. With ``books`` (a recording's
books, ``contracts.book_walk.BarBooks``, default off) the trade walks the book as it stood at bar t's end
instead, as the paper broker fills (``contracts.costs.rebalance_on_book``).
"""

from __future__ import annotations

from typing import Any, Literal

import gymnasium as gym
import numpy as np
from numpy.typing import NDArray

from contracts.book_walk import BarBooks
from contracts.costs import CostModel, log_return, rebalance, rebalance_on_book

Mode = Literal["long_only", "long_short"]
ACTION_MAPS: dict[str, tuple[float, ...]] = {"long_only": (0.0, 1.0), "long_short": (-1.0, 0.0, 1.0)}
OBS_CLIP = 5.0


def decision_bars(ts: NDArray[np.int64] | None, n: int, every: int, interval_s: int) -> NDArray[np.int64]:
    """Indices of the bars a decision is taken at: bar end a multiple of ``every`` intervals."""
    if every < 1:
        raise ValueError(f"decisions every {every} bars: must be at least 1")
    if every == 1 or ts is None:
        return np.arange(0, n, every, dtype=np.int64)
    return np.flatnonzero((np.asarray(ts) // (interval_s * 1000)) % every == 0).astype(np.int64)


def action_map(mode: str) -> tuple[float, ...]:
    try:
        return ACTION_MAPS[mode]
    except KeyError:
        raise ValueError(f"unknown position mode {mode!r}; choose one of {', '.join(ACTION_MAPS)}") from None


def observation(features: NDArray[np.float32], position: float) -> NDArray[np.float32]:
    """Normalised features (clipped) followed by the current target position."""
    obs = np.empty(features.shape[-1] + 1, dtype=np.float32)
    np.clip(features, -OBS_CLIP, OBS_CLIP, out=obs[:-1])
    obs[-1] = position
    return obs


class TradingEnv(gym.Env[NDArray[np.float32], np.int64]):
    """Discrete target-position trading on precomputed, normalised features."""

    metadata = {"render_modes": []}

    def __init__(self, features: NDArray[np.float32], opens: NDArray[np.float64], closes: NDArray[np.float64],
                 mode: Mode = "long_only", costs: CostModel | None = None, episode_len: int = 1024,
                 random_start: bool = True, every: int = 1, ts: NDArray[np.int64] | None = None,
                 interval_s: int = 60, books: BarBooks | None = None) -> None:
        super().__init__()
        if books is not None and len(books.books) != len(features):
            raise ValueError(f"books need one entry per bar: {len(books.books)} for {len(features)} bars")
        self.books = books
        if not (len(features) == len(opens) == len(closes)) or len(features) < 3:
            raise ValueError(f"features, opens and closes need one row per bar and at least 3 bars, got "
                             f"{len(features)}, {len(opens)}, {len(closes)}")
        if not np.isfinite(features).all():
            raise ValueError("features contain NaN or infinity: drop the warm-up rows before training")
        self.features = np.ascontiguousarray(features, dtype=np.float32)
        self.opens = [float(x) for x in opens]
        self.closes = [float(x) for x in closes]
        self.actions = action_map(mode)
        self.costs = costs or CostModel()
        steps = decision_bars(ts, len(features), every, interval_s)
        steps = steps[steps < len(features) - 1]
        # each decision bar with the bar its reward is marked at (the next decision bar, or the last bar)
        self.marks_at = np.r_[steps[1:], len(features) - 1].astype(np.int64).tolist()
        self.steps = steps.tolist()
        if len(self.steps) < 2:
            raise ValueError(f"only {len(self.steps)} decision bars: need at least 2 (every={every})")
        self.episode_len = max(1, min(episode_len, len(self.steps)))
        self.random_start = random_start
        n_obs = self.features.shape[1] + 1
        self.observation_space = gym.spaces.Box(-OBS_CLIP, OBS_CLIP, shape=(n_obs,), dtype=np.float32)
        self.action_space = gym.spaces.Discrete(len(self.actions))
        self._t = 0
        self._end = 0
        self._cash = 1.0
        self._units = 0.0
        self._position = 0.0

    def reset(self, *, seed: int | None = None,
              options: dict[str, Any] | None = None) -> tuple[NDArray[np.float32], dict[str, Any]]:
        super().reset(seed=seed)
        last_start = len(self.steps) - self.episode_len
        start = int(self.np_random.integers(0, last_start + 1)) if self.random_start and last_start > 0 else 0
        if options and "start" in options:
            start = int(options["start"])
        self._t, self._end = start, start + self.episode_len
        self._cash, self._units, self._position = 1.0, 0.0, 0.0
        bar = self.steps[start]
        return observation(self.features[bar], 0.0), {"t": bar, "equity": 1.0}

    def step(self, action: np.int64 | int) -> tuple[NDArray[np.float32], float, bool, bool, dict[str, Any]]:
        target = self.actions[int(action)]
        k = self._t
        t, mark = self.steps[k], self.marks_at[k]
        before = self._cash + self._units * self.closes[t]
        fee = slippage = 0.0
        if target != self._position:
            book = self.books.books[t] if self.books is not None else None
            if self.books is not None and book is not None:
                self._cash, self._units, ex, _ = rebalance_on_book(self._cash, self._units, target, self.opens[t + 1],
                                                                   self.costs, book, self.books.notional)
            else:
                self._cash, self._units, ex, _ = rebalance(self._cash, self._units, target, self.opens[t + 1],
                                                           self.costs)
            fee, slippage = ex.fee, ex.slippage
            self._position = target
        self._t = k + 1
        after = self._cash + self._units * self.closes[mark]
        reward = log_return(before, after)
        terminated = after <= 0.0
        truncated = self._t >= self._end or self._t >= len(self.steps)
        info = {"t": mark, "equity": after, "fee": fee, "slippage": slippage, "position": target}
        return observation(self.features[mark], self._position), reward, terminated, truncated, info
