"""`tickflow run`: ingestor, streams worker, trader, paper broker and the live view against one broker.

Reuses the demo's pieces (``tickflow.demo.runner.Processes`` for the child processes and their logs, the
demo's bundle, its terminal board and its report): what differs is the feed and the end. ``--live`` reads
a venue until Ctrl-C or SIGTERM; ``--replay FILE`` replays a file as fast as it goes, waits for the
pipeline to settle and stops. Either way it then prints where to look: the view, the topics, the report
and what the trader was waiting for.
"""

from __future__ import annotations

import json
import os
import signal
import threading
import time
import urllib.request
from dataclasses import dataclass
from pathlib import Path
from types import FrameType
from typing import Any

from contracts.broker_check import require_broker
from contracts.settings import tickflow_home
from contracts.timeutil import iso, now_ms
from tickflow.demo.live import LiveBoard
from tickflow.demo.policy import bundle_cadence, ensure_bundle, valid_bundle
from tickflow.demo.runner import SERVICES, Processes, drain, fresh_dirs
from tickflow.run.reach import venue_problem

DRAIN_BUDGET_S = 300.0  # after a replay, how long the pipeline may take to settle
POLICY_ID = "run"  # the trader's policy id


class NoInternet(RuntimeError):
    """`--live` cannot reach its venue: one line, said before anything starts."""


@dataclass(frozen=True)
class RunOptions:
    replay: Path | None = None  # None: live
    venue: str = "binance"
    symbols: str = "BTC-USDT"
    url: str | None = None  # the venue's websocket address (default the venue's own)
    bundle: Path | None = None  # None: the demo's, trained if missing
    timesteps: int = 20_000
    view_port: int = 8050
    board: bool = True


def live_url(opts: RunOptions) -> str:
    from ingestor.venues import venue

    return opts.url or venue(opts.venue).url([s.strip() for s in opts.symbols.split(",") if s.strip()])


def run(opts: RunOptions) -> int:
    from infra.kafka.broker import LocalBroker, free_port
    from tickflow.demo.report import read_topics, summarise, write_report

    if opts.replay is None:
        problem = venue_problem(live_url(opts))
        if problem is not None:
            raise NoInternet(f"--live needs internet access to {opts.venue}: {problem}; "
                             "offline, replay a file instead: `tickflow run --replay FILE`")
    elif not opts.replay.is_file():
        raise FileNotFoundError(2, "no such file", str(opts.replay))
    home = tickflow_home()
    out = home / "run"
    if opts.bundle is not None:
        problem = valid_bundle(opts.bundle)
        if problem is not None:
            raise ValueError(f"--bundle {opts.bundle}: {problem}")
        bundle = opts.bundle
    else:
        bundle, _ = ensure_bundle(home / "bundles" / "demo", timesteps=opts.timesteps)
    interval, every = bundle_cadence(bundle)

    own, logs = fresh_dirs(out)
    broker: LocalBroker | None = None
    if "KAFKA_BOOTSTRAP" in os.environ:  # given, or the broker this home runs (`tickflow kafka start`)
        bootstrap = require_broker()
        print(f"kafka: using the broker at {bootstrap}", flush=True)
    else:
        broker = LocalBroker(own, "127.0.0.1", free_port())
        bootstrap = broker.start(timeout=120, die_with_parent=True,
                                 on_progress=lambda m: print(f"kafka: {m}", flush=True)).bootstrap
    trader_port, view_port = free_port(), opts.view_port or free_port()
    env = dict(os.environ, KAFKA_BOOTSTRAP=bootstrap, TICKFLOW_HOME=str(out), PYTHONUNBUFFERED="1",
               TRADER__HTTP_PORT=str(trader_port))
    procs = Processes(env, logs)
    stop = _stop_on_signals()
    board = LiveBoard(bootstrap, enabled=opts.board, interval_s=interval, name="run")
    started, started_ms = time.monotonic(), now_ms()
    health: dict[str, Any] | None = None
    try:
        procs.start("streams", "streams", "worker")
        procs.start("paper", "paper")
        procs.start("trader", "trade", "--bundle", str(bundle), "--policy-id", POLICY_ID)
        procs.start("view", "view", "--port", str(view_port), "--interval", str(interval))
        print(f"view: http://127.0.0.1:{view_port}/ ; trader status: http://127.0.0.1:{trader_port}/health ; "
              f"logs: {logs}", flush=True)
        board.start()
        _feed(procs, board, opts, bootstrap, stop)
        health = _health(trader_port)
        board.stage = "stopping"
        for name in ("view", "trader", "paper", "streams"):
            procs.stop(name)
        board.refresh()
    finally:
        board.stop()
        procs.stop_all()
    try:
        figures = summarise(read_topics(bootstrap), since_ts=0, every=every)
    finally:
        if broker is not None:
            broker.stop()
    kafka_home = own if broker is not None else None
    report = write_report(out, figures, {
        "started": iso(started_ms), "finished": iso(now_ms()), "seconds": time.monotonic() - started,
        "data": str(opts.replay) if opts.replay else f"live {opts.venue} {opts.symbols}", "logs": str(logs),
        "kafka_home": str(own / "kafka") if kafka_home else bootstrap, "kafka_home_parent": str(kafka_home or "")})
    _where_to_look(figures, report, logs, bootstrap, own if broker is not None else None, view_port, health)
    return 0


