"""`tickflow ingest`: live exchange feeds, replays of recorded and historical data, recordings."""

from __future__ import annotations

import argparse
import signal
import sys
import threading
import time
from pathlib import Path
from typing import Any

from contracts.errors import SettingsError

VENUE_NAMES = ("binance", "coinbase_advanced", "coinbase_exchange", "okx", "kraken")


def register(sub: Any) -> None:
    ingest = sub.add_parser("ingest", help="exchange trades into market.trades: live, replay, record",
                            description="Put trades on market.trades (gaps and reconnects on market.events, "
                            "unparseable frames on market.trades.dlq).")
    cmds = ingest.add_subparsers(dest="ingest_command", required=True, metavar="SUBCOMMAND")

    live = cmds.add_parser("live", help="stream a venue's trades into Kafka until stopped",
                           description="Connect to a venue's public websocket and publish its trades. "
                           "Reconnects with backoff, reports gaps, flushes on SIGTERM.")
    _venue_args(live)
    live.add_argument("--metrics-port", type=int, default=9108,
                      help="serve Prometheus metrics on HOST:PORT/metrics (0: off; default 9108)")
    live.add_argument("--metrics-host", default="127.0.0.1",
                      help="address the metrics endpoint binds to (default 127.0.0.1; 0.0.0.0 in a container)")
    live.add_argument("--log-every", type=float, default=10.0, help="seconds between figure log lines")
    live.set_defaults(func=_live)

    replay = cmds.add_parser("replay", help="replay trade dumps, recorded frames or candles into Kafka",
                             description="Replay files into market.trades: Binance trade dumps "
                             "(SYMBOL-trades-*.csv), recorded websocket frames (.jsonl/.jsonl.gz, through the "
                             "live parser) or 1-minute candles expanded to trades (derived data). Rows that do not "
                             "parse go to market.trades.dlq (file, line, reason) and the replay goes on. Exits 0 only "
                             "when every record was acknowledged by the broker and every file was read to its end; "
                             "1 for an empty, truncated or non-text file (after saying what was produced).")
    replay.add_argument("paths", nargs="+", type=Path, metavar="PATH")
    replay.add_argument("--venue", choices=VENUE_NAMES, help="the venue (default: from the file name, "
                        "binance for dumps and candles)")
    replay.add_argument("--symbol", help="the venue's symbol, e.g. BTCUSDT (default: from the file name)")
    replay.add_argument("--speed", default="max", help="'max' (as fast as possible) or N: original timing x N")
    replay.add_argument("--from-candles", action="store_true",
                        help="the file holds candles (open_time_ms,open,high,low,close,volume): expand them")
    replay.add_argument("--resume", action="store_true", help="skip the trades market.trades already holds for "
                        "each key: those up to the key's last (event time, trade id) there (dumps and candles)")
    replay.add_argument("--no-progress", action="store_true", help="no progress bar")
    replay.set_defaults(func=_replay)

    record = cmds.add_parser("record", help="record a venue's raw frames to .jsonl.gz for replay",
                             description="Write every frame received, with its receive time, to FILE "
                             "(.jsonl.gz), rotated by size or time; `tickflow ingest replay` reads it back.")
    _venue_args(record)
    record.add_argument("--out", type=Path, required=True, help="output file, e.g. recordings/okx.jsonl.gz")
    record.add_argument("--rotate-mb", type=float, default=256.0, help="start a new file after this many MB")
    record.add_argument("--rotate-s", type=float, default=3600.0, help="start a new file after this many seconds")
    record.add_argument("--duration", type=float, default=0.0, help="stop after this many seconds (0: never)")
    record.set_defaults(func=_record)


def _venue_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("--venue", required=True, choices=VENUE_NAMES)
    p.add_argument("--symbols", required=True, help="comma-separated, e.g. BTC-USDT,ETH-USDT")
    p.add_argument("--url", help="connect here instead of the venue's address (e.g. a local replay server)")
    p.add_argument("--rest-url", help="fetch book snapshots here, {symbol} filled in (default: the venue's; "
                   "none with --url)")


