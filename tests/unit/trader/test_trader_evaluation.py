"""Evaluation: metrics.json with the policy beside the four baselines, out of sample only; walk-forward."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from tests.unit.trader.trader_support import NAMES, synthetic_frame
from trader.backtest import Run, metrics
from trader.evaluation import evaluate, walk_forward
from trader.policy.bundle import Bundle
from trader.policy.dataset import load
from trader.policy.train import TrainConfig, train

KEYS = {"total_return", "sharpe", "sortino", "max_drawdown", "turnover", "exposure", "fees"}


@pytest.fixture(scope="module")
def data_file(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("eval") / "synthetic.parquet"
    synthetic_frame(n=4_000, seed=3).to_parquet(path)
    return path


@pytest.fixture(scope="module")
def ppo(data_file: Path) -> Bundle:
    """One tiny PPO bundle (seed 1) on the synthetic file, evaluated by the tests that do not train their own."""
    return train(load(data_file, NAMES), TrainConfig(algo="ppo", timesteps=1_000, seed=1, every=5, episode_len=64,
                                                      progress=False), data_file.parent / "ppo").bundle


def test_evaluate_writes_metrics_beside_baselines_out_of_sample(tmp_path: Path, data_file: Path, ppo: Bundle) -> None:
    m = evaluate(ppo.path, data_file, tmp_path / "eval")
    on_disk = json.loads((tmp_path / "eval" / "metrics.json").read_text())
    assert on_disk["policy"] == pytest.approx(m["policy"])
    assert set(m["policy"]) >= KEYS
    assert set(m["baselines"]) == {"flat", "buy_and_hold", "random", "momentum", "buy_and_hold_matched"}
    matched = m["baselines"]["buy_and_hold_matched"]
    assert matched["exposure"] == pytest.approx(m["policy"]["exposure"])
    assert m["data"]["out_of_time"] is True
    summary = m["trades"]["summary"]
    assert summary["count"] == len(m["trades"]["round_trips"]) == len(
        (tmp_path / "eval" / "trades.csv").read_text().splitlines()) - 1
    assert summary["wins"] + summary["losses"] == summary["count"]
    assert "out-of-time" in (tmp_path / "eval" / "report.md").read_text()
    assert (tmp_path / "eval" / "trades.png").stat().st_size > 10_000
    for name, row in m["baselines"].items():
        assert set(row) >= KEYS, name
    assert m["baselines"]["flat"]["total_return"] == 0.0 and m["baselines"]["flat"]["fees"] == 0.0
    assert m["data"]["bars"] == 800, "only the held-out 20% of the training file may be scored"
    assert (tmp_path / "eval" / "equity.png").stat().st_size > 10_000


def test_evaluate_seeds_reports_each_seed_their_mean_spread_and_bootstrap_intervals(tmp_path: Path, data_file: Path,
                                                                                    ppo: Bundle) -> None:
    b = ppo
    m = evaluate(b.path, data_file, tmp_path / "eval", seeds=3)
    s = m["seeds"]
    assert [r["seed"] for r in s["runs"]] == [1, 2, 3] and s["runs"][0]["version"] == b.version
    assert len({r["version"] for r in s["runs"]}) == 3, "each seed trains its own policy"
    assert s["runs"][0]["total_return"] == m["policy"]["total_return"]
    returns = np.array([r["total_return"] for r in s["runs"]])
    assert s["mean"]["total_return"] == pytest.approx(returns.mean())
    assert s["std"]["total_return"] == pytest.approx(returns.std(ddof=1))
    c = m["confidence"]["mean_log_return"]
    assert c["lower"] < c["value"] < c["upper"] and m["confidence"]["bars"] == 799
    assert 0.0 <= m["confidence"]["psr"] <= 1.0 and m["confidence"]["dsr"] == m["confidence"]["psr"]  # one trial
    on_disk = json.loads((tmp_path / "eval" / "metrics.json").read_text())
    assert on_disk["seeds"]["std"] == pytest.approx(s["std"])
    report = (tmp_path / "eval" / "report.md").read_text()
    assert "3 seeds of the same recipe" in report and "interval" in report
    other = tmp_path / "other.parquet"
    synthetic_frame(n=1_000, seed=9).to_parquet(other)
    with pytest.raises(ValueError, match="--train-data"):
        evaluate(b.path, other, tmp_path / "eval2", seeds=2)


def test_walk_forward_uses_three_folds_with_an_embargo(tmp_path: Path, data_file: Path) -> None:
    data = load(data_file, NAMES)
    train(data, TrainConfig(algo="dqn", timesteps=600, seed=1, every=5, episode_len=64, progress=False),
          tmp_path / "b")
    wf = walk_forward(tmp_path / "b", data_file, tmp_path / "wf", folds=3, embargo=30, timesteps=600)
    folds = wf["folds"]
    assert [f["fold"] for f in folds] == [1, 2, 3]
    block = len(data) // 4
    for f in folds:
        assert f["train_bars"] == f["fold"] * block - 30
        assert f["test_start_ts"] == int(data.ts[f["fold"] * block])
        assert set(f["policy"]) >= KEYS
        assert f["baselines"]["buy_and_hold_matched"]["exposure"] == pytest.approx(f["policy"]["exposure"])
    assert (tmp_path / "wf" / "walk_forward.json").exists()
    table = (tmp_path / "wf" / "walk_forward.csv").read_text().splitlines()
    assert len(table) == 4 and table[0].startswith("fold,train_bars,test_start,test_end")
    assert table[0].endswith("buy_and_hold_matched_return")
    assert (tmp_path / "wf" / "walk_forward.png").stat().st_size > 10_000


def test_metrics_of_a_known_equity_curve() -> None:
    eq = np.array([1.0, 1.1, 0.99, 1.2])
    run = Run(eq, np.array([0.0, 1.0, 1.0, 0.0]), fees=0.01, slippage=0.0, trades=2)
    m = metrics(run, 60)
    assert m["total_return"] == pytest.approx(0.2)
    assert m["max_drawdown"] == pytest.approx(1 - 0.99 / 1.1)
    assert m["turnover"] == 2.0 and m["exposure"] == 0.5 and m["fees"] == 0.01
