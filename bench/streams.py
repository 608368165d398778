"""Streams benchmarks: one Faust worker, trades -> bars -> features, 100 symbols x 3 intervals (1, 60, 300 s).

- streams.trades_per_s_per_worker: a backlog of synthetic trades (100 symbols, 100 trades/s each in event
  time) with their books flowing beside them on ``market.books`` (a 50-level snapshot per symbol, then a delta
  of 5 level changes every 100 ms, as Binance's diffs come; ``streams.book_records``), consumed by one
  `tickflow streams worker`, which computes schema v2 with the book features; rate between its first and last
  output bar (Kafka CreateTime), over the trades those bars' event times span. References, same run: the
  same trades and books through ``Processor`` in-process (the bars-and-features work alone, no Kafka, no Faust), and
  ``streams.trades_per_s_per_worker_no_books``: the same trades alone (topics under the prefix ``nobooks.``,
  an empty books topic) through a second worker. ``extra`` gives each worker's CPU seconds per million trades
  (the process, librdkafka's threads included, from its first output to its last), the figure that holds when
  the machine's cores are shared with other work.
- streams.peak_rss_mb: the worker's peak resident memory (VmHWM) after that run.
- streams.bar_to_feature_p99_ms: live mode on the same worker: 20 symbols trading now (some quiet) for 30 s,
  each feature vector's append to ``signals.features`` (the broker's LogAppendTime, which this bench sets on
  its own broker's topic) minus its bar's end plus grace; beside it, the arrival at a consumer with the
  trader's fetch settings. The first two seconds of bars (new keys, the consumer's first fetches) are left out.
  Reference, same run (streams.burst_append_floor_p99_ms), before the worker starts: the same trade load and a
  bare producer with the worker's settings sending a live close's burst at each whole second: what the broker
  alone gives.
"""

from __future__ import annotations

import json
import os
import random
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import IO, Any

import numpy as np
from confluent_kafka import OFFSET_END, Consumer, KafkaError, KafkaException, Message, Producer, TopicPartition
from confluent_kafka.admin import AdminClient, AlterConfigOpType, ConfigEntry, ConfigResource, NewTopic

from bench.context import BenchContext
from bench.results import Result
from contracts import V1, Bar, Trade, decode, encode, market_key
from contracts.books import BookUpdate
from contracts.client_config import client_config, producer_config
from contracts.messages import FeatureVector
from contracts.topics import MARKET_BOOKS, SIGNALS_BARS, SIGNALS_FEATURES
from streams.processor import Output, Processor

FRESH_BROKER = True  # reads market.trades / signals.features: only its own records there
NO_BOOKS = "nobooks."  # the topic prefix of the reference run without books

REPO = Path(__file__).resolve().parents[1]
SYMBOLS = 100
N_TRADES = 600_000
GRACE_MS = 2000


def _trades(n: int, t0: int) -> list[Trade]:
    rnd = random.Random(7)
    prices = [100.0 + i for i in range(SYMBOLS)]
    out = []
    for i in range(n):
        k = i % SYMBOLS
        prices[k] *= 1 + rnd.gauss(0, 1e-4)
        ts = t0 + i // 10  # 10,000 trades per second across the market
        out.append(Trade(schema_version=V1, exchange="bench", symbol=f"S{k:03d}-USDT", venue_symbol=f"S{k:03d}USDT",
                         trade_id=str(i), price=round(prices[k], 4), size=rnd.uniform(0.001, 2.0),
                         side="buy" if rnd.random() < 0.5 else "sell", ts_event=ts, ts_ingest=ts))
    return out


