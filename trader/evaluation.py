"""Out-of-sample evaluation of a policy bundle beside the baselines, net of fees and slippage.

``evaluate`` runs the bundle's policy (the serving runtime, not SB3) over a data file with the
environment's accounting and costs, next to flat, buy-and-hold (fully invested and at the policy's
exposure), random and momentum, and writes ``metrics.json``, the round trips (``trades.csv``), charts
(``equity.png``, ``trades.png``) and ``report.md`` (trader/report.py). Bars inside the bundle's
training window are never scored: on the training file only the held-out tail is used.
``walk_forward`` retrains the bundle's recipe on expanding windows of the data and tests each on the
next fold, with an embargo between them, and writes the per-fold table (``walk_forward.csv``) and
chart (``walk_forward.png``). With ``books`` (a `tickflow book dump` file of the data's recording) every
trade of the policy and the baselines walks the book at its bar's end for an account of ``book_notional``
quote (``contracts.costs.rebalance_on_book``, the paper broker's fill model); bars before the first book
use the cost model.
"""

from __future__ import annotations

import json
import logging
from pathlib import Path
from typing import Any

import numpy as np

from contracts.book_walk import BarBooks
from contracts.costs import CostModel, CostSettings
from trader import confidence as ci
from trader.backtest import Run, baselines, decision_mask, metrics, simulate
from trader.policy import bundle as bundle_mod
from trader.policy.dataset import Dataset, load
from trader.policy.gate import search_trials
from trader.policy.train import run_runtime
from trader.report import (
    plot_equity,
    plot_trades,
    plot_walk_forward,
    report_text,
    when,
    write_folds_csv,
    write_trades_csv,
)
from trader.round_trips import round_trips, trade_summary

log = logging.getLogger(__name__)


def out_of_sample(data: Dataset, manifest: dict[str, Any]) -> tuple[Dataset, str]:
    """The bars of ``data`` the policy never trained on, and a sentence saying which they are."""
    training = manifest.get("training", {})
    if data.sha256 and data.sha256 == training.get("data_sha256"):
        end = int(training["window"]["end_ts"])
        rest = data.slice(int(np.searchsorted(data.ts, end, side="right")), len(data))
        if len(rest) < 3:
            raise ValueError(f"{data.source} is the bundle's training file and has no held-out bars after "
                             f"{end}: evaluate on other data")
        return rest, f"the held-out tail of the training file ({len(rest)} bars after the training window)"
    if out_of_time(data, manifest):
        return data, f"all {len(data)} bars of {Path(data.source).name} (not the training file; after its window)"
    return data, (f"all {len(data)} bars of {Path(data.source).name} (not the training file, but over the "
                  f"training window's dates: cross-asset, not out of time)")


def out_of_time(test: Dataset, manifest: dict[str, Any]) -> bool:
    """True when every bar of ``test`` comes after the bundle's training window."""
    window = manifest.get("training", {}).get("window")
    return window is None or int(test.ts[0]) > int(window["end_ts"])


def _every(b: bundle_mod.Bundle) -> int:
    return int(b.manifest.get("decision_every", 1))


SEED_FIGURES = ("total_return", "sharpe", "sortino", "max_drawdown", "turnover", "exposure", "fees")


def confidence(equity: np.ndarray, every: int, trials: int = 1, trial_variance: float | None = None,
               level: float = 0.95, n_boot: int = 2000, seed: int = 0) -> dict[str, Any]:
    """A stationary-bootstrap interval of the mean per-bar net log return (and of the total it implies),
    with the probabilistic and deflated Sharpe ratios (trader.confidence)."""
    r = ci.log_returns(equity)
    block = ci.block_length(len(r), every)
    lo, hi = ci.mean_interval(r, level, block, n_boot, seed)
    sr = ci.sharpe(r)
    skew, kurt = ci.moments(r)
    return {"level": level, "block": block, "n_boot": n_boot, "seed": seed, "bars": len(r),
            "mean_log_return": {"value": float(r.mean()), "lower": lo, "upper": hi},
            "total_log_return": {"value": float(r.sum()), "lower": lo * len(r), "upper": hi * len(r)},
            "sharpe_per_bar": sr, "psr": ci.psr(sr, len(r), skew, kurt),
            "dsr": ci.dsr(sr, len(r), skew, kurt, trials, trial_variance), "trials": trials}


