"""Feature -> order over Kafka: `tickflow trade` beside its floor (bench/txn_floor.py), measured in rounds.

Each loop is a process of its own, fed the same feature records one every 10 ms whatever it is doing, and
timed by one function from a feature produced to its order read back read_committed. The two loops run
one after the other in alternating rounds, each round on topics, a consumer group and a transactional id
of its own, in the order trader floor floor trader floor trader trader floor (for four pairs): each loop
opens as many pairs as the other and sits at the same mean position, so warm-up and the machine's slow
minutes land on both alike; an uncounted round of the floor's loop comes first (warm-up). The figures are
the p99 over the pooled rounds of each; each round's p99 and p50 and the load average beside it, and each
pair's ratio of the two p99s, go into the records' extra fields.
"""

from __future__ import annotations

import os
import subprocess
import sys
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from bench import txn_floor
from bench.context import BenchContext, stop_service
from bench.results import Result
from contracts.client_config import client_config, producer_config

if TYPE_CHECKING:
    from trader.policy.bundle import Bundle

REPO = Path(__file__).resolve().parents[1]
PAIRS = 4
LOOPS = ("trader", "floor")
WARM_UP = "warm-up"  # a round of the floor's loop that is not counted


def order_of_rounds(pairs: int) -> list[str]:
    """The loops in the order they run: pairs AB BA BA AB, repeated (A = trader, B = floor)."""
    a, b = LOOPS
    return [x for k in range(pairs) for x in ((a, b) if k % 4 in (0, 3) else (b, a))]


@dataclass
class Run:
    name: str  # trader or floor
    position: int  # its place in the run's order of rounds, from 0
    latencies_ms: list[float]  # feature produced -> its order read (read_committed), one per order
    load_avg: float  # 1-minute load average at the end
    pid: int
    peak_rss_mb: float = float("nan")
    torch_loaded: bool = False
    sent: dict[int, float] = field(default_factory=dict)  # feature ts -> produced (time.perf_counter)
    got: dict[int, float] = field(default_factory=dict)  # feature ts -> its order read
    trace: Path | None = None  # the loop's calls (bench/loop_trace.py) when traced

    def line(self) -> str:
        lat = np.asarray(self.latencies_ms)
        return (f"round {self.position + 1} {self.name}: p99 {np.percentile(lat, 99):.1f} ms, p50 "
                f"{np.percentile(lat, 50):.1f} ms, {len(lat)} orders, load average {self.load_avg:.1f}")


def run_pairs(ctx: BenchContext, bundle: Bundle, fvs: list[Any], pairs: int = PAIRS) -> list[Result]:
    """``trader.feature_to_order_p99_ms`` and ``kafka.txn_floor_p99_ms`` over ``pairs`` alternating pairs, after
    a warm-up round (the floor's loop, not counted: without it, the run's first round was by far its loop's
    slowest in two of three runs, 294 and 140 ms at p99 against at most 131 and 36 in its later rounds)."""
    orders = orders_offline(bundle, fvs)
    runs = measure(ctx, bundle, fvs, pairs, rounds=[WARM_UP, *order_of_rounds(pairs)])
    return results(runs, len(fvs), sum(map(len, orders.values())), pairs)


def measure(ctx: BenchContext, bundle: Bundle, fvs: list[Any], pairs: int, trace: bool = False,
            rounds: list[str] | None = None) -> list[Run]:
    """The rounds, in ``order_of_rounds(pairs)`` unless ``rounds`` names them (``floor+snapshot``: the floor
    with TXN_FLOOR_ADD=snapshot, for diagnosis); ``trace``: each loop runs under bench/loop_trace.py."""
    orders_path = _write_orders(ctx, orders_offline(bundle, fvs))
    runs: list[Run] = []
    for position, name in enumerate(rounds or order_of_rounds(pairs)):
        prefix = f"bench.r{position}."
        run = (_trader_round(ctx, bundle.path, fvs, prefix, position, trace) if name == "trader"
               else _floor_round(ctx, orders_path, fvs, prefix, position, trace, name))
        print(f"  {run.line()}", flush=True)
        runs.append(run)
    return runs


