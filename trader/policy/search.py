"""Optional hyperparameter search with Optuna, inside the training window only.

Each trial trains on the first 80% of the training window and is scored by the net log return of its
exported policy on the last 20% (never on the held-out bars). A seeded TPE sampler, a trial count and a
time budget keep it reproducible and bounded.
"""

from __future__ import annotations

import logging
import math
import tempfile
from dataclasses import replace
from pathlib import Path
from typing import Any

from contracts.costs import CostModel
from trader.policy.dataset import Dataset
from trader.policy.train import TrainConfig, evaluate_runtime, split, train

log = logging.getLogger(__name__)


def suggest(trial: Any, algo: str) -> dict[str, Any]:
    params: dict[str, Any] = {"learning_rate": trial.suggest_float("learning_rate", 1e-5, 1e-3, log=True),
                              "gamma": trial.suggest_float("gamma", 0.9, 0.999)}
    if algo == "ppo":
        params["ent_coef"] = trial.suggest_float("ent_coef", 1e-4, 0.05, log=True)
    else:
        params["exploration_fraction"] = trial.suggest_float("exploration_fraction", 0.05, 0.5)
    return params


def search(data: Dataset, cfg: TrainConfig, trials: int, timeout_s: float) -> tuple[dict[str, Any], dict[str, Any]]:
    """The best hyperparameters found (the defaults when no trial finishes), and the search's record for
    the manifest: how many trials ran and each one's per-bar validation Sharpe ratio (the gate's
    deflated Sharpe ratio counts them)."""
    import optuna

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    window, _ = split(data, cfg.train_fraction)
    inner, valid = split(window, 0.8)
    costs = CostModel(cfg.costs)

    def objective(trial: Any) -> float:
        params = {**cfg.hyperparameters, **suggest(trial, cfg.algo)}
        trial_cfg = replace(cfg, hyperparameters=params, train_fraction=1.0, progress=False)
        with tempfile.TemporaryDirectory() as tmp:
            result = train(inner, trial_cfg, Path(tmp))
        scored = evaluate_runtime(result.bundle.runtime, valid, costs, cfg.every)
        ret = scored["total_return"]
        # the per-bar Sharpe ratio of each trial: the deflated Sharpe ratio's variance across trials
        trial.set_user_attr("sharpe_per_bar", scored["sharpe"] / math.sqrt(365.0 * 86_400.0 / valid.interval_s))
        log.info("Trial %d: %s -> validation return %+.4f.", trial.number, params, ret)
        return math.log1p(max(ret, -0.999999))

    study = optuna.create_study(direction="maximize", sampler=optuna.samplers.TPESampler(seed=cfg.seed))
    study.optimize(objective, n_trials=trials, timeout=timeout_s)
    done = [t for t in study.trials if t.value is not None]
    record = {"trials": len(done), "sharpe": [float(t.user_attrs["sharpe_per_bar"]) for t in done]}
    if not done:
        return dict(cfg.hyperparameters), record
    log.info("Best of %d trials: %s (validation log return %+.4f).", len(done), study.best_params,
             study.best_value)
    return {**cfg.hyperparameters, **study.best_params}, record
