"""The environment: both checkers, a hand-computed episode, and accounting properties."""

from __future__ import annotations

import math

import numpy as np
import pytest
from gymnasium.utils.env_checker import check_env as gym_check
from hypothesis import given, settings
from hypothesis import strategies as st
from stable_baselines3.common.env_checker import check_env as sb3_check

from contracts.costs import CostModel, CostSettings
from trader.env import TradingEnv


def _env(n: int = 400, mode: str = "long_only", **kw: object) -> TradingEnv:
    rng = np.random.default_rng(0)
    closes = 100 * np.exp(np.cumsum(rng.normal(0, 0.001, n)))
    opens = np.r_[100.0, closes[:-1]]
    return TradingEnv(rng.normal(size=(n, 4)).astype(np.float32), opens, closes, mode=mode,  # type: ignore[arg-type]
                      episode_len=50, **kw)  # type: ignore[arg-type]


@pytest.mark.parametrize("mode", ["long_only", "long_short"])
def test_env_passes_gymnasium_and_sb3_checkers(mode: str) -> None:
    gym_check(_env(mode=mode), skip_render_check=True)
    sb3_check(_env(mode=mode), warn=True)


def test_five_bar_episode_matches_a_hand_computation() -> None:
    # 6 bars -> 5 decisions. fee 10 bp, slippage 10 bp, long only; actions 1, 1, 0, 1, 0.
    opens = np.array([100.0, 101.0, 102.0, 104.0, 105.0, 103.0])
    closes = np.array([100.0, 102.0, 101.0, 105.0, 104.0, 106.0])
    env = TradingEnv(np.zeros((6, 2), np.float32), opens, closes, costs=CostModel(CostSettings(
        fee_bps=10, slippage_bps=10)), episode_len=5, random_start=False)
    env.reset(seed=0)
    # step 0: buy 1/101 units at 101 * 1.001 = 101.101, fee 0.001 * 101.101 / 101 = 0.001001
    cash1 = 1 - 101.101 / 101 - 0.001001
    units = 1 / 101
    eq1 = cash1 + units * 102
    # step 1: hold; step 2: sell all at 104 * 0.999 = 103.896, fee 0.001 * units * 103.896
    eq2 = cash1 + units * 101
    sell_fee = 0.001 * units * 103.896
    cash3 = cash1 + units * 103.896 - sell_fee
    eq3 = cash3
    # step 3: buy cash3/105 units at 105.105 (equity at the open is cash3), fee 0.001 * cash3 / 105 * 105.105
    units4 = cash3 / 105
    buy_fee = 0.001 * units4 * 105.105
    cash4 = cash3 - units4 * 105.105 - buy_fee
    eq4 = cash4 + units4 * 104
    # step 4: sell at 103 * 0.999 = 102.897
    sell_fee2 = 0.001 * units4 * 102.897
    eq5 = cash4 + units4 * 102.897 - sell_fee2
    expected = [(math.log(eq1), 0.001001), (math.log(eq2 / eq1), 0.0), (math.log(eq3 / eq2), sell_fee),
                (math.log(eq4 / eq3), buy_fee), (math.log(eq5 / eq4), sell_fee2)]
    for k, (action, (reward, fee)) in enumerate(zip([1, 1, 0, 1, 0], expected, strict=True)):
        _, r, terminated, truncated, info = env.step(action)
        assert r == pytest.approx(reward, abs=1e-15), f"step {k}"
        assert info["fee"] == pytest.approx(fee, abs=1e-15), f"step {k}"
        assert not terminated and truncated == (k == 4)
    assert info["equity"] == pytest.approx(eq5, abs=1e-15)


def test_observation_carries_the_position() -> None:
    env = _env(mode="long_short")
    obs, _ = env.reset(seed=1)
    assert obs[-1] == 0.0
    obs, *_ = env.step(0)
    assert obs[-1] == -1.0


def test_random_starts_differ_and_are_seeded() -> None:
    starts = {(_env().reset(seed=s)[1]["t"]) for s in range(10)}
    assert len(starts) > 1
    assert _env().reset(seed=3)[1]["t"] == _env().reset(seed=3)[1]["t"]


def test_nan_features_are_refused() -> None:
    feats = np.zeros((5, 2), np.float32)
    feats[1, 0] = np.nan
    with pytest.raises(ValueError, match="NaN"):
        TradingEnv(feats, np.ones(5), np.ones(5))


@settings(max_examples=40, deadline=None)
@given(st.lists(st.integers(0, 2), min_size=5, max_size=40), st.floats(0, 50), st.floats(0, 20))
def test_rewards_sum_to_log_equity_and_flat_costs_nothing(actions: list[int], fee: float, slip: float) -> None:
    env = _env(mode="long_short", costs=CostModel(CostSettings(fee_bps=fee, slippage_bps=slip)))
    env.reset(seed=2)
    total, equity, fees = 0.0, 1.0, 0.0
    for a in actions[:50]:
        _, r, _, trunc, info = env.step(a)
        total += r
        equity, fees = info["equity"], fees + info["fee"]
        if trunc:
            break
    assert total == pytest.approx(math.log(equity), abs=1e-9)
    assert fees >= 0
    env.reset(seed=2)
    for _ in range(10):
        _, r, *_ = env.step(1)  # flat in long_short
        assert r == 0.0
