"""`make demo`: broker, Faust worker, trader, paper broker, replay of the bundled data, view, report.

Every process it starts is a child in its own process group, started with ``tickflow`` commands; all
of them (and the broker) are stopped on the way out, also after an error or Ctrl-C. The broker's data
stays under ``TICKFLOW_HOME/demo/kafka`` so the report can be checked against the topics afterwards.
"""

from __future__ import annotations

import contextlib
import csv
import gzip
import logging
import os
import shutil
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from confluent_kafka import KafkaException

from contracts import Topic, kafka_io
from contracts.settings import tickflow_home
from contracts.timeutil import iso, now_ms
from contracts.topics import LIVE, MARKET_TRADES, ORDERS, SIGNALS_FEATURES
from paper.broker import GROUP as PAPER_GROUP
from streams.spec import load_settings
from tickflow.demo.live import LiveBoard
from tickflow.demo.policy import DEFAULT_CANDLES, REPO, bundle_cadence, ensure_bundle

log = logging.getLogger(__name__)

# The recorded Binance frames: BTCUSDT's trades (the 19,904 of data/ticks/BTCUSDT-trades-*.csv, the same ids),
# its depth diffs and the REST depth snapshot they start from, so the replay publishes market.books too.
FRAMES = next((REPO / "data" / "ticks").glob("binance_spot_btcusdt_*_timed.jsonl.gz"))


@dataclass(frozen=True)
class DemoOptions:
    days: float = 3.0
    bundle: Path | None = None
    timesteps: int = 20_000
    live: bool = False
    venue: str = "binance"
    symbols: str = "BTC-USDT"
    live_seconds: float = 120.0
    budget_s: float = 170.0
    view: bool = True


class Processes:
    """The demo's child processes: started in their own groups, stopped with SIGTERM, then SIGKILL."""

    def __init__(self, env: dict[str, str], logs: Path) -> None:
        self.env = env
        self.logs = logs
        self.procs: dict[str, subprocess.Popen[bytes]] = {}

    def start(self, name: str, *args: str) -> subprocess.Popen[bytes]:
        log_file = (self.logs / f"{name}.log").open("ab")
        proc = subprocess.Popen([sys.executable, "-m", "tickflow", *args], env=self.env, cwd=REPO,
                                stdout=log_file, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                                start_new_session=True)
        log_file.close()
        self.procs[name] = proc
        return proc

    def check_alive(self, *names: str) -> None:
        for name in names:
            code = self.procs[name].poll()
            if code is not None:
                tail = (self.logs / f"{name}.log").read_text(errors="replace").splitlines()[-15:]
                raise RuntimeError(f"the {name} process exited with code {code}; its log ends:\n" + "\n".join(tail))

    def stop(self, name: str, timeout: float = 20.0) -> int | None:
        proc = self.procs.pop(name, None)
        if proc is None:
            return None
        if proc.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(proc.pid, signal.SIGTERM)
            try:
                proc.wait(timeout)
            except subprocess.TimeoutExpired:
                os.killpg(proc.pid, signal.SIGKILL)
                proc.wait(10)
        return proc.returncode

    def stop_all(self) -> None:
        for name in reversed(list(self.procs)):
            self.stop(name)


def candle_slice(src: Path, out: Path, days: float) -> tuple[int, int]:
    """The last ``days`` of a candle file, as a plain CSV candle file; returns (rows, first open time)."""
    with gzip.open(src, "rt", newline="") as f:
        rows = list(csv.reader(f))
    header, body = rows[0], rows[1:]
    keep = body[-max(1, int(days * 1440)):]
    with out.open("w", newline="") as f:
        writer = csv.writer(f)
        writer.writerow(header)
        writer.writerows(keep)
    return len(keep), int(keep[0][0])


Feed = tuple[str, tuple[str, ...]]  # a process name and its `tickflow` arguments
SERVICES = ("streams", "paper", "trader")
POLICY_ID = "demo"  # the demo trader's policy id