def results(runs: list[Run], n_features: int, n_orders: int, pairs: int) -> list[Result]:
    trader = [r for r in runs if r.name == "trader"]
    floor = [r for r in runs if r.name == "floor"]
    t_lat = [x for r in trader for x in r.latencies_ms]
    f_lat = [x for r in floor for x in r.latencies_ms]
    ratio = _p99(t_lat) / _p99(f_lat)
    counted = [r for r in runs if r.name in LOOPS]
    pair_ratios = {f"pair{k + 1}_ratio": _p99(t.latencies_ms) / _p99(f.latencies_ms)
                   for k, (a, b) in enumerate(zip(counted[::2], counted[1::2], strict=True))
                   for t, f in [(a, b) if a.name == "trader" else (b, a)]}
    return [
        Result("kafka.txn_floor_p99_ms", _p99(f_lat), "ms", None,
               f"reference: the trader's run without the trader: the same {n_features} feature records at the same "
               f"times, the same {n_orders} orders (decided offline) in one transaction with the consumed offsets "
               f"per batch, read back read_committed (bench/txn_floor.py); p99 over {pairs} rounds alternating "
               "with the trader's (bench/feature_to_order.py)",
               {"p50_ms": _p50(f_lat), "orders": len(f_lat), **_per_round(floor)}),
        Result("trader.feature_to_order_p99_ms", _p99(t_lat), "ms", "kafka.txn_floor_p99_ms",
               f"{len(t_lat)} orders over {pairs} rounds: feature produced -> order read (read_committed), one "
               "transaction per batch with output; rounds alternate with the floor's",
               {"p50_ms": _p50(t_lat), "ratio_to_floor": ratio, **pair_ratios, **_per_round(trader)}),
        Result("trader.peak_rss_mb", max(r.peak_rss_mb for r in trader), "MB", None,
               "peak RSS (VmHWM) of `tickflow trade`, the largest of its rounds; torch "
               + ("LOADED" if any(r.torch_loaded for r in trader) else "not loaded")),
    ]


def _p99(xs: list[float]) -> float:
    return float(np.percentile(np.asarray(xs), 99))


def _p50(xs: list[float]) -> float:
    return float(np.percentile(np.asarray(xs), 50))


def _per_round(runs: list[Run]) -> dict[str, float]:
    out: dict[str, float] = {}
    for r in runs:
        out[f"round{r.position + 1}_p99_ms"] = _p99(r.latencies_ms)
        out[f"round{r.position + 1}_p50_ms"] = _p50(r.latencies_ms)
        out[f"round{r.position + 1}_load_avg_1m"] = r.load_avg
    return out


def _trader_round(ctx: BenchContext, bundle: Path, fvs: list[Any], prefix: str, position: int, trace: bool) -> Run:
    from contracts.topics import ORDERS, PREFIX_ENV, SIGNALS_FEATURES
    from infra.kafka.admin import ensure_topics

    os.environ[PREFIX_ENV] = prefix  # the registry's topics under this round's prefix, created before it starts
    try:
        ensure_topics(ctx.bootstrap)
    finally:
        os.environ.pop(PREFIX_ENV, None)
    env = {"KAFKA_BOOTSTRAP": ctx.bootstrap, "TICKFLOW_HOME": str(ctx.workdir), "TRADER__HTTP_PORT": "-1",
           "TRADER__RISK__MAX_ORDERS_PER_MINUTE": "100000", PREFIX_ENV: prefix}
    cmd = ["tickflow", "trade", "--bundle", str(bundle), "--policy-id", "bench"]
    return feature_to_output(ctx, cmd, "trader", position, fvs, prefix + SIGNALS_FEATURES.base,
                             prefix + ORDERS.base, env, trace)


def _floor_round(ctx: BenchContext, orders: Path, fvs: list[Any], prefix: str, position: int, trace: bool,
                 name: str = "floor") -> Run:
    from confluent_kafka.admin import AdminClient, NewTopic

    names = (prefix + txn_floor.IN, prefix + txn_floor.OUT)
    admin = AdminClient(client_config(ctx.bootstrap))
    new = [NewTopic(t, txn_floor.PARTITIONS, 1) for t in names]
    add = name.split("+")[1:]
    if add:  # the topics of the trader's work added for diagnosis (bench/txn_floor.py)
        new += [NewTopic(prefix + txn_floor.SNAPSHOT, 1, 1, config={"cleanup.policy": "compact"}),
                NewTopic(prefix + txn_floor.SIDE, 8, 1)]
    for f in admin.create_topics(new).values():
        f.result(30)
    cmd = ["bench.txn_floor", ctx.bootstrap, str(orders), prefix]
    return feature_to_output(ctx, cmd, name, position, fvs, *names, {"TXN_FLOOR_ADD": ",".join(add)}, trace)


