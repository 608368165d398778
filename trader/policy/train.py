"""Train a DQN or PPO policy (stable-baselines3) on one symbol's features and write a policy bundle.

The first ``train_fraction`` of the bars is the training window: the normalisation is fitted there and
the agent only ever sees it. The rest is held out; the manifest reports the policy and the baselines
on it. Same data, seed and settings give byte-identical bundle files (one torch thread, seeded
environments and networks).
"""

from __future__ import annotations

import logging
import platform
import time
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import numpy as np

from contracts.book_walk import BarBooks
from contracts.costs import CostModel, CostSettings
from trader.backtest import Run, baselines, decision_mask, metrics, simulate
from trader.env import TradingEnv, action_map
from trader.policy import bundle
from trader.policy.dataset import Dataset, Normaliser
from trader.policy.export import layers_from_model

log = logging.getLogger(__name__)

PPO_DEFAULTS: dict[str, Any] = {"learning_rate": 3e-4, "n_steps": 512, "batch_size": 256, "n_epochs": 4,
                                "gamma": 0.99, "ent_coef": 0.01, "gae_lambda": 0.95}
# DQN collects from 4 environments: one gradient step of 128 samples per 16 transitions. On 2 cores the
# gradient steps dominate; the SB3 default (one step of 64 per 4 transitions) trains at about 1.7k steps/s.
DQN_DEFAULTS: dict[str, Any] = {"learning_rate": 1e-4, "batch_size": 128, "learning_starts": 1000, "train_freq": 4,
                                "gradient_steps": 1, "target_update_interval": 1000, "exploration_fraction": 0.2,
                                "exploration_final_eps": 0.02, "gamma": 0.99}
N_ENVS = 4


@dataclass
class TrainConfig:
    algo: str = "ppo"
    timesteps: int = 20_000
    seed: int = 7
    mode: str = "long_only"
    train_fraction: float = 0.8
    episode_len: int = 256  # decisions per episode
    every: int = 60  # bars between decisions (epoch-aligned bar ends)
    net_arch: tuple[int, ...] = (64, 64)
    costs: CostSettings = field(default_factory=CostSettings)
    hyperparameters: dict[str, Any] = field(default_factory=dict)
    progress: bool = True
    tensorboard: Path | None = None  # SB3's TensorBoard logger writes its event files here
    search: dict[str, Any] | None = None  # the search that chose the hyperparameters: trials, their Sharpe ratios

    @classmethod
    def from_manifest(cls, manifest: dict[str, Any], **changes: Any) -> TrainConfig:
        """The recipe a bundle was trained with (algorithm, steps, seed, hyperparameters, costs, search)."""
        t = manifest["training"]
        recipe = cls(algo=manifest["algo"], timesteps=int(t["timesteps"]), seed=int(t["seed"]), mode=manifest["mode"],
                     episode_len=int(t["episode_len"]), every=int(manifest.get("decision_every", 1)),
                     net_arch=tuple(t["net_arch"]), costs=CostSettings(**manifest["costs"]),
                     hyperparameters=dict(t["hyperparameters"]), progress=False, search=t.get("search"))
        return replace(recipe, **changes)


@dataclass
class TrainResult:
    bundle: bundle.Bundle
    steps_per_s: float
    seconds: float
    model: Any


def split(data: Dataset, fraction: float) -> tuple[Dataset, Dataset]:
    if not 0.1 <= fraction <= 1.0:
        raise ValueError(f"train fraction must be within [0.1, 1], got {fraction}")
    cut = max(3, int(len(data) * fraction))
    return data.slice(0, cut), data.slice(cut, len(data))


