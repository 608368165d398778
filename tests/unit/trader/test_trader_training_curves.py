"""Training curves with the tools users know: `train --tensorboard` event files, `compare`'s leaderboard."""

from __future__ import annotations

import csv
from pathlib import Path

import pytest
from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

from tests.unit.trader.trader_support import NAMES, synthetic_frame
from tickflow.cli import main


@pytest.fixture(scope="module")
def data_file(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("curves") / "synthetic.parquet"
    synthetic_frame(n=3_000, seed=5).to_parquet(path)
    return path


def tickflow(*args: str, home: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A `tickflow` command as the CLI runs it (its main, in this process: no interpreter and torch to start)."""
    monkeypatch.setenv("TICKFLOW_HOME", str(home))
    assert main(list(args)) == 0, f"tickflow {' '.join(args)} failed"


def test_train_with_tensorboard_writes_reward_loss_and_entropy_curves(tmp_path: Path, data_file: Path,
                                                                      monkeypatch: pytest.MonkeyPatch) -> None:
    logs = tmp_path / "tb"
    tickflow("train", "--algo", "ppo", "--data", str(data_file), "--out", str(tmp_path / "b"), "--timesteps",
             "4096", "--every", "5", "--episode-len", "64", "--no-progress", "--features", ",".join(NAMES),
             "--tensorboard", str(logs), home=tmp_path / "home", monkeypatch=monkeypatch)
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


def test_compare_prints_and_writes_a_leaderboard_of_two_evaluations(tmp_path: Path, data_file: Path,
                                                                    monkeypatch: pytest.MonkeyPatch,
                                                                    capsys: pytest.CaptureFixture[str]) -> None:
    home = tmp_path / "home"
    for seed in ("1", "2"):
        tickflow("train", "--algo", "ppo", "--data", str(data_file), "--out", str(tmp_path / f"b{seed}"),
                 "--timesteps", "1024", "--seed", seed, "--every", "5", "--episode-len", "64", "--no-progress",
                 "--features", ",".join(NAMES), home=home, monkeypatch=monkeypatch)
        tickflow("evaluate", "--bundle", str(tmp_path / f"b{seed}"), "--data", str(data_file), "--out",
                 str(tmp_path / f"e{seed}"), home=home, monkeypatch=monkeypatch)
    capsys.readouterr()
    tickflow("compare", str(tmp_path / "e1"), str(tmp_path / "e2"), home=home, monkeypatch=monkeypatch)
    lines = capsys.readouterr().out.splitlines()
    assert lines[0].split()[:4] == ["#", "policy", "data", "seed"]
    assert len(lines) == 4 and lines[-1] == f"wrote {home / 'compare.csv'}"
    with (home / "compare.csv").open() as fh:
        rows = list(csv.DictReader(fh))
    assert sorted(r["seed"] for r in rows) == ["1", "2"]
    assert float(rows[0]["return"]) >= float(rows[1]["return"]), "best return first"
    assert {"sharpe", "max_drawdown", "turnover", "exposure", "buy_and_hold_matched"} <= set(rows[0])
