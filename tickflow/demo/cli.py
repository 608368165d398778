"""`tickflow demo run` (what `make demo` runs) and `tickflow demo bundle` (a policy for the trader)."""

from __future__ import annotations

import argparse
from pathlib import Path


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    demo = sub.add_parser(
        "demo", help="the embedded demo: broker, Faust worker, trader, paper broker, replay, report",
        description="Run tickflow end to end on this machine: a local Kafka broker under TICKFLOW_HOME, a "
        "Faust worker, the trader with a policy bundle, the paper broker and a replay of the bundled real "
        "data as fast as possible, with a live terminal view; then a report under TICKFLOW_HOME/demo.",
    )
    ds = demo.add_subparsers(dest="demo_command", required=True, metavar="ACTION")
    run = ds.add_parser(
        "run", help="run the demo and write its report (make demo)",
        description="Starts everything it needs, replays the bundled Binance frames (trades and the BTCUSDT "
        "order book) and then --days of candle-derived trades, waits for the pipeline to drain, writes "
        "TICKFLOW_HOME/demo/report.md with its PNGs (equity; spread and imbalance), prints "
        "the report's path and stops everything it started. --live reads a live exchange instead.",
    )
    run.add_argument("--days", type=float, default=3.0, help="days of bundled 1-minute candles to replay (default 3)")
    run.add_argument("--bundle", type=Path, default=None,
                     help="policy bundle to trade (default TICKFLOW_HOME/bundles/demo, trained if missing)")
    run.add_argument("--timesteps", type=int, default=20_000, help="training budget when a bundle must be made")
    run.add_argument("--live", action="store_true",
                     help="ingest a live exchange (needs internet) for --live-seconds instead of the replay")
    run.add_argument("--venue", default="binance", help="live venue (default binance)")
    run.add_argument("--symbols", default="BTC-USDT", help="live symbols, comma-separated (default BTC-USDT)")
    run.add_argument("--live-seconds", type=float, default=120.0, help="how long to ingest live (default 120)")
    run.add_argument("--budget", type=float, default=170.0,
                     help="seconds the pipeline may take after set-up before the demo stops waiting (default 170)")
    run.add_argument("--no-view", action="store_true", help="no live terminal view (plain progress lines)")
    run.set_defaults(func=_run)

    bundle = ds.add_parser(
        "bundle", help="make sure DIR holds a valid policy bundle; train one (with a progress bar) if not",
        description="Keeps a bundle at --out that passes `tickflow trade --check`; otherwise trains one on the "
        "bundled candles with the notebook's code path (features from the offline builder, stable-baselines3, "
        "export) and writes it there.",
    )
    bundle.add_argument("--out", type=Path, required=True, help="bundle directory")
    bundle.add_argument("--algo", choices=("ppo", "dqn"), default="ppo", help="algorithm (default ppo)")
    bundle.add_argument("--timesteps", type=int, default=20_000, help="training budget (default 20000)")
    bundle.add_argument("--seed", type=int, default=7, help="seed (default 7)")
    bundle.add_argument("--force", action="store_true", help="train even if a valid bundle is there")
    bundle.set_defaults(func=_bundle)


def _run(args: argparse.Namespace) -> int:
    from tickflow.demo.runner import DemoOptions, run_demo

    return run_demo(DemoOptions(days=args.days, bundle=args.bundle, timesteps=args.timesteps, live=args.live,
                                venue=args.venue, symbols=args.symbols, live_seconds=args.live_seconds,
                                budget_s=args.budget, view=not args.no_view))


def _bundle(args: argparse.Namespace) -> int:
    from tickflow.demo.policy import ensure_bundle

    path, trained = ensure_bundle(args.out, algo=args.algo, timesteps=args.timesteps, seed=args.seed,
                                  force=args.force)
    print(f"policy bundle {'trained' if trained else 'kept'}: {path}")
    return 0