def _symbols(text: str) -> list[str]:
    symbols = [s.strip() for s in text.split(",") if s.strip()]
    if not symbols:
        raise SettingsError("--symbols names no symbol; give e.g. --symbols BTC-USDT,ETH-USDT")
    return symbols


def _stop_on_signals() -> threading.Event:
    stop = threading.Event()

    def handler(signum: int, _frame: object) -> None:
        stop.set()

    signal.signal(signal.SIGTERM, handler)
    signal.signal(signal.SIGINT, handler)
    return stop


def _speed(text: str) -> float | None:
    if text == "max":
        return None
    try:
        value = float(text)
    except ValueError:
        value = 0.0
    if not value > 0:
        raise SettingsError(f"--speed {text!r} is neither 'max' nor a positive number")
    return value


def _replay(args: argparse.Namespace) -> int:
    from contracts.settings import kafka_bootstrap
    from ingestor.publisher import Publisher
    from ingestor.replay import replay_file

    speed = _speed(args.speed)
    from ingestor.resume import ResumePoint

    publisher = Publisher(kafka_bootstrap(), reports="errors")
    resume = ResumePoint(kafka_bootstrap()) if args.resume else None
    stop = _stop_on_signals()
    started = time.perf_counter()
    total = 0
    problems = 0
    for path in args.paths:
        if stop.is_set():
            break
        report = replay_file(path, publisher, venue_name=args.venue, symbol=args.symbol, speed=speed,
                             from_candles=args.from_candles, stop=stop,
                             progress=not args.no_progress and sys.stderr.isatty(), resume=resume)
        c = report.counts
        total += c.trades
        extra = f", duplicates {c.duplicates:,}, gaps {c.gaps:,}" if report.mode == "frames" else ""
        skipped = ", ".join(f"{k} {v:,}" for k, v in sorted(c.skipped_by.items()))
        print(f"replay {path.name} ({report.mode}): {c.trades:,} trades, {c.skipped:,} frames skipped"
              + (f" ({skipped})" if skipped else "") + f", {c.dead_lettered:,} dead-lettered{extra}; "
              f"{report.seconds:.2f}s, {report.rate:,.0f} trades/s", flush=True)
        if report.problem:
            problems += 1
            rest = "nothing was produced" if not c.trades else \
                f"{c.trades:,} trades of it were produced, the rest of the file was not"
            print(f"tickflow: replay {path} {report.problem}; {rest}", file=sys.stderr, flush=True)
    remaining = publisher.flush(stop=stop)
    seconds = time.perf_counter() - started
    delivered = publisher.delivered
    print(f"delivered {delivered:,} of {publisher.produced:,} records "
          f"({publisher.failed:,} failed, {remaining:,} unacknowledged); {total:,} trades in {seconds:.2f}s "
          f"including the flush: {total / seconds if seconds else 0:,.0f} trades/s", flush=True)
    if stop.is_set():
        print(f"tickflow ingest replay: stopped by a signal; the broker acknowledged {delivered:,} of "
              f"{publisher.produced:,} records, {publisher.failed + remaining:,} were not acknowledged",
              file=sys.stderr)
        return 130
    if publisher.failed or remaining:
        print(f"tickflow: the broker did not acknowledge every record ({publisher.first_error or 'timed out'})",
              file=sys.stderr)
        return 1
    return 1 if problems else 0


def _live(args: argparse.Namespace) -> int:
    from ingestor.live import run_live

    return run_live(args.venue, _symbols(args.symbols), url=args.url, metrics_port=args.metrics_port,
                    metrics_host=args.metrics_host, log_every_s=args.log_every, stop=_stop_on_signals(),
                    rest_url=args.rest_url)


def _record(args: argparse.Namespace) -> int:
    from ingestor.recorder import run_record

    return run_record(args.venue, _symbols(args.symbols), args.out, url=args.url,
                      rotate_bytes=int(args.rotate_mb * 1_000_000), rotate_s=args.rotate_s,
                      duration_s=args.duration, stop=_stop_on_signals(), rest_url=args.rest_url)
