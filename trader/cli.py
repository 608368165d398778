"""`tickflow train | evaluate | compare | trade`: the trader's commands. Heavy imports happen in handlers."""

from __future__ import annotations

import argparse
import json
import logging
import sys
from pathlib import Path

log = logging.getLogger(__name__)


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    tr = sub.add_parser("train", help="train a DQN or PPO policy on features and write a policy bundle",
                        description="Build features from a candle or trade file with the streams' offline builder, "
                        "train on the first --train-fraction of the bars (normalisation fitted there only), report "
                        "the held-out rest in the manifest, and write a bundle (weights, normalisation, manifest).")
    tr.add_argument("--algo", choices=("dqn", "ppo"), required=True)
    tr.add_argument("--data", type=Path, required=True, help="candle file (.csv/.csv.gz), trade dump or .parquet")
    tr.add_argument("--out", type=Path, required=True, help="bundle directory to write")
    tr.add_argument("--timesteps", type=int, default=20_000)
    tr.add_argument("--seed", type=int, default=7)
    tr.add_argument("--symbol", default=None, help="the venue symbol of a candle file whose name does not say it")
    tr.add_argument("--mode", choices=("long_only", "long_short"), default="long_only")
    tr.add_argument("--features", default="", help="comma-separated feature names (default: CANDLE_SAFE for "
                    "candle files, every feature otherwise)")
    tr.add_argument("--train-fraction", type=float, default=0.8)
    tr.add_argument("--episode-len", type=int, default=256, help="decisions per training episode")
    tr.add_argument("--every", type=int, default=60, help="bars between decisions (bar ends aligned to the epoch); "
                    "the live trader decides at the same bars")
    tr.add_argument("--fee-bps", type=float, default=5.0)
    tr.add_argument("--slippage-bps", type=float, default=1.0)
    tr.add_argument("--search-trials", type=int, default=0, help="Optuna trials before the final training (0: none)")
    tr.add_argument("--search-timeout", type=float, default=600.0, help="time budget of the search, seconds")
    tr.add_argument("--no-progress", action="store_true", help="no progress bar")
    tr.add_argument("--tensorboard", type=Path, default=None, metavar="DIR",
                    help="write SB3's TensorBoard curves (episode reward, loss, entropy) to DIR; view them with "
                    "`tensorboard --logdir DIR`")
    tr.set_defaults(func=_train)

    ev = sub.add_parser("evaluate", help="score a bundle out of sample beside flat, buy-and-hold, random, momentum",
                        description="Writes OUT/metrics.json, OUT/report.md, the round trips (OUT/trades.csv) and "
                        "charts (OUT/equity.png, OUT/trades.png), net of fees and slippage. On the "
                        "training file only the held-out bars count. --walk-forward retrains the bundle's recipe on "
                        "expanding windows of --data and tests each fold on the next block, with an embargo, and "
                        "writes walk_forward.json, .csv and .png.")
    ev.add_argument("--bundle", type=Path, required=True)
    ev.add_argument("--data", type=Path, required=True)
    ev.add_argument("--out", type=Path, required=True)
    ev.add_argument("--symbol", default=None, help="the venue symbol of a candle file whose name does not say it")
    ev.add_argument("--seed", type=int, default=0, help="seed of the random baseline")
    ev.add_argument("--books", type=Path, default=None,
                    help="a `tickflow book dump` file of the data's recording: trades walk its book (default: the "
                    "cost model)")
    ev.add_argument("--book-notional", type=float, default=1_000.0,
                    help="with --books: the account's starting equity in quote")
    ev.add_argument("--seeds", type=int, default=1, help="retrain the bundle's recipe with this many seeds (the "
                    "bundle's own first) and report each, their mean and spread")
    ev.add_argument("--train-data", type=Path, default=None, help="the bundle's training file, for --seeds (default: "
                    "--data when it is that file)")
    ev.add_argument("--walk-forward", action="store_true")
    ev.add_argument("--folds", type=int, default=3)
    ev.add_argument("--embargo", type=int, default=60, help="bars between each training window and its test fold")
    ev.add_argument("--timesteps", type=int, default=None, help="per fold (default: the bundle's)")
    ev.set_defaults(func=_evaluate)

    cp = sub.add_parser("compare", help="a leaderboard of evaluations (return, Sharpe, drawdown, ...), also as CSV",
                        description="Reads EVAL_DIR/metrics.json of each `tickflow evaluate --out EVAL_DIR` and "
                        "prints one row per run, best return first: policy, data, training seed, whether the "
                        "test was out of time, return, Sharpe, max drawdown, turnover, exposure and both "
                        "buy-and-hold baselines. The same table is written as CSV.")
    cp.add_argument("eval_dirs", nargs="+", type=Path, metavar="EVAL_DIR")
    cp.add_argument("--csv", type=Path, default=None, help="CSV to write (default: TICKFLOW_HOME/compare.csv)")
    cp.set_defaults(func=_compare)

    td = sub.add_parser("trade", help="run a policy bundle on signals.features (or --check the bundle)",
                        description="Consumes signals.features, runs the policy behind the risk gate and produces "
                        "orders exactly once (Kafka transactions); books fills and publishes portfolio snapshots. "
                        "With --policy-id and no --bundle it serves the registry's serving version of the policy, "
                        "follows the registry and swaps to a newly promoted (or rolled-back-to) version between two "
                        "batches of features, after verifying it; TRADER__ROLLBACK__MAX_DRAWDOWN rolls a promoted "
                        "version back when its drawdown since the swap reaches it. "
                        "Settings: TRADER__NOTIONAL, TRADER__CAPITAL, TRADER__HTTP_PORT, TRADER__RISK__MAX_DRAWDOWN, "
                        "TRADER__RISK__MAX_NOTIONAL, TRADER__RISK__MAX_POSITION, TRADER__RISK__MAX_ORDERS_PER_MINUTE, "
                        "TRADER__RISK__STALE_AFTER_S, TRADER__RISK__CLOCK (event|wall), TRADER__RISK__GAP_HOLD_S; "
                        "'off' switches a limit off (README: Configuration has every setting and its range).")
    td.add_argument("--bundle", type=Path, default=None, help="the bundle to serve (default: the registry's serving "
                    "version of --policy-id, followed)")
    td.add_argument("--policy-id", default=None, help="default: <algo>-<version>; one consumer group per policy")
    td.add_argument("--check", action="store_true", help="verify the signature, files, schema, action map and golden "
                    "outputs of --bundle, then exit")
    td.add_argument("--shadow", action="store_true", help="trade in the shadow lane: a challenger beside the "
                    "champion on the same features, its orders to orders.shadow (filled by `tickflow paper --shadow` "
                    "into fills.shadow), its book on portfolio.shadow, its own consumer group; the gate of "
                    "`tickflow retrain` reads this record for the challenger's version")
    td.add_argument("--instance", default=None, metavar="ID", help="run as instance ID of several of one policy: "
                    "the instances subscribe to signals.features in the policy's one consumer group, which splits "
                    "the partitions between them; each has its own transactional id <group>-ID, rebuilds the "
                    "symbols of the partitions it is given and commits what it decided before they move; its book, "
                    "drawdown halt, order rate limit and portfolio snapshot (<policy>@ID) are its own symbols' "
                    "(README: Running on a cluster). TRADER__SESSION_TIMEOUT_S: a killed instance's partitions move "
                    "after it. Default: one process per policy, every partition assigned")
    td.add_argument("--max-seconds", type=float, default=None, help="stop after this long (tests, demos)")
    td.set_defaults(func=_trade)