def _books(t0: int, span_ms: int) -> list[BookUpdate]:
    """Per symbol: a snapshot of 50 levels a side at t0, then every 100 ms a delta changing 5 levels' sizes."""
    rnd = random.Random(11)
    out = []
    for k in range(SYMBOLS):
        mid = 100.0 + k
        bids = [(round(mid - 0.01 * (i + 1), 2), rnd.uniform(0.1, 5)) for i in range(50)]
        asks = [(round(mid + 0.01 * (i + 1), 2), rnd.uniform(0.1, 5)) for i in range(50)]
        common: dict[str, Any] = {"schema_version": V1, "exchange": "bench", "symbol": f"S{k:03d}-USDT",
                  "venue_symbol": f"S{k:03d}USDT"}
        out.append(BookUpdate(**common, kind="snapshot", seq=1, bids=bids, asks=asks, ts_event=t0, ts_ingest=t0))
        for n, ts in enumerate(range(t0 + 100, t0 + span_ms, 100), start=2):
            out.append(BookUpdate(**common, kind="delta", seq=n, first_seq=n,
                                  bids=[(bids[rnd.randrange(50)][0], rnd.uniform(0.1, 5)) for _ in range(3)],
                                  asks=[(asks[rnd.randrange(50)][0], rnd.uniform(0.1, 5)) for _ in range(2)],
                                  ts_event=ts, ts_ingest=ts))
    out.sort(key=lambda u: u.ts_event)
    return out


def _produce(bootstrap: str, trades: list[Trade], books: list[BookUpdate], prefix: str = "") -> None:
    p = Producer(producer_config(bootstrap, {"linger.ms": 50, "compression.type": "lz4"}))
    records: list[tuple[str, str, str, Trade | BookUpdate]] = [(f"{prefix}market.books", u.exchange, u.symbol, u)
                                                               for u in books]
    records += [(f"{prefix}market.trades", t.exchange, t.symbol, t) for t in trades]
    for topic, exchange, symbol, value in records:
        while True:
            try:
                p.produce(topic, encode(value), market_key(exchange, symbol))
                break
            except BufferError:
                p.poll(0.05)
    p.flush(60)


def _output_times(bootstrap: str, topic: str, idle_s: float = 3.0) -> list[tuple[int, int]]:
    """(CreateTime, window_end) of each bar on ``topic``, read until none came for ``idle_s``."""
    c = Consumer({**client_config(bootstrap), "group.id": f"bench-{time.time_ns()}", "enable.auto.commit": False})
    parts = c.list_topics(topic, timeout=10).topics[topic].partitions
    c.assign([TopicPartition(topic, p, 0) for p in parts])
    times: list[tuple[int, int]] = []
    last = time.monotonic()
    while time.monotonic() - last < idle_s:
        for m in c.consume(10_000, 0.5):
            if not m.error():
                times.append((m.timestamp()[1], decode(m.value() or b"", Bar).window_end))
                last = time.monotonic()
    c.close()
    return times