def fresh_dirs(demo: Path) -> tuple[Path, Path]:
    """The broker's and the logs' folders, emptied: the report counts this run only."""
    kafka_home, logs = demo / "broker", demo / "logs"
    shutil.rmtree(kafka_home, ignore_errors=True)
    shutil.rmtree(logs, ignore_errors=True)
    logs.mkdir(parents=True)
    return kafka_home, logs


def _feeds(opts: DemoOptions, demo: Path, started_ms: int) -> tuple[list[Feed], str, int]:
    """What feeds market.trades (live ingest, or the bundled frames then candles), its description for
    the report, and the event time the report's comparison starts from."""
    if opts.live:
        return ([("ingest-live", ("ingest", "live", "--venue", opts.venue, "--symbols", opts.symbols))],
                f"live {opts.venue} {opts.symbols} for {opts.live_seconds:.0f} s", started_ms)
    candles = demo / f"BTCUSDT_1m_last{opts.days:g}d.csv"
    rows, first = candle_slice(DEFAULT_CANDLES, candles, opts.days)
    note = (f"{FRAMES.name} (real Binance frames: trades, and the depth diffs with their REST snapshot for the "
            f"order book), then {rows:,} 1-minute candles of BTCUSDT from "
            f"{iso(first)[:16]} expanded into trades (derived data)")
    feeds: list[Feed] = [
        ("replay-frames", ("ingest", "replay", str(FRAMES), "--venue", "binance", "--speed", "max",
                           "--no-progress")),
        ("replay-candles", ("ingest", "replay", str(candles), "--from-candles", "--symbol", "BTCUSDT",
                            "--venue", "binance", "--speed", "max", "--no-progress"))]
    return feeds, note, first


def _run_feeds(procs: Processes, board: LiveBoard, feeds: list[Feed], opts: DemoOptions, logs: Path) -> None:
    """Each feed in turn: a replay until it finishes (within the budget), live ingest for its seconds."""
    for name, args in feeds:
        board.stage = f"{name}: {' '.join(args[:2])}"
        proc = procs.start(name, *args)
        deadline = time.monotonic() + (opts.live_seconds if opts.live else opts.budget_s)
        while proc.poll() is None and time.monotonic() < deadline:
            procs.check_alive(*SERVICES)
            board.refresh()
            time.sleep(0.25)
        if opts.live:
            procs.stop(name)
        elif procs.stop(name) not in (0, None):
            raise RuntimeError(f"{name} failed; see {logs / (name + '.log')}")


class Committed:
    """Whether each (consumer group, topic) has its committed offsets at the topic's end offsets: the streams
    worker every trade (it commits after its outputs are acknowledged), the trader every feature vector and
    the paper broker every order (both commit their offsets in the transaction of what they wrote)."""

    def __init__(self, bootstrap: str, reads: list[tuple[str, Topic]]) -> None:
        # never subscribed: they only read the groups' offsets
        self.reads = [(kafka_io.consumer(bootstrap, group), topic) for group, topic in reads]

    def __call__(self) -> bool:
        try:
            for consumer, topic in self.reads:
                at = kafka_io.committed(consumer, topic)
                for tp in kafka_io.partitions(consumer, topic):
                    low, high = consumer.get_watermark_offsets(tp, timeout=5)
                    if high > low and at.get(tp.partition, -1) < high:  # an empty partition: nothing to read
                        return False
        except KafkaException as err:
            log.info("Committed offsets not readable yet (%s).", err)
            return False
        return True

    def close(self) -> None:
        for consumer, _ in self.reads:
            consumer.close()


def service_reads(policy_id: str) -> list[tuple[str, Topic]]:
    """The groups of the streams worker, the trader of ``policy_id`` and the paper broker, with what they read."""
    return [(load_settings().app_id, MARKET_TRADES), (LIVE.group(f"tickflow-trader-{policy_id}"), SIGNALS_FEATURES),
            (LIVE.group(PAPER_GROUP), ORDERS)]