def seed_runs(b: bundle_mod.Bundle, train_data: Dataset, test: Dataset, costs: CostModel, seeds: int,
              out: Path, books: BarBooks | None = None) -> dict[str, Any]:
    """The bundle's recipe trained with ``seeds`` seeds (the bundle's own first, the bundle itself) on its
    training window of ``train_data``, each scored on ``test``: per seed, and their mean and spread."""
    from trader.policy.train import TrainConfig, train

    window = b.manifest["training"]["window"]
    lo = int(np.searchsorted(train_data.ts, int(window["start_ts"]), side="left"))
    hi = int(np.searchsorted(train_data.ts, int(window["end_ts"]), side="right"))
    base = int(b.manifest["training"]["seed"])
    trials, variance = search_trials(b.manifest)
    runs = []
    for k in range(seeds):
        if k == 0:
            runtime, version = b.runtime, b.version
        else:
            cfg = TrainConfig.from_manifest(b.manifest, seed=base + k, train_fraction=1.0)
            fresh = train(train_data.slice(lo, hi), cfg, out / "seeds" / f"seed{base + k}").bundle
            runtime, version = fresh.runtime, fresh.version
        run = run_runtime(runtime, test, costs, _every(b), books)
        runs.append({"seed": base + k, "version": version, **metrics(run, test.interval_s),
                     "confidence": confidence(run.equity, _every(b), trials, variance)})
        log.info("Seed %d (%s): return %+.4f, Sharpe %+.2f.", base + k, version, runs[-1]["total_return"],
                 runs[-1]["sharpe"])
    values = {name: np.array([r[name] for r in runs]) for name in SEED_FIGURES}
    return {"runs": runs, "mean": {n: float(v.mean()) for n, v in values.items()},
            "std": {n: float(v.std(ddof=1)) if len(v) > 1 else 0.0 for n, v in values.items()},
            "min": {n: float(v.min()) for n, v in values.items()},
            "max": {n: float(v.max()) for n, v in values.items()}}


def training_data(b: bundle_mod.Bundle, data: Dataset, train_path: Path | None, symbol: str | None) -> Dataset:
    """The bundle's training file for reseeded runs: ``train_path``, or the evaluated file when it is it."""
    training = b.manifest.get("training", {})
    if train_path is not None:
        found = load(train_path, tuple(b.feature_names), interval_s=data.interval_s, symbol=symbol)
        if found.sha256 != training.get("data_sha256"):
            raise ValueError(f"--train-data {train_path} is not the bundle's training file "
                             f"({training.get('data')}, sha256 {str(training.get('data_sha256'))[:16]}...)")
        return found
    if data.sha256 == training.get("data_sha256"):
        return data
    raise ValueError(f"--seeds retrains the bundle's recipe on its training file: name it with --train-data "
                     f"(the manifest says {training.get('data')})")