def _stop_on_signals() -> threading.Event:
    stop = threading.Event()

    def on_signal(signum: int, _frame: FrameType | None) -> None:
        stop.set()

    signal.signal(signal.SIGINT, on_signal)
    signal.signal(signal.SIGTERM, on_signal)
    return stop


def _feed(procs: Processes, board: LiveBoard, opts: RunOptions, bootstrap: str, stop: threading.Event) -> None:
    """Live: ingest until a signal. Replay: to the end of the file, then until the topics settle."""
    if opts.replay is None:
        args = ["ingest", "live", "--venue", opts.venue, "--symbols", opts.symbols]
        args += ["--url", opts.url] if opts.url else []
        board.stage = f"live {opts.venue} {opts.symbols}: Ctrl-C stops"
    else:
        args = ["ingest", "replay", str(opts.replay), "--speed", "max", "--no-progress"]
        board.stage = f"replaying {opts.replay.name}"
    feed = procs.start("ingest", *args)
    while not stop.is_set() and feed.poll() is None:
        procs.check_alive(*SERVICES, "view")
        board.refresh()
        stop.wait(0.25)
    if opts.replay is None or stop.is_set():
        procs.stop("ingest")
        return
    if procs.stop("ingest") not in (0, None):
        raise RuntimeError(f"the replay of {opts.replay} failed; see {procs.logs / 'ingest.log'}")
    drain(procs, board, bootstrap, POLICY_ID, time.monotonic() + DRAIN_BUDGET_S, stop)


def _health(port: int) -> dict[str, Any] | None:
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/health", timeout=5) as resp:
            data: dict[str, Any] = json.load(resp)
            return data
    except OSError:
        return None


def _where_to_look(figures: dict[str, Any], report: Path, logs: Path, bootstrap: str, own: Path | None,
                   view_port: int, health: dict[str, Any] | None) -> None:
    counts = ", ".join(f"{k} {v:,}" for k, v in figures["counts"].items() if not k.endswith(".dlq"))
    print(f"run stopped: {counts}")
    if health is not None:
        print(f"trader: {health['decisions']:,} decisions, {figures['orders']:,} orders; waiting for: "
              f"{health['waiting_for']}")
    print(f"report: {report}")
    print(f"logs: {logs}")
    print(f"the view was at http://127.0.0.1:{view_port}/ (`tickflow view` shows the topics again)")
    if own is not None:
        print(f"topics: kept under {own}; read them with `TICKFLOW_HOME={own} tickflow kafka start`, then "
              "`tickflow topic dump orders`")
    else:
        print(f"topics: on the broker at {bootstrap}: `tickflow topic dump orders`")