QUIET_S = 6.0  # no total moved for this long: settled
QUIET_CAUGHT_UP_S = 2.0  # ... or for this long with every input of the services committed


def drain(procs: Processes, board: LiveBoard, bootstrap: str, policy_id: str, until: float,
          stop: threading.Event | None = None) -> None:
    """Wait until the topics' totals stop moving: for QUIET_CAUGHT_UP_S once the streams worker, the trader of
    ``policy_id`` and the paper broker have committed all they read (``Committed``), else for QUIET_S; or
    until the budget ends at monotonic ``until``, or ``stop`` is set."""
    caught_up = Committed(bootstrap, service_reads(policy_id))
    try:
        _settle(procs, board, until, stop, caught_up)
    finally:
        caught_up.close()


def _settle(procs: Processes, board: LiveBoard, until: float, stop: threading.Event | None,
            caught_up: Callable[[], bool]) -> None:
    board.stage = "draining: waiting for bars, features, orders and fills to settle"
    quiet_since, last = time.monotonic(), board.totals()
    while time.monotonic() < until and not (stop and stop.is_set()):
        quiet = time.monotonic() - quiet_since
        if quiet >= QUIET_S or (quiet >= QUIET_CAUGHT_UP_S and caught_up()):
            return
        procs.check_alive(*SERVICES)
        board.refresh()
        time.sleep(0.25)
        now = board.totals()
        if now != last:
            quiet_since, last = time.monotonic(), now


def run_demo(opts: DemoOptions) -> int:
    from infra.kafka.broker import LocalBroker, free_port
    from tickflow.demo.report import read_topics, summarise, write_report

    home = tickflow_home()
    demo = home / "demo"
    kafka_home, logs = fresh_dirs(demo)
    bundle_dir = opts.bundle or home / "bundles" / "demo"
    bundle, trained = ensure_bundle(bundle_dir, timesteps=opts.timesteps)
    print(f"policy bundle: {bundle} ({'trained now' if trained else 'valid, kept'})", flush=True)

    broker = LocalBroker(kafka_home, "127.0.0.1", free_port())
    info = broker.start(timeout=120, die_with_parent=True, on_progress=lambda m: print(f"kafka: {m}", flush=True))
    env = dict(os.environ, KAFKA_BOOTSTRAP=info.bootstrap, TICKFLOW_HOME=str(demo), PYTHONUNBUFFERED="1")
    procs = Processes(env, logs)
    started = time.monotonic()
    started_ms = now_ms()
    interval, every = bundle_cadence(bundle)
    board = LiveBoard(info.bootstrap, enabled=opts.view, interval_s=interval)
    try:
        procs.start("streams", "streams", "worker")
        procs.start("paper", "paper")
        procs.start("trader", "trade", "--bundle", str(bundle), "--policy-id", POLICY_ID)
        board.start()
        feeds, data_note, focus_ts = _feeds(opts, demo, started_ms)
        _run_feeds(procs, board, feeds, opts, logs)
        drain(procs, board, info.bootstrap, POLICY_ID, started + opts.budget_s)
        board.stage = "stopping"
        for name in ("trader", "paper", "streams"):
            procs.stop(name)
        board.refresh()
    finally:
        board.stop()
        procs.stop_all()
    try:
        figures = summarise(read_topics(info.bootstrap), since_ts=focus_ts, every=every)
    finally:
        broker.stop()
    seconds = time.monotonic() - started
    report = write_report(demo, figures, {
        "started": iso(started_ms), "finished": iso(now_ms()), "seconds": seconds, "data": data_note,
        "logs": str(logs), "kafka_home": str(kafka_home / "kafka"), "kafka_home_parent": str(kafka_home)})
    counts = ", ".join(f"{k} {v:,}" for k, v in figures["counts"].items() if not k.endswith(".dlq"))
    print(f"demo finished in {seconds:.0f} s: {counts}")
    print(f"report: {report}")
    return 0
