"""The promotion gate: a challenger replaces the champion only with evidence, out of sample, net of costs.

On the bars after the challenger's training window (never seen by it, nor by the search that chose its
recipe's hyperparameters, which ran inside the champion's training window), both policies run with
the same cost model (contracts.costs) through the backtest's accounting. The challenger is promoted
only if every check passes:

1. its bundle passes ``bundle.load`` (signature, checksums, golden outputs, limits);
2. the stationary-bootstrap lower confidence bound (one-sided, ``level``) of the mean per-bar
   difference in net log returns (challenger minus champion) is above zero; the mean block length is
   ``max(decision interval, ceil(n ** (1/3)))`` bars unless set (trader.confidence explains why);
3. its maximum drawdown is at most the champion's plus ``drawdown_tolerance``;
4. when a shadow record is given (the challenger's live paper record beside the champion's over the
   same bars, trader.shadow), it holds at least ``min_shadow_decisions`` decisions and agrees with the
   offline evaluation: the challenger's net log return minus the champion's over the shadow period has
   the same sign as the offline mean per-bar difference, strictly (a tie, e.g. both flat, is no evidence
   and rejects). Since check 2 needs the offline difference above zero, a promotion needs the challenger
   ahead of the champion in shadow too.

The plain (annualised) Sharpe ratio, the probabilistic and the deflated Sharpe ratio (trials: the
hyperparameter search's, from the manifest) of both policies are reported beside the decision.
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from contracts.costs import CostModel, CostSettings
from trader import confidence as ci
from trader.backtest import metrics
from trader.policy import bundle as bundle_mod
from trader.policy.dataset import Dataset
from trader.policy.train import run_runtime


@dataclass(frozen=True)
class GateSettings:
    level: float = 0.95  # one-sided confidence of the lower bound on the mean per-bar difference
    drawdown_tolerance: float = 0.02  # the challenger's max drawdown may exceed the champion's by this much
    n_boot: int = 2000
    seed: int = 0
    block: int | None = None  # mean block length in bars; None: max(decision interval, ceil(n ** (1/3)))
    min_bars: int = 60  # fewer test bars than this: no evidence, rejected
    min_shadow_decisions: int = 50

    def __post_init__(self) -> None:
        if not 0.5 <= self.level < 1.0:
            raise ValueError(f"gate level {self.level} must be in [0.5, 1)")
        if self.drawdown_tolerance < 0:
            raise ValueError(f"gate drawdown tolerance {self.drawdown_tolerance} must be non-negative")
        if self.n_boot < 100:
            raise ValueError(f"gate bootstrap resamples {self.n_boot}: use at least 100")
        if self.min_shadow_decisions < 1:
            raise ValueError(f"gate minimum shadow decisions {self.min_shadow_decisions} must be at least 1")
        if self.block is not None and self.block < 1:
            raise ValueError(f"gate block length {self.block} must be at least 1 bar")


@dataclass(frozen=True)
class ShadowRecord:
    """A challenger's live paper record beside the champion's over the same bars (shadow trading)."""

    decisions: int  # decision bars in the shadow period
    challenger_log_return: float  # net, over the shadow period
    champion_log_return: float
    bars: int = 0  # bars in the shadow period
    start_ts: int = 0  # first and last bar of the period (bar end, UTC ms)
    end_ts: int = 0
    policy_id: str = ""  # the shadow book's policy id

    @property
    def difference(self) -> float:
        """Challenger minus champion, net log return over the shadow period."""
        return self.challenger_log_return - self.champion_log_return


@dataclass
class GateResult:
    promote: bool
    reason: str  # one sentence: why promoted, or every check that failed
    figures: dict[str, Any] = field(default_factory=dict)
    test_start_ts: int = 0
    test_end_ts: int = 0
    test_bars: int = 0


def search_trials(manifest: dict[str, Any]) -> tuple[int, float | None]:
    """The trials of the search that chose a recipe's hyperparameters, and the variance of their per-bar
    Sharpe ratios when it recorded them (1 and None without a search)."""
    search = manifest.get("training", {}).get("search") or {}
    sharpes = [float(s) for s in search.get("sharpe", []) if s is not None and math.isfinite(float(s))]
    return max(1, int(search.get("trials", 1))), float(np.var(sharpes)) if len(sharpes) > 1 else None


def policy_figures(equity: np.ndarray, run_metrics: dict[str, float], trials: int,
                   trial_variance: float | None) -> dict[str, float]:
    r = ci.log_returns(equity)
    sr = ci.sharpe(r)
    skew, kurt = ci.moments(r)
    n = len(r)
    return {"total_return": run_metrics["total_return"], "sharpe": run_metrics["sharpe"], "sharpe_per_bar": sr,
            "psr": ci.psr(sr, n, skew, kurt), "dsr": ci.dsr(sr, n, skew, kurt, trials, trial_variance),
            "max_drawdown": ci.max_drawdown(equity), "turnover": run_metrics["turnover"],
            "fees": run_metrics["fees"], "slippage": run_metrics["slippage"], "skew": skew, "kurtosis": kurt}


def after_window(data: Dataset, manifest: dict[str, Any]) -> Dataset:
    """The bars of ``data`` after the bundle's training window."""
    end = int(manifest["training"]["window"]["end_ts"])
    return data.slice(int(np.searchsorted(data.ts, end, side="right")), len(data))


