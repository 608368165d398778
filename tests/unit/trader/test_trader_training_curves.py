"""Training curves with the tools users know: `train --tensorboard` event files, `compare`'s leaderboard."""

from __future__ import annotations

import csv
import os
import subprocess
from pathlib import Path

import pytest
from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

from tests.helpers import REPO, tickflow_cmd
from tests.unit.trader.trader_support import NAMES, synthetic_frame


@pytest.fixture(scope="module")
def data_file(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("curves") / "synthetic.parquet"
    synthetic_frame(n=3_000, seed=5).to_parquet(path)
    return path


def tickflow(*args: str, home: Path) -> subprocess.CompletedProcess[str]:
    done = subprocess.run(tickflow_cmd(*args), cwd=REPO, capture_output=True, text=True, timeout=300,
                          env={**os.environ, "TICKFLOW_HOME": str(home), "PYTHONPATH": str(REPO)})
    assert done.returncode == 0, done.stdout + done.stderr
    return done


def test_train_with_tensorboard_writes_reward_loss_and_entropy_curves(tmp_path: Path, data_file: Path) -> None:
    logs = tmp_path / "tb"
    tickflow("train", "--algo", "ppo", "--data", str(data_file), "--out", str(tmp_path / "b"), "--timesteps",
             "4096", "--every", "5", "--episode-len", "64", "--no-progress", "--features", ",".join(NAMES),
             "--tensorboard", str(logs), home=tmp_path / "home")
    events = list(logs.rglob("events.out.tfevents.*"))
    assert events, f"no event file under {logs}"
    acc = EventAccumulator(str(events[0].parent))
    acc.Reload()
    tags = set(acc.Tags()["scalars"])
    for tag in ("rollout/ep_rew_mean", "train/loss", "train/entropy_loss"):
        assert tag in tags, f"{tag} missing from {sorted(tags)}"
    # one point per PPO rollout: 4096 steps / (4 envs x 512 steps) = 2 (the losses follow the first update)
    assert [e.step for e in acc.Scalars("rollout/ep_rew_mean")] == [2048, 4096]
    assert [e.step for e in acc.Scalars("train/loss")] == [4096]
    assert all(abs(e.value) < 1e6 for e in acc.Scalars("rollout/ep_rew_mean"))


def test_compare_prints_and_writes_a_leaderboard_of_two_evaluations(tmp_path: Path, data_file: Path) -> None:
    home = tmp_path / "home"
    for seed in ("1", "2"):
        tickflow("train", "--algo", "ppo", "--data", str(data_file), "--out", str(tmp_path / f"b{seed}"),
                 "--timesteps", "1024", "--seed", seed, "--every", "5", "--episode-len", "64", "--no-progress",
                 "--features", ",".join(NAMES), home=home)
        tickflow("evaluate", "--bundle", str(tmp_path / f"b{seed}"), "--data", str(data_file), "--out",
                 str(tmp_path / f"e{seed}"), home=home)
    done = tickflow("compare", str(tmp_path / "e1"), str(tmp_path / "e2"), home=home)
    lines = done.stdout.splitlines()
    assert lines[0].split()[:4] == ["#", "policy", "data", "seed"]
    assert len(lines) == 4 and lines[-1] == f"wrote {home / 'compare.csv'}"
    with (home / "compare.csv").open() as fh:
        rows = list(csv.DictReader(fh))
    assert sorted(r["seed"] for r in rows) == ["1", "2"]
    assert float(rows[0]["return"]) >= float(rows[1]["return"]), "best return first"
    assert {"sharpe", "max_drawdown", "turnover", "exposure", "buy_and_hold_matched"} <= set(rows[0])
