"""Training, export and bundles: DQN and PPO train on small budgets, same seed -> same files, the exported
runtime acts as SB3's deterministic predict, and a changed byte is refused."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from tests.unit.trader.trader_support import NAMES, synthetic_frame
from trader.env import TradingEnv
from trader.policy import bundle
from trader.policy.dataset import Normaliser, from_frame, load
from trader.policy.train import TrainConfig, TrainResult, split, train

REPO = Path(__file__).resolve().parents[3]


def _train(algo: str, out: Path, seed: int = 5, timesteps: int = 3000) -> TrainResult:
    data = from_frame(synthetic_frame(), NAMES, "v1", symbol="TEST")
    return train(data, TrainConfig(algo=algo, timesteps=timesteps, seed=seed, progress=False, episode_len=256,
                                   mode="long_short"), out)


@pytest.fixture(scope="module")
def trained(tmp_path_factory: pytest.TempPathFactory) -> dict[str, TrainResult]:
    root = tmp_path_factory.mktemp("bundles")
    return {algo: _train(algo, root / algo) for algo in ("dqn", "ppo")}


@pytest.mark.parametrize("algo", ["dqn", "ppo"])
def test_exported_policy_acts_like_sb3_predict_on_2000_observations(trained: dict[str, TrainResult],
                                                                     algo: str) -> None:
    result = trained[algo]
    data = from_frame(synthetic_frame(), NAMES, "v1")
    train_set, _ = split(data, 0.8)
    env = TradingEnv(Normaliser.fit(train_set.features).apply(data.features), data.opens, data.closes,
                     mode="long_short")
    rng = np.random.default_rng(0)
    rows = rng.integers(0, len(data) - 1, 2000)
    positions = rng.choice([-1.0, 0.0, 1.0], 2000)
    obs = np.stack([np.r_[np.clip(env.features[r], -5, 5), p] for r, p in zip(rows, positions, strict=True)])
    sb3, _ = result.model.predict(obs.astype(np.float32), deterministic=True)
    runtime = result.bundle.runtime
    ours = np.array([runtime.act_normalised(o) for o in obs.astype(np.float32)])
    assert (ours == sb3).all(), f"{int((ours != sb3).sum())} of 2000 actions differ"
    raw = np.array([runtime.act(data.features[r], p) for r, p in zip(rows, positions, strict=True)])
    assert (raw == sb3).all()
    assert len(set(sb3.tolist())) > 1, "a policy that always picks one action would make this test vacuous"


def test_same_seed_gives_identical_files_and_another_seed_does_not(tmp_path: Path,
                                                                   trained: dict[str, TrainResult]) -> None:
    again = _train("ppo", tmp_path / "again")
    assert again.bundle.manifest["files"] == trained["ppo"].bundle.manifest["files"]
    for name in again.bundle.manifest["files"]:
        assert (tmp_path / "again" / name).read_bytes() == (trained["ppo"].bundle.path / name).read_bytes()
    other = _train("ppo", tmp_path / "other", seed=6)
    assert other.bundle.manifest["files"] != trained["ppo"].bundle.manifest["files"]


def test_manifest_records_what_a_user_needs(trained: dict[str, TrainResult]) -> None:
    m = trained["dqn"].bundle.manifest
    assert m["feature_names"] == list(NAMES) and m["feature_schema"] == "v1"
    assert m["action_map"] == [-1.0, 0.0, 1.0]
    assert {"torch", "stable_baselines3", "numpy"} <= set(m["library_versions"])
    assert m["training"]["window"]["bars"] == 2400 and m["training"]["held_out"]["bars"] == 600
    assert len(m["golden"]) == 16
    held = m["metrics"]["held_out"]
    assert set(held["baselines"]) == {"flat", "buy_and_hold", "random", "momentum"}
    assert not any(p.suffix == ".zip" for p in trained["dqn"].bundle.path.iterdir())


def _check(path: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "tickflow", "trade", "--bundle", str(path), "--check"],
                          capture_output=True, text=True, cwd=REPO, timeout=60)


def test_check_accepts_a_good_bundle_and_refuses_one_changed_byte(tmp_path: Path,
                                                                  trained: dict[str, TrainResult]) -> None:
    import shutil

    copy = tmp_path / "b"
    shutil.copytree(trained["ppo"].bundle.path, copy)
    ok = _check(copy)
    assert ok.returncode == 0, ok.stderr
    weights = copy / bundle.WEIGHTS
    data = bytearray(weights.read_bytes())
    data[len(data) // 2] ^= 1
    weights.write_bytes(bytes(data))
    bad = _check(copy)
    assert bad.returncode == 1
    assert "checksum mismatch for weights.bin" in bad.stderr
    with pytest.raises(bundle.BundleError, match="checksum"):
        bundle.load(copy)
    served = subprocess.run([sys.executable, "-m", "tickflow", "trade", "--bundle", str(copy)], capture_output=True,
                            text=True, cwd=REPO, timeout=60, env={**os.environ, "KAFKA_BOOTSTRAP": "127.0.0.1:9"})
    assert served.returncode == 1 and "is refused: checksum mismatch" in served.stderr


def test_golden_outputs_catch_a_consistent_but_wrong_bundle(tmp_path: Path,
                                                           trained: dict[str, TrainResult]) -> None:
    import json
    import shutil

    copy = tmp_path / "g"
    shutil.copytree(trained["dqn"].bundle.path, copy)
    manifest = json.loads((copy / bundle.MANIFEST).read_text())
    case = manifest["golden"][0]
    case["action"] = (case["action"] + 1) % 3
    (copy / bundle.MANIFEST).write_text(json.dumps(bundle.sign(manifest)))  # consistently re-signed
    with pytest.raises(bundle.BundleError, match="golden case 0"):
        bundle.load(copy)
    with pytest.raises(bundle.BundleError, match="feature schema"):
        bundle.load(trained["dqn"].bundle.path, expected_schema="v2")


def test_a_recording_frame_with_book_features_trains_a_v2_bundle_of_its_bar_length(tmp_path: Path) -> None:
    frame = synthetic_frame(600)
    frame["window_start"] = np.arange(len(frame)) * 1000  # 1 s bars, as the notebook builds from a recording
    frame["ts"] = frame["window_start"] + 1000
    frame["book_spread_bps"] = np.random.default_rng(3).uniform(0.0, 2.0, len(frame))
    frame["book_imb_5"] = np.random.default_rng(4).uniform(-1.0, 1.0, len(frame))
    frame.loc[:9, "book_imb_5"] = np.nan  # no book yet: those bars are dropped
    path = tmp_path / "recording_features.parquet"
    frame.to_parquet(path, index=False)
    names = (*NAMES[:2], "book_spread_bps", "book_imb_5")
    data = load(path, names)
    assert (data.feature_schema, data.feature_names, len(data), data.interval_s) == ("v2", names, 590, 1)
    assert load(path, NAMES).feature_schema == "v1"
    with pytest.raises(ValueError, match="its bars are 1 s long, not the 60 s asked for"):
        load(path, names, interval_s=60)
    written = train(data, TrainConfig(algo="ppo", timesteps=256, seed=1, progress=False, episode_len=64),
                    tmp_path / "bundle").bundle
    loaded = bundle.load(written.path)
    assert (loaded.feature_schema, tuple(loaded.feature_names), loaded.manifest["interval_s"]) == ("v2", names, 1)
    with pytest.raises(ValueError, match=r"no column.*book_ofi"):
        load(path, (*NAMES[:2], "book_ofi"))