def evaluate(bundle_dir: Path, data_path: Path, out: Path, seed: int = 0, symbol: str | None = None,
             books: Path | None = None, book_notional: float = 1_000.0, seeds: int = 1,
             train_path: Path | None = None) -> dict[str, Any]:
    if seeds < 1:
        raise ValueError(f"--seeds {seeds}: evaluate at least one seed")
    b = bundle_mod.load(bundle_dir)
    costs = CostModel(CostSettings(**b.manifest["costs"]))
    data = load(data_path, tuple(b.feature_names), interval_s=int(b.manifest.get("interval_s", 60)), symbol=symbol)
    test, what = out_of_sample(data, b.manifest)
    bar_books = BarBooks.from_dump(books, test.ts.tolist(), book_notional) if books is not None else None
    run = run_runtime(b.runtime, test, costs, _every(b), bar_books)
    actions = tuple(b.runtime.actions)
    decide = decision_mask(test.ts, _every(b), test.interval_s)
    policy = metrics(run, test.interval_s)
    matched_position, matched = matched_buy_and_hold(test, float(policy["exposure"]), costs, decide, bar_books)
    trips = round_trips(run, test.ts, test.opens, test.closes)
    training = b.manifest.get("training", {})
    trials, variance = search_trials(b.manifest)
    result: dict[str, Any] = {
        "policy": policy,
        "confidence": confidence(run.equity, _every(b), trials, variance),
        "baselines": {**baselines(test.closes, test.opens, actions, costs, test.interval_s, seed=seed, decide=decide,
                                  books=bar_books),
                      "buy_and_hold_matched": {**metrics(matched, test.interval_s), "position": matched_position}},
        "trades": {"summary": trade_summary(trips), "round_trips": [t.as_dict() for t in trips]},
        "data": {"file": str(data_path), "symbol": test.symbol, "bars": len(test), "start_ts": int(test.ts[0]),
                 "end_ts": int(test.ts[-1]), "out_of_sample": what, "out_of_time": out_of_time(test, b.manifest),
                 "training_window": training.get("window")},
        "bundle": {"path": str(bundle_dir), "algo": b.algo, "version": b.version, "mode": b.manifest["mode"],
                   "decision_every": _every(b), "trained_on": training.get("symbol"),
                   "seed": training.get("seed")},
        "costs": {**costs.as_dict(), "fills": "book" if bar_books is not None else "cost model",
                  **({"books": str(books), "book_notional": book_notional} if bar_books is not None else {})},
        "notes": "returns are fractions of the starting equity, net of fees and slippage; sharpe and sortino are "
                 "annualised from per-bar log returns; turnover is the sum of |position changes| in multiples of "
                 "equity; exposure is the mean |position|; fees are in units of the starting equity; "
                 "buy_and_hold_matched holds the policy's mean exposure throughout; out_of_time is true when "
                 "every evaluated bar comes after the training window; confidence: a stationary-bootstrap "
                 "interval of the mean per-bar net log return (block length max(decision interval, n^(1/3))) "
                 "and the probabilistic and deflated Sharpe ratios of the per-bar returns; seeds (--seeds N): the "
                 "bundle's recipe retrained with N seeds on its training window, each scored on the same bars",
    }
    if seeds > 1:
        result["seeds"] = seed_runs(b, training_data(b, data, train_path, symbol), test, costs, seeds, out,
                                   bar_books)
    out.mkdir(parents=True, exist_ok=True)
    (out / "metrics.json").write_text(json.dumps(result, indent=1) + "\n")
    write_trades_csv(out / "trades.csv", trips)
    curves = {"policy": run.equity, **baseline_curves(test, b, costs, seed, bar_books),
              f"buy_and_hold at {matched_position:.0%}": matched.equity}
    kind = "out of time" if result["data"]["out_of_time"] else "same dates as training, not out of time"
    plot_equity(out / "equity.png", test.ts, curves,
                f"{b.algo.upper()} {b.version} on {test.symbol}, net of costs ({kind})")
    plot_trades(out / "trades.png", test.ts, test.closes, trips,
                f"{b.algo.upper()} {b.version} on {test.symbol}: {len(trips)} round trips")
    (out / "report.md").write_text(report_text(result))
    return result


def matched_buy_and_hold(test: Dataset, exposure: float, costs: CostModel,
                         decide: np.ndarray, books: BarBooks | None = None) -> tuple[float, Run]:
    """Buy-and-hold at the policy's mean exposure: a policy that holds 10 % is compared with holding 10 %,
    from the first fill to the end (so its mean |position| over all bars is the policy's)."""
    held_bars = len(test) - 1 - int(np.argmax(decide))
    position = min(1.0, exposure * len(test) / max(held_bars, 1))
    return position, simulate(lambda _t, _p: position, test.opens, test.closes, costs, decide, books)