def make_model(cfg: TrainConfig, train: Dataset, norm: Normaliser) -> Any:
    """A seeded SB3 model over training-window environments."""
    import torch
    from stable_baselines3 import DQN, PPO
    from stable_baselines3.common.logger import Logger, configure
    from stable_baselines3.common.monitor import Monitor
    from stable_baselines3.common.utils import set_random_seed
    from stable_baselines3.common.vec_env import DummyVecEnv

    torch.set_num_threads(1)
    set_random_seed(cfg.seed)
    feats = norm.apply(train.features)
    costs = CostModel(cfg.costs)

    def env_fn() -> Monitor:
        # Monitor records each episode's reward and length (SB3's rollout/ep_rew_mean); it changes nothing else
        return Monitor(TradingEnv(feats, train.opens, train.closes, mode=cfg.mode,  # type: ignore[arg-type]
                                  costs=costs, episode_len=cfg.episode_len, every=cfg.every, ts=train.ts,
                                  interval_s=train.interval_s))

    model: Any
    if cfg.algo == "ppo":
        params = {**PPO_DEFAULTS, **cfg.hyperparameters}
        venv = DummyVecEnv([env_fn] * N_ENVS)
        model = PPO("MlpPolicy", venv, seed=cfg.seed, device="cpu", verbose=0,
                    policy_kwargs={"net_arch": {"pi": list(cfg.net_arch), "vf": list(cfg.net_arch)}}, **params)
    elif cfg.algo == "dqn":
        params = {**DQN_DEFAULTS, **cfg.hyperparameters}
        params["buffer_size"] = min(100_000, max(cfg.timesteps, 1_000))
        params["learning_starts"] = min(params["learning_starts"], max(cfg.timesteps // 10, 1))
        model = DQN("MlpPolicy", DummyVecEnv([env_fn] * N_ENVS), seed=cfg.seed, device="cpu", verbose=0,
                    policy_kwargs={"net_arch": list(cfg.net_arch)}, **params)
    else:
        raise ValueError(f"unknown algorithm {cfg.algo!r}; choose dqn or ppo")
    if cfg.tensorboard is not None:
        # episode reward and length (rollout/), losses and, for PPO, entropy (train/), once per rollout
        model.set_logger(configure(str(cfg.tensorboard), ["tensorboard"]))
    else:
        model.set_logger(Logger(folder=None, output_formats=[]))  # no SB3-* folders in /tmp
    return model


def evaluate_runtime(runtime: Any, data: Dataset, costs: CostModel, every: int) -> dict[str, float]:
    """Backtest a policy runtime over ``data`` (raw features) with the environment's accounting."""
    return metrics(run_runtime(runtime, data, costs, every), data.interval_s)


def run_runtime(runtime: Any, data: Dataset, costs: CostModel, every: int, books: BarBooks | None = None) -> Run:
    feats = data.features

    def choose(t: int, pos: float) -> float:
        return float(runtime.target(feats[t], pos))

    return simulate(choose, data.opens, data.closes, costs, decision_mask(data.ts, every, data.interval_s), books)


def library_versions() -> dict[str, str]:
    import gymnasium
    import stable_baselines3
    import torch

    return {"python": platform.python_version(), "numpy": np.__version__, "torch": torch.__version__,
            "stable_baselines3": stable_baselines3.__version__, "gymnasium": gymnasium.__version__}


def train(data: Dataset, cfg: TrainConfig, out: Path) -> TrainResult:
    """Train, export and write the bundle to ``out``."""
    actions = action_map(cfg.mode)
    train_set, held_out = split(data, cfg.train_fraction)
    norm = Normaliser.fit(train_set.features)
    model = make_model(cfg, train_set, norm)
    log.info("Training %s for %d steps on %s bars %d..%d of %s (seed %d).", cfg.algo.upper(), cfg.timesteps,
             data.symbol or "?", int(train_set.ts[0]), int(train_set.ts[-1]), data.source, cfg.seed)
    started = time.perf_counter()
    model.learn(total_timesteps=cfg.timesteps, progress_bar=cfg.progress)
    seconds = time.perf_counter() - started
    layers = layers_from_model(model, cfg.algo)
    costs = CostModel(cfg.costs)
    golden_rows = held_out if len(held_out) >= 16 else train_set
    idx = np.linspace(0, len(golden_rows) - 1, 16).astype(int)
    golden = [([float(x) for x in golden_rows.features[i]], actions[k % len(actions)]) for k, i in enumerate(idx)]
    manifest: dict[str, Any] = {
        "algo": cfg.algo,
        "mode": cfg.mode,
        "action_map": list(actions),
        "feature_schema": data.feature_schema,
        "feature_names": list(data.feature_names),
        "observation": {"normalisation": "z-score over the training window", "clip": 5.0,
                        "position": "last element: the current target position"},
        "interval_s": data.interval_s,
        "decision_every": cfg.every,
        "costs": costs.as_dict(),
        "library_versions": library_versions(),
        "training": {
            "data": Path(data.source).name, "data_sha256": data.sha256, "symbol": data.symbol,
            "candles": data.candles, "window": {"start_ts": int(train_set.ts[0]), "end_ts": int(train_set.ts[-1]),
                                                "bars": len(train_set)},
            "held_out": {"start_ts": int(held_out.ts[0]), "end_ts": int(held_out.ts[-1]), "bars": len(held_out)}
            if len(held_out) else None,
            "timesteps": cfg.timesteps, "seed": cfg.seed, "episode_len": cfg.episode_len, "every": cfg.every,
            "net_arch": list(cfg.net_arch),
            "hyperparameters": {**(PPO_DEFAULTS if cfg.algo == "ppo" else DQN_DEFAULTS), **cfg.hyperparameters},
            **({"search": cfg.search} if cfg.search else {}),
        },
        "metrics": {},
    }
    runtime_probe = bundle.PolicyRuntime(layers, norm.mean, norm.std, actions)
    if len(held_out) >= 3:
        manifest["metrics"] = {
            "held_out": {"policy": evaluate_runtime(runtime_probe, held_out, costs, cfg.every),
                         "baselines": baselines(held_out.closes, held_out.opens, actions, costs, data.interval_s,
                                                decide=decision_mask(held_out.ts, cfg.every, data.interval_s))},
        }
    written = bundle.write(out, layers, norm.mean, norm.std, manifest, golden)
    steps_per_s = cfg.timesteps / seconds if seconds > 0 else 0.0
    log.info("Trained %s in %.1f s (%.0f steps/s); bundle %s version %s written to %s.", cfg.algo.upper(), seconds,
             steps_per_s, cfg.algo, written.version, out)
    return TrainResult(written, steps_per_s, seconds, model)
