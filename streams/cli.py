"""`tickflow streams worker`, `tickflow features build`, `tickflow ksql apply`."""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path
from typing import Any

from contracts.errors import SettingsError


def register(sub: Any) -> None:
    streams = sub.add_parser("streams", help="the Faust worker: market.trades -> signals.bars -> signals.features")
    ssub = streams.add_subparsers(dest="streams_command", required=True, metavar="SUBCOMMAND")
    worker = ssub.add_parser(
        "worker", help="run the Faust worker until SIGTERM/SIGINT",
        description="Consume market.trades, emit event-time bars on signals.bars and features v1 on "
        "signals.features. Broker from KAFKA_BOOTSTRAP, state under TICKFLOW_HOME/streams; settings "
        "STREAMS__INTERVALS_S (default 1,60,300), STREAMS__GRACE_MS (2000), STREAMS__LIVE_LAG_MS. "
        "Start several workers with the same settings to share the partitions.")
    worker.set_defaults(func=_worker)

    features = sub.add_parser("features", help="offline features: the training set, computed with the live code")
    fsub = features.add_subparsers(dest="features_command", required=True, metavar="SUBCOMMAND")
    build = fsub.add_parser(
        "build", help="bars and features v1 from a Binance trade dump or a candle file",
        description="Read a Binance trade dump (SYMBOL-trades-*.csv) or a candle file (header "
        "open_time_ms,open,high,low,close,volume; .csv or .csv.gz; expanded into trades as the replay "
        "does) and write one row per closed bar: ts (bar end, ms), window_start, the bar, ready, and one "
        "column per feature. CSV or Parquet by the extension of --out.")
    build.add_argument("input", type=Path, help="trade dump or candle file")
    build.add_argument("--symbol", default=None, help="venue symbol, e.g. BTCUSDT (default: from the file name)")
    build.add_argument("--venue", default="binance", help="exchange name written into the keys (default binance)")
    build.add_argument("--interval", type=int, default=60, help="bar interval in seconds (default 60)")
    build.add_argument("--out", type=Path, required=True, help="output file: .csv, .csv.gz or .parquet")
    build.set_defaults(func=_build)

    ksql = sub.add_parser("ksql", help="apply ksqldb.sql to a ksqlDB server")
    ksub = ksql.add_subparsers(dest="ksql_command", required=True, metavar="SUBCOMMAND")
    apply = ksub.add_parser(
        "apply", help="wait for ksqlDB to be RUNNING, then run the file statement by statement",
        description="Waits for GET /info to report RUNNING, then sends each statement of the file to "
        "POST /ksql and prints its result. The statements are re-runnable, so applying twice is harmless.")
    apply.add_argument("--url", default=None, help="ksqlDB server (default $KSQL_URL or http://localhost:8088)")
    apply.add_argument("--file", type=Path, default=None, help="SQL file (default ksqldb.sql of the project)")
    apply.add_argument("--timeout", type=float, default=120.0, help="seconds to wait for RUNNING (default 120)")
    apply.set_defaults(func=_ksql_apply)


def _worker(args: argparse.Namespace) -> int:
    from streams.app import run_worker

    return run_worker()


def _build(args: argparse.Namespace) -> int:
    from streams.offline import build_from_file, write_frame

    if args.interval <= 0:
        raise SettingsError(f"--interval {args.interval} must be a positive number of seconds")
    started = time.perf_counter()
    try:
        frame = build_from_file(args.input, args.symbol, args.interval, args.venue)
        write_frame(frame, args.out)
    except (FileNotFoundError, ValueError) as err:
        print(f"tickflow features build: {err}", file=sys.stderr)
        return 2
    ready = int(frame["ready"].sum()) if len(frame) else 0
    print(f"features build: {len(frame)} bars of {args.interval} s ({ready} ready) from {args.input} -> {args.out} "
          f"in {time.perf_counter() - started:.1f}s")
    return 0


def _ksql_apply(args: argparse.Namespace) -> int:
    import os

    from streams.ksql import KsqlApplyError, apply_file

    url = args.url or os.environ.get("KSQL_URL", "http://localhost:8088")
    path = args.file or Path(__file__).resolve().parents[1] / "ksqldb.sql"
    try:
        apply_file(url, path, timeout=args.timeout)
    except KsqlApplyError as err:
        print(f"tickflow ksql apply: {err}", file=sys.stderr)
        return 1
    return 0