def _train(args: argparse.Namespace) -> int:
    from contracts.costs import CostSettings
    from trader.policy.dataset import load
    from trader.policy.train import TrainConfig, train

    names = tuple(n.strip() for n in args.features.split(",") if n.strip()) or None
    data = load(args.data, names, symbol=args.symbol)
    log.info("Loaded %d ready bars of %s with features %s.", len(data), data.symbol, ", ".join(data.feature_names))
    cfg = TrainConfig(algo=args.algo, timesteps=args.timesteps, seed=args.seed, mode=args.mode,
                      train_fraction=args.train_fraction, episode_len=args.episode_len, every=args.every,
                      costs=CostSettings(fee_bps=args.fee_bps, slippage_bps=args.slippage_bps),
                      progress=not args.no_progress and sys.stderr.isatty())
    if args.search_trials > 0:
        from trader.policy.search import search

        cfg.hyperparameters, cfg.search = search(data, cfg, args.search_trials, args.search_timeout)
    cfg.tensorboard = args.tensorboard  # the final training's curves, not the search trials'
    result = train(data, cfg, args.out)
    held = result.bundle.manifest.get("metrics", {}).get("held_out")
    print(f"trained {args.algo} in {result.seconds:.1f} s ({result.steps_per_s:,.0f} steps/s); bundle "
          f"{result.bundle.version} in {args.out}")
    if held:
        p, b = held["policy"], held["baselines"]["buy_and_hold"]
        print(f"held-out {held['policy']['bars']:.0f} bars: policy return {p['total_return']:+.4f} "
              f"(turnover {p['turnover']:.0f}, fees {p['fees']:.4f}) vs buy-and-hold {b['total_return']:+.4f}")
    return 0