def run_gate(champion: bundle_mod.Bundle, challenger_dir: Path, data: Dataset, settings: GateSettings,
             shadow: ShadowRecord | None = None) -> GateResult:
    """Decide on the challenger in ``challenger_dir`` against ``champion`` on ``data``'s bars after the
    challenger's training window."""
    try:
        challenger = bundle_mod.load(challenger_dir, expected_schema=champion.feature_schema)
    except bundle_mod.BundleError as err:
        return GateResult(False, f"the challenger's bundle fails its check: {err}", {"bundle_check": str(err)})
    if tuple(challenger.feature_names) != tuple(champion.feature_names):
        return GateResult(False, f"the challenger reads features {', '.join(challenger.feature_names)}, the champion "
                          f"{', '.join(champion.feature_names)}: retrain with the champion's recipe")
    test = after_window(data, challenger.manifest)
    if len(test) < settings.min_bars:
        return GateResult(False, f"only {len(test)} bars after the challenger's training window; the gate needs "
                          f"at least {settings.min_bars}", {"test_bars": len(test)}, test_bars=len(test))
    costs = CostModel(CostSettings(**champion.manifest["costs"]))
    every_ch = int(challenger.manifest.get("decision_every", 1))
    every_cp = int(champion.manifest.get("decision_every", 1))
    run_ch = run_runtime(challenger.runtime, test, costs, every_ch)
    run_cp = run_runtime(champion.runtime, test, costs, every_cp)
    diff = ci.log_returns(run_ch.equity) - ci.log_returns(run_cp.equity)
    block = settings.block or ci.block_length(len(diff), max(every_ch, every_cp))
    lower = ci.mean_lower_bound(diff, settings.level, block, settings.n_boot, settings.seed)
    trials, trial_variance = search_trials(challenger.manifest)
    ch = policy_figures(run_ch.equity, metrics(run_ch, test.interval_s), trials, trial_variance)
    cp = policy_figures(run_cp.equity, metrics(run_cp, test.interval_s), trials, trial_variance)
    failed = []
    if not lower > 0:
        failed.append(f"the {settings.level:.0%} lower bound of the mean per-bar net log return difference is "
                      f"{lower:+.3g} (mean {diff.mean():+.3g}), not above 0")
    if ch["max_drawdown"] > cp["max_drawdown"] + settings.drawdown_tolerance:
        failed.append(f"its max drawdown {ch['max_drawdown']:.4f} exceeds the champion's {cp['max_drawdown']:.4f} "
                      f"by more than {settings.drawdown_tolerance:g}")
    if shadow is not None:
        if shadow.decisions < settings.min_shadow_decisions:
            failed.append(f"its shadow record has {shadow.decisions} decisions, fewer than "
                          f"{settings.min_shadow_decisions}")
        elif not shadow.difference * float(diff.mean()) > 0:
            failed.append(f"in shadow it made {shadow.challenger_log_return:+.4f} (log) against the champion's "
                          f"{shadow.champion_log_return:+.4f} over {shadow.decisions} decisions, a difference of "
                          f"{shadow.difference:+.4f} that does not have the sign of the offline {diff.mean():+.3g}")
    figures: dict[str, Any] = {
        "test_bars": len(test), "level": settings.level, "block": block, "n_boot": settings.n_boot,
        "seed": settings.seed, "mean_diff": float(diff.mean()), "diff_lower": lower,
        "drawdown_tolerance": settings.drawdown_tolerance, "trials": trials, "costs": costs.as_dict(),
        "challenger": {"version": challenger.version, **ch}, "champion": {"version": champion.version, **cp},
        "shadow": None if shadow is None else {**dataclasses.asdict(shadow), "difference": shadow.difference,
                                               "min_decisions": settings.min_shadow_decisions},
    }
    if failed:
        reason = "rejected: " + "; ".join(failed)
    else:
        reason = (f"promoted: mean per-bar net log return {diff.mean():+.3g} above the champion's, "
                  f"{settings.level:.0%} lower bound {lower:+.3g} > 0 over {len(test)} bars; max drawdown "
                  f"{ch['max_drawdown']:.4f} vs {cp['max_drawdown']:.4f}")
        if shadow is not None:
            reason += (f"; in shadow {shadow.difference:+.4f} (log) ahead over {shadow.decisions} decisions "
                       f"(book {shadow.policy_id})")
    return GateResult(not failed, reason, figures, int(test.ts[0]), int(test.ts[-1]), len(test))