def _cpu_s(pid: int) -> float:
    """User plus system CPU seconds of a process, every thread."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def _wait_outputs(bootstrap: str, topic: str, want: int, timeout: float, pid: int) -> tuple[int, float]:
    """(records on ``topic`` once ``want`` are there or at the timeout, CPU seconds of ``pid`` at its first
    output record)."""
    c = Consumer({**client_config(bootstrap), "group.id": "bench-count"})
    deadline = time.monotonic() + timeout
    n = 0
    first = float("nan")
    while time.monotonic() < deadline:
        try:
            n = sum(c.get_watermark_offsets(TopicPartition(topic, p), timeout=10)[1] for p in range(4))
        except KafkaException as err:  # the worker has not created its output topic yet
            if err.args[0].code() != KafkaError._UNKNOWN_PARTITION:
                raise
            n = 0
        if n and first != first:  # nan: not yet
            first = _cpu_s(pid)
        if n >= want:
            break
        time.sleep(0.2)
    c.close()
    return n, first


def _worker(ctx: BenchContext, prefix: str = "") -> tuple[subprocess.Popen[bytes], IO[bytes]]:
    """A `tickflow streams worker` on the topics under ``prefix``, and its log file."""
    env = dict(os.environ, KAFKA_BOOTSTRAP=ctx.bootstrap, TICKFLOW_HOME=str(ctx.workdir / f"{prefix}streams-home"),
               PYTHONPATH=str(REPO), STREAMS__GRACE_MS=str(GRACE_MS), TICKFLOW_TOPIC_PREFIX=prefix)
    log = (ctx.workdir / f"{prefix}streams-worker.log").open("wb")
    return subprocess.Popen([sys.executable, "-m", "tickflow", "streams", "worker"], env=env, stdout=log,
                            stderr=subprocess.STDOUT, cwd=REPO), log


def _stop(worker: subprocess.Popen[bytes], log: IO[bytes]) -> None:
    worker.send_signal(signal.SIGTERM)
    worker.wait(30)
    log.close()


def _backlog(ctx: BenchContext, worker: subprocess.Popen[bytes], bars_topic: str, trades_per_ms: float,
             span_s: int) -> tuple[int, float, float]:
    """(bars, trades/s, the worker's CPU seconds per million trades) between its first and last output record.
    The trades those took are told by the bars' event times (``trades_per_ms`` of event time), so a worker that
    had not finished the backlog when the reading stopped is measured on what it did."""
    # every symbol closes ~(span - grace) one-second bars; wait for nearly all of them
    _, cpu_first = _wait_outputs(ctx.bootstrap, bars_topic, SYMBOLS * (span_s - 3), 100, worker.pid)
    out = _output_times(ctx.bootstrap, bars_topic)  # read until none came for 3 s
    cpu_s = _cpu_s(worker.pid) - cpu_first
    created = [c for c, _ in out]
    ends = [e for _, e in out]
    trades = trades_per_ms * (max(ends) - min(ends))
    return len(out), trades / max((max(created) - min(created)) / 1000, 1e-3), cpu_s / max(trades, 1.0) * 1e6


def _peak_rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def _live_latency(bootstrap: str, seconds: float, warm_up_bars: int = 2) -> tuple[list[int], list[float]]:
    """Produce trades stamped now for 20 symbols (5 of them quiet) and time each 1 s feature vector from its bar's
    end plus grace to (a) its append to signals.features (the broker's LogAppendTime, set on this bench broker's
    topic; whole ms) and (b) its arrival at a consumer with the trader's fetch settings; the first
    ``warm_up_bars`` seconds (new keys, a new consumer's first fetches) are left out."""
    _log_append_time(AdminClient(client_config(bootstrap)), SIGNALS_FEATURES.name)
    on_topic: list[int] = []
    at_consumer: list[float] = []
    first_end: list[int] = []
    stop = threading.Event()
    ready = threading.Event()

    def consume() -> None:
        c = Consumer({**client_config(bootstrap), "group.id": f"bench-live-{time.time_ns()}",
                      "enable.auto.commit": False, "fetch.wait.max.ms": 5})
        c.assign([TopicPartition("signals.features", p, OFFSET_END) for p in range(4)])
        c.consume(1, 0.5)
        ready.set()
        while not stop.is_set():
            m = c.poll(0.05)  # returns with the first record (consume(n) would wait for n of them)
            recv = time.time() * 1000
            if m is None or m.error():
                continue
            fv = decode(m.value() or b"", FeatureVector)
            if fv.exchange == "live" and fv.interval_s == 1:
                if not first_end:
                    first_end.append(fv.ts)
                if fv.ts >= first_end[0] + warm_up_bars * 1000:
                    due = fv.ts + GRACE_MS
                    on_topic.append(m.timestamp()[1] - due)
                    at_consumer.append(recv - due)
        c.close()

    thread = threading.Thread(target=consume, daemon=True)
    thread.start()
    ready.wait(10)
    _trade_load(bootstrap, "market.trades", seconds)
    time.sleep(GRACE_MS / 1000 + 1.5)  # let the last bars close on the wall clock
    stop.set()
    thread.join(10)
    return on_topic, at_consumer


def _trade_load(bootstrap: str, topic: str, seconds: float) -> None:
    """Trades stamped now for 20 symbols (5 of them quiet), every 10 ms."""
    p = Producer(producer_config(bootstrap, {"linger.ms": 0, "enable.idempotence": False}))
    rnd = random.Random(3)
    start = time.monotonic()
    i = 0
    while time.monotonic() - start < seconds:
        now = int(time.time() * 1000)
        for k in range(20):
            if k >= 15 and rnd.random() > 0.02:  # quiet symbols: a trade now and then
                continue
            t = Trade(schema_version=V1, exchange="live", symbol=f"L{k:02d}-USDT", venue_symbol=f"L{k:02d}USDT",
                      trade_id=str(i), price=100.0 + rnd.random(), size=0.1, side="buy", ts_event=now, ts_ingest=now)
            p.produce(topic, encode(t), market_key(t.exchange, t.symbol))
            i += 1
        p.poll(0)
        time.sleep(0.01)
    p.flush(10)


def _log_append_time(admin: AdminClient, topic: str) -> None:
    res = ConfigResource("topic", topic, incremental_configs=[
        ConfigEntry("message.timestamp.type", "LogAppendTime", incremental_operation=AlterConfigOpType.SET)])
    admin.incremental_alter_configs([res])[res].result(30)


def _burst_floor(bootstrap: str, seconds: float, burst: list[Output]) -> list[int]:
    """The floor of bar_to_feature without the worker: under the same trade load (to a topic nobody reads), at
    every whole second a bare producer with the worker's settings sends a burst like a live close (20 feature
    vectors, then 20 bars, on the same partitions); each vector's append (LogAppendTime) minus the second."""
    admin = AdminClient(client_config(bootstrap))
    topics = {SIGNALS_FEATURES.name: "bench.burst.features", SIGNALS_BARS.name: "bench.burst.bars"}
    for f in admin.create_topics([NewTopic(t, 4, 1) for t in [*topics.values(), "bench.load"]]).values():
        f.result(30)
    for t in topics.values():
        _log_append_time(admin, t)
    p = Producer(producer_config(bootstrap, {"linger.ms": 0}))
    load = threading.Thread(target=_trade_load, args=(bootstrap, "bench.load", seconds), daemon=True)
    load.start()
    lat: list[int] = []
    due = 0

    def delivered(err: object, msg: Message) -> None:
        if err is None and msg.topic() == topics[SIGNALS_FEATURES.name]:
            lat.append(msg.timestamp()[1] - due)

    end = time.time() + seconds
    while time.time() + 1 < end:
        due = (int(time.time()) + 1) * 1000
        time.sleep(max(due / 1000 - time.time(), 0))
        for o in burst:
            p.produce(topics[o.topic], o.value, o.key, -1 if o.partition is None else o.partition,  # -1: any
                      on_delivery=delivered)
        p.flush(10)
    load.join(seconds + 10)
    return lat[len(burst) // 2:]  # the first burst (new connections, the producer id) left out


def _pct(xs: list[float] | list[int], q: float) -> float:
    return float(np.percentile(xs, q)) if xs else float("nan")


def run(ctx: BenchContext) -> list[Result]:
    t0 = int(time.time() * 1000) - 86_400_000  # a day ago: a replay, not live
    trades = _trades(N_TRADES, t0)
    books = _books(t0, trades[-1].ts_event - t0)

    proc_ref = Processor((1, 60, 300), GRACE_MS, books=True)
    raw = [encode(t) for t in trades]
    started = time.perf_counter()
    proc_ref.apply_books(((0, i, encode(u)) for i, u in enumerate(books)), 0)
    proc_ref.books_at_end([0], 0)
    last: list[Output] = []
    for i in range(0, len(raw), 5000):
        last = proc_ref.apply(((0, i + j, r) for j, r in enumerate(raw[i:i + 5000])), 0) or last
    ref_rate = len(raw) / (time.perf_counter() - started)

    # The floor first, on the broker as the worker will find it (the backlog written), before any worker runs:
    # 20 feature vectors and 20 bars of 1 s from the reference run, spread over 4 partitions as live keys are.
    one_s = [o for o in last if json.loads(o.value)["interval_s"] == 1]
    burst = [Output(o.topic, o.key, o.value, i % 4) for t in (SIGNALS_FEATURES.name, SIGNALS_BARS.name)
             for i, o in enumerate([o for o in one_s if o.topic == t][:20])]
    assert len(burst) == 40, f"the reference run's last outputs hold {len(burst)} 1 s records, not 40"
    _produce(ctx.bootstrap, trades, books)
    floor = _burst_floor(ctx.bootstrap, 30.0, burst)
    span_s = (trades[-1].ts_event - t0) // 1000
    per_ms = N_TRADES / (trades[-1].ts_event - t0)  # trades per ms of event time
    worker, log = _worker(ctx)
    try:
        got, rate, cpu = _backlog(ctx, worker, SIGNALS_BARS.name, per_ms, span_s)
        load = os.getloadavg()[0]
        rss = _peak_rss_mb(worker.pid)
        on_topic, at_consumer = _live_latency(ctx.bootstrap, 30.0)
    finally:
        _stop(worker, log)
    # The reference: the same trades without books, through a worker of their own (its books topic empty)
    admin = AdminClient(client_config(ctx.bootstrap))
    made = [NewTopic(f"{NO_BOOKS}{t}", 4, 1) for t in (MARKET_BOOKS.name, SIGNALS_BARS.name, SIGNALS_FEATURES.name)]
    for f in admin.create_topics(made).values():
        f.result(30)
    _produce(ctx.bootstrap, trades, [], NO_BOOKS)
    worker, log = _worker(ctx, NO_BOOKS)
    try:
        got_nb, rate_nb, cpu_nb = _backlog(ctx, worker, f"{NO_BOOKS}{SIGNALS_BARS.name}", per_ms, span_s)
        load_nb = os.getloadavg()[0]
    finally:
        _stop(worker, log)
    return [
        Result("streams.processor_trades_per_s", ref_rate, "trades/s",
               note="Processor alone (decode, 3 intervals, features v2 with the books): the work without Kafka or "
                    "Faust"),
        Result("streams.trades_per_s_per_worker", rate, "trades/s",
               reference="streams.trades_per_s_per_worker_no_books",
               note=f"one Faust worker, {SYMBOLS} symbols x 3 intervals, {got} bars, books flowing "
                    f"({len(books):,} market.books records); goal >= 100,000; the processor alone did "
                    f"{ref_rate:,.0f} trades/s (streams.processor_trades_per_s)",
               extra={"bars": float(got), "book_records": float(len(books)), "cpu_s_per_m_trades": cpu,
                      "load_avg_1m": load}),
        Result("streams.trades_per_s_per_worker_no_books", rate_nb, "trades/s",
               note=f"reference: the same {N_TRADES:,} trades without books (an empty books topic) through a "
                    f"worker of their own, after the one with books; {got_nb} bars",
               extra={"bars": float(got_nb), "cpu_s_per_m_trades": cpu_nb, "load_avg_1m": load_nb}),
        Result("streams.peak_rss_mb", rss, "MB", note=f"worker VmHWM, {SYMBOLS} symbols x 3 intervals; goal < 400"),
        Result("streams.burst_append_floor_p99_ms", _pct(floor, 99), "ms",
               note=f"reference: no worker; a bare idempotent producer sends a live close's burst (20 feature "
                    f"vectors, 20 bars) at each whole second under the same trade load; vector appended minus the "
                    f"second (whole ms), {len(floor)} vectors", extra={"p50_ms": _pct(floor, 50)}),
        Result("streams.bar_to_feature_p99_ms", _pct(on_topic, 99), "ms",
               reference="streams.burst_append_floor_p99_ms",
               note=f"live, 1 s bars of 20 symbols (5 quiet), bar end + grace -> feature appended to the topic "
                    f"(broker LogAppendTime, whole ms), {len(on_topic)} vectors after 2 s of warm-up; goal <= 5",
               extra={"p50_ms": _pct(on_topic, 50), "at_consumer_p99_ms": _pct(at_consumer, 99),
                      "at_consumer_p50_ms": _pct(at_consumer, 50)}),
    ]