def orders_offline(bundle: Bundle, fvs: list[Any]) -> dict[int, list[bytes]]:
    """The orders (encoded) the trader decides on each feature vector, by its offset on a fresh topic: the same
    handler and settings as the trader of ``_trader_round``, which has no fills either."""
    from contracts import encode, market_key
    from trader.handler import PolicyTrader
    from trader.risk import RiskSettings

    if len({market_key(fv.exchange, fv.symbol) for fv in fvs}) != 1:
        raise ValueError("the floor maps orders to input offsets: its feature vectors must be of one market")
    trader = PolicyTrader(bundle, "bench", 1_000.0, 10_000.0, RiskSettings(max_orders_per_minute=100_000))
    orders = {}
    for offset, fv in enumerate(fvs):
        if trader.mine(fv) and trader.refuse_reason(fv) is None and (decided := trader.on_feature(fv, 0).orders):
            orders[offset] = [encode(o) for o in decided]
    return orders


def _write_orders(ctx: BenchContext, orders: dict[int, list[bytes]]) -> Path:
    import base64
    import json

    path = ctx.workdir / "txn_floor_orders.json"
    path.write_text(json.dumps({str(k): [base64.b64encode(v).decode() for v in vs] for k, vs in orders.items()}))
    return path


def feature_to_output(ctx: BenchContext, module: list[str], name: str, position: int, fvs: list[Any], in_topic: str,
                      out_topic: str, env: dict[str, str] | None = None, trace: bool = False) -> Run:
    """Start ``python -m MODULE ARGS`` (a loop from ``in_topic`` to ``out_topic``), send it ``fvs`` one every
    10 ms whatever it is doing, and time each feature to its order read back read_committed. The trader and its
    floor are measured by this one function."""
    from confluent_kafka import Consumer, Producer

    from contracts import Order, decode, encode, market_key

    log_path = ctx.workdir / f"round{position + 1}-{name}.log"
    trace_path = ctx.workdir / f"round{position + 1}-{name}.trace.jsonl" if trace else None
    cmd = [sys.executable, "-m", *(["bench.loop_trace", str(trace_path)] if trace_path else []), *module]
    log = log_path.open("wb")
    proc = subprocess.Popen(cmd, env={**os.environ, "PYTHONPATH": str(REPO), **(env or {})}, stdout=log,
                            stderr=subprocess.STDOUT, cwd=REPO)
    consumer = Consumer({**client_config(ctx.bootstrap), "group.id": f"bench-{name}-{position}-read",
                         "auto.offset.reset": "latest", "isolation.level": "read_committed",
                         "fetch.wait.max.ms": 1})
    consumer.subscribe([out_topic])
    producer = Producer(producer_config(ctx.bootstrap, {"linger.ms": 0, "enable.idempotence": False}))
    sent: dict[int, float] = {}
    got: dict[int, float] = {}
    stop = threading.Event()

    def receive() -> None:
        while not stop.is_set():
            m = consumer.poll(0.05)
            if m is not None and not m.error():
                got[decode(m.value() or b"", Order).feature_ts] = time.perf_counter()

    run = Run(name, position, [], 0.0, proc.pid, sent=sent, got=got, trace=trace_path)
    try:
        time.sleep(6)  # start, rebuild, assign
        consumer.poll(1)
        rx = threading.Thread(target=receive, daemon=True)
        rx.start()
        for fv in fvs:
            sent[fv.ts] = time.perf_counter()
            producer.produce(in_topic, encode(fv), market_key(fv.exchange, fv.symbol))
            producer.poll(0)
            time.sleep(0.01)
        producer.flush(10)
        time.sleep(3)
        run.peak_rss_mb = _peak_rss_mb(proc.pid)
        run.torch_loaded = _maps_mention(proc.pid, "libtorch")
    finally:
        stop.set()
        stop_service(proc)
        consumer.close()
        log.close()
    run.latencies_ms = [(got[ts] - sent[ts]) * 1_000 for ts in got if ts in sent]
    run.load_avg = os.getloadavg()[0]
    if not run.latencies_ms:
        raise RuntimeError(f"{name} (round {position + 1}) produced no orders; see {log_path}")
    return run


def _peak_rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def _maps_mention(pid: int, name: str) -> bool:
    return name in Path(f"/proc/{pid}/maps").read_text()