def _evaluate(args: argparse.Namespace) -> int:
    if args.walk_forward:
        from trader.evaluation import walk_forward
        from trader.report import when

        wf = walk_forward(args.bundle, args.data, args.out, args.folds, args.embargo, args.timesteps)
        for row in wf["folds"]:
            p, bh = row["policy"], row["baselines"]["buy_and_hold"]
            print(f"fold {row['fold']} ({when(row['test_start_ts'])} to {when(row['test_end_ts'])}): policy "
                  f"{p['total_return']:+.4f} sharpe {p['sharpe']:+.2f} vs buy-and-hold {bh['total_return']:+.4f}")
        print(f"wrote {args.out}: walk_forward.json, walk_forward.csv, walk_forward.png")
        return 0
    from trader.evaluation import evaluate

    m = evaluate(args.bundle, args.data, args.out, args.seed, symbol=args.symbol, books=args.books,
                 book_notional=args.book_notional, seeds=args.seeds, train_path=args.train_data)
    rows = [("policy", m["policy"]), *m["baselines"].items()]
    print(f"{m['data']['symbol']}: {m['data']['out_of_sample']}")
    print(f"{'':22}{'return':>9}{'sharpe':>8}{'sortino':>9}{'max_dd':>8}{'turnover':>10}{'exposure':>9}{'fees':>8}")
    for name, r in rows:
        print(f"{name:22}{r['total_return']:+9.4f}{r['sharpe']:+8.2f}{r['sortino']:+9.2f}{r['max_drawdown']:8.4f}"
              f"{r['turnover']:10.0f}{r['exposure']:9.3f}{r['fees']:8.4f}")
    s = m["trades"]["summary"]
    print(f"{s['count']:.0f} round trips: win rate {s['win_rate']:.0%}, average win {s['avg_win']:+.4f}, "
          f"average loss {s['avg_loss']:+.4f} (net of costs)")
    c = m["confidence"]
    lo, hi = c["mean_log_return"]["lower"], c["mean_log_return"]["upper"]
    print(f"mean net log return {c['mean_log_return']['value'] * 1e4:+.2f} bp/bar, {c['level']:.0%} interval "
          f"[{lo * 1e4:+.2f}, {hi * 1e4:+.2f}] (block {c['block']}); PSR {c['psr']:.3f}, DSR {c['dsr']:.3f}")
    if "seeds" in m:
        sd = m["seeds"]
        for r in sd["runs"]:
            print(f"seed {r['seed']} ({r['version']}): return {r['total_return']:+.4f} sharpe {r['sharpe']:+.2f} "
                  f"max_dd {r['max_drawdown']:.4f}")
        print(f"{len(sd['runs'])} seeds: return {sd['mean']['total_return']:+.4f} +- {sd['std']['total_return']:.4f}, "
              f"sharpe {sd['mean']['sharpe']:+.2f} +- {sd['std']['sharpe']:.2f}")
    print(f"wrote {args.out}: metrics.json, report.md, trades.csv, equity.png, trades.png")
    return 0


def _compare(args: argparse.Namespace) -> int:
    from contracts.settings import tickflow_home
    from trader.compare import format_table, leaderboard, write_csv

    rows = leaderboard(args.eval_dirs)
    path = args.csv or tickflow_home() / "compare.csv"
    write_csv(path, rows)
    print(format_table(rows))
    print(f"wrote {path}")
    return 0


def _trade(args: argparse.Namespace) -> int:
    from trader.policy.bundle import BundleError, load

    if args.bundle is None and (args.check or args.policy_id is None):
        print("tickflow trade: give --bundle DIR" + (" to --check" if args.check else ", or --policy-id ID to serve "
              "the registry's version of ID"), file=sys.stderr)
        return 2
    if args.check:
        try:
            b = load(args.bundle)
        except BundleError as err:
            print(f"tickflow trade --check: {args.bundle} is refused: {err}", file=sys.stderr)
            return 1
        print(json.dumps({"bundle": str(args.bundle), "ok": True, "algo": b.algo, "version": b.version,
                          "feature_schema": b.feature_schema, "features": list(b.feature_names),
                          "golden_cases": len(b.manifest["golden"]), "files": b.manifest["files"]}, indent=1))
        return 0
    from contracts.broker_check import require_broker
    from contracts.topics import LIVE, SHADOW
    from trader.instances import check_instance
    from trader.service import TraderService
    from trader.swap import ServingError

    if args.bundle is None:
        require_broker()  # the registry is read before anything else
    if args.instance is not None:
        try:
            check_instance(args.instance)
        except ValueError as err:
            print(f"tickflow trade --instance: {err}", file=sys.stderr)
            return 2
    try:
        service = TraderService(args.bundle, args.policy_id, lane=SHADOW if args.shadow else LIVE,
                                instance=args.instance)
    except BundleError as err:
        print(f"tickflow trade: {args.bundle} is refused: {err}", file=sys.stderr)
        return 1
    except ServingError as err:
        print(f"tickflow trade: {err}", file=sys.stderr)
        return 1
    require_broker(service.bootstrap)
    return service.run(args.max_seconds)

