"""Policy benchmarks: the promotion gate on 30 days of 1-minute bars beside one offline backtest of them.

Two PPO bundles (champion and challenger: the same recipe, two seeds, a short training) are trained on
the bundled BTCUSDT 1-minute bars before the last 30 days; ``policy.gate_s`` is the gate
(``trader.policy.gate.run_gate``: bundle check, both policies' backtests, the stationary bootstrap of
2,000 resamples, the Sharpe figures) on those 43,200 bars, median of three; its reference,
``policy.backtest_s``, is one offline backtest of the champion on the same bars in the same run. No Kafka.
"""

from __future__ import annotations

import statistics
import time
from pathlib import Path

from bench.context import BenchContext
from bench.results import Result

DATA = Path(__file__).resolve().parents[1] / "data" / "ohlcv"
TEST_BARS = 30 * 24 * 60  # 30 days of 1-minute bars after the challenger's training window
RUNS = 3


def run(ctx: BenchContext) -> list[Result]:
    import torch

    from contracts.costs import CostModel, CostSettings
    from trader.policy.dataset import load
    from trader.policy.gate import GateSettings, after_window, run_gate
    from trader.policy.train import TrainConfig, run_runtime, train

    torch.set_num_threads(1)
    btc = load(next(DATA.glob("binance_spot_BTCUSDT_1m_*.csv.gz")))
    if len(btc) < 2 * TEST_BARS:
        raise ValueError(f"the BTCUSDT file holds {len(btc)} ready bars; the gate benchmark needs {2 * TEST_BARS}")
    fraction = 1 - TEST_BARS / len(btc)
    bundles = [train(btc, TrainConfig(algo="ppo", timesteps=2_048, seed=seed, every=1, train_fraction=fraction,
                                      progress=False), ctx.workdir / f"policy-{seed}").bundle for seed in (1, 2)]
    champion, challenger = bundles
    test = after_window(btc, challenger.manifest)
    settings = GateSettings()
    gate_s, decision = [], None
    for _ in range(RUNS):
        t0 = time.perf_counter()
        decision = run_gate(champion, challenger.path, btc, settings)
        gate_s.append(time.perf_counter() - t0)
    assert decision is not None and decision.test_bars == len(test)
    costs = CostModel(CostSettings(**champion.manifest["costs"]))
    t0 = time.perf_counter()
    run_runtime(champion.runtime, test, costs, 1)
    backtest_s = time.perf_counter() - t0
    return [
        Result("policy.backtest_s", backtest_s, "s", None,
               f"reference: one offline backtest of the champion bundle on the same {len(test):,} 1-minute bars"),
        Result("policy.gate_s", statistics.median(gate_s), "s", "policy.backtest_s",
               f"the promotion gate (bundle check, two backtests, {settings.n_boot} bootstrap resamples, PSR/DSR) on "
               f"{decision.test_bars:,} 1-minute BTCUSDT bars (30 days), median of {RUNS}; decision: "
               f"{'promoted' if decision.promote else 'rejected'}",
               {"min_s": min(gate_s), "bars": float(decision.test_bars)}),
    ]