def baseline_curves(data: Dataset, b: bundle_mod.Bundle, costs: CostModel, seed: int,
                    books: BarBooks | None = None) -> dict[str, np.ndarray]:
    """The equity curves of buy-and-hold, momentum and random (as ``baselines`` scores them) for the chart."""
    from trader.backtest import Chooser

    low = min(b.runtime.actions)
    c = data.closes
    rng = np.random.default_rng(seed)
    random_targets = rng.choice(np.asarray(b.runtime.actions), size=len(c))
    extra: dict[str, Chooser] = {
        "buy_and_hold": lambda _t, _p: 1.0,
        "momentum": lambda t, _p: 0.0 if t < 60 else (1.0 if c[t] > c[t - 60] else low),
        "random": lambda t, _p: float(random_targets[t]),
    }
    decide = decision_mask(data.ts, _every(b), data.interval_s)
    return {name: simulate(fn, data.opens, data.closes, costs, decide, books).equity for name, fn in extra.items()}


def walk_forward(bundle_dir: Path, data_path: Path, out: Path, folds: int = 3, embargo: int = 60,
                 timesteps: int | None = None) -> dict[str, Any]:
    """Retrain the bundle's recipe on expanding windows; test each fold on the next block of bars."""
    from trader.policy.train import TrainConfig, evaluate_runtime, train

    if folds < 3:
        raise ValueError(f"walk-forward needs at least 3 folds, got {folds}")
    b = bundle_mod.load(bundle_dir)
    m = b.manifest
    data = load(data_path, tuple(b.feature_names), interval_s=int(m.get("interval_s", 60)))
    costs = CostModel(CostSettings(**m["costs"]))
    block = len(data) // (folds + 1)
    rows: list[dict[str, Any]] = []
    for k in range(1, folds + 1):
        train_set = data.slice(0, k * block - embargo)
        test = data.slice(k * block, (k + 1) * block if k < folds else len(data))
        cfg = TrainConfig.from_manifest(m, train_fraction=1.0, timesteps=timesteps or int(m["training"]["timesteps"]))
        fold = train(train_set, cfg, out / f"fold{k}")
        decide = decision_mask(test.ts, _every(b), test.interval_s)
        policy = evaluate_runtime(fold.bundle.runtime, test, costs, _every(b))
        position, matched = matched_buy_and_hold(test, policy["exposure"], costs, decide)
        rows.append({"fold": k, "train_bars": len(train_set), "embargo_bars": embargo, "test_bars": len(test),
                     "test_start_ts": int(test.ts[0]), "test_end_ts": int(test.ts[-1]), "policy": policy,
                     "baselines": {**baselines(test.closes, test.opens, tuple(b.runtime.actions), costs,
                                               test.interval_s, decide=decide),
                                   "buy_and_hold_matched": {**metrics(matched, test.interval_s),
                                                            "position": position}}})
        log.info("Walk-forward fold %d: policy return %+.4f, buy-and-hold %+.4f.", k,
                 rows[-1]["policy"]["total_return"], rows[-1]["baselines"]["buy_and_hold"]["total_return"])
    summary = {name: float(np.mean([r["policy"][name] for r in rows])) for name in rows[0]["policy"]}
    result = {"folds": rows, "policy_mean": summary, "data": str(data_path), "embargo_bars": embargo,
              "out_of_time": True}
    out.mkdir(parents=True, exist_ok=True)
    (out / "walk_forward.json").write_text(json.dumps(result, indent=1) + "\n")
    write_folds_csv(out / "walk_forward.csv", rows)
    plot_walk_forward(out / "walk_forward.png", rows,
                      f"Walk-forward {m['algo'].upper()} on {data.symbol}: {folds} folds, {when(int(data.ts[0]))[:10]}"
                      f" to {when(int(data.ts[-1]))[:10]}, net of costs")
    return result
