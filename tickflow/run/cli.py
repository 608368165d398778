"""`tickflow run`: one command for a dry run, live (`--live`) or over a file (`--replay FILE`)."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    run = sub.add_parser(
        "run", help="a dry run: ingestor, streams worker, trader, paper broker and the live view together",
        description="Starts the ingestor (a live venue, or a replay of FILE), the streams worker, the trader with "
        "--bundle (default the demo's, TICKFLOW_HOME/bundles/demo, trained if missing), the paper broker and the "
        "live web view against KAFKA_BOOTSTRAP (or this home's broker; without one it starts a local broker under "
        "TICKFLOW_HOME/run). --live runs until Ctrl-C; --replay runs to the end of the file and until the topics "
        "settle. Then it writes TICKFLOW_HOME/run/report.md and prints where to look.",
    )
    feed = run.add_mutually_exclusive_group(required=True)
    feed.add_argument("--live", action="store_true", help="ingest a live venue (needs internet) until Ctrl-C")
    feed.add_argument("--replay", type=Path, metavar="FILE", help="replay this file (as `tickflow ingest replay`)")
    run.add_argument("--venue", default="binance", help="live venue")
    run.add_argument("--symbols", default="BTC-USDT", help="live symbols, comma-separated")
    run.add_argument("--url", default=None, help="the venue's websocket address instead of its own (--live)")
    run.add_argument("--bundle", type=Path, default=None, help="policy bundle to trade (default: the demo's)")
    run.add_argument("--timesteps", type=int, default=20_000, help="training budget when the demo's bundle is made")
    run.add_argument("--view-port", type=int, default=8050, help="the live view's port; 0 picks a free one")
    run.add_argument("--no-board", action="store_true", help="no terminal board (plain progress lines)")
    run.set_defaults(func=_run)


def _run(args: argparse.Namespace) -> int:
    from tickflow.run.session import NoInternet, RunOptions, run

    try:
        return run(RunOptions(replay=args.replay, venue=args.venue, symbols=args.symbols, url=args.url,
                              bundle=args.bundle, timesteps=args.timesteps, view_port=args.view_port,
                              board=not args.no_board))
    except NoInternet as err:
        print(f"tickflow run: {err}", file=sys.stderr)
        return 1
