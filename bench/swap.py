"""The hot swap: a promotion written to the registry until the first order by the new version is read
(``trader.swap_ms``, median of five), beside the registry's own write-to-read round trip measured in the
same run (``registry.roundtrip_ms``: the same writes, read by a follower of the registry)."""

from __future__ import annotations

import os
import statistics
import subprocess
import sys
import threading
import time
from pathlib import Path

import numpy as np

from bench.context import BenchContext, stop_service
from bench.results import Result
from contracts.client_config import client_config, producer_config
from contracts.topics import PREFIX_ENV

REPO = Path(__file__).resolve().parents[1]
POLICY = "bench-swap"
ROUNDS = 5
PREFIX = "bench-swap."  # its own topics on the shared broker


def _linear_bundle(out: Path, sign: float) -> Path:
    """Long when flow_imb has the sign ``sign``, flat otherwise: two versions that trade every other bar."""
    from trader.policy import bundle
    from trader.policy.runtime import Layer

    layers = [Layer(np.array([[sign * 10.0, 0.0]], np.float32), np.zeros(1, np.float32), "identity"),
              Layer(np.array([[-1.0], [1.0]], np.float32), np.zeros(2, np.float32), "identity")]
    manifest = {"algo": "linear", "mode": "long_only", "action_map": [0.0, 1.0], "feature_schema": "v1",
                "feature_names": ["flow_imb"], "interval_s": 60, "decision_every": 1, "costs": {}}
    golden = [([(-1.0) ** k * (k + 1)], float(k % 2)) for k in range(bundle.GOLDEN_CASES)]
    return bundle.write(out, layers, np.zeros(1), np.ones(1), manifest, golden).path


def run(ctx: BenchContext) -> list[Result]:
    previous = os.environ.get(PREFIX_ENV)
    os.environ[PREFIX_ENV] = PREFIX
    try:
        return _run(ctx)
    finally:
        if previous is None:
            os.environ.pop(PREFIX_ENV, None)
        else:
            os.environ[PREFIX_ENV] = previous


def _run(ctx: BenchContext) -> list[Result]:
    from confluent_kafka import Consumer, Producer

    from contracts import V1, FeatureVector, Order, decode, encode, market_key
    from contracts.feature_schema import V1 as V1_NAMES
    from contracts.policy_record import Decision, pack
    from contracts.policy_registry import follow, latest, promoted, write
    from contracts.timeutil import now_ms
    from contracts.topics import ORDERS, SIGNALS_FEATURES
    from infra.kafka.admin import ensure_topics
    from trader.policy.bundle import load

    ensure_topics(ctx.bootstrap)
    work = ctx.workdir / "swap"
    bundles = [load(_linear_bundle(work / name, sign)) for name, sign in (("a", 1.0), ("b", -1.0))]

    def promote(i: int) -> float:
        b = bundles[i % 2]
        decision = Decision(kind="promoted", version=b.version, serving=b.version, ts=now_ms(), by="hand",
                            reason=f"bench round {i}")
        record = promoted(latest(ctx.bootstrap, POLICY), POLICY, pack(b.path, b.version, b.algo), decision)
        t0 = time.perf_counter()
        write(ctx.bootstrap, record)
        return t0

    promote(0)
    env = {**os.environ, "KAFKA_BOOTSTRAP": ctx.bootstrap, "TICKFLOW_HOME": str(work), "PYTHONPATH": str(REPO),
           "TRADER__HTTP_PORT": "-1", "TRADER__RISK__MAX_ORDERS_PER_MINUTE": "100000"}
    log_path = work / "trader.log"
    log = log_path.open("wb")
    proc = subprocess.Popen([sys.executable, "-m", "tickflow", "trade", "--policy-id", POLICY], env=env,
                            stdout=log, stderr=subprocess.STDOUT, cwd=REPO)
    orders = Consumer({**client_config(ctx.bootstrap), "group.id": "bench-swap-orders",
                       "auto.offset.reset": "earliest", "isolation.level": "read_committed", "fetch.wait.max.ms": 1})
    orders.subscribe([ORDERS.name])
    stop = threading.Event()
    seen_orders: list[tuple[float, str]] = []  # (time read, policy_version)
    seen_records: dict[int, float] = {}  # registry revision -> time read

    def receive() -> None:
        while not stop.is_set():
            m = orders.poll(0.05)
            if m is not None and not m.error():
                seen_orders.append((time.perf_counter(), decode(m.value() or b"", Order).policy_version))

    def registry() -> None:
        for rec in follow(ctx.bootstrap, POLICY, stopped=stop.is_set):
            seen_records.setdefault(rec.revision, time.perf_counter())

    def feed() -> None:
        producer = Producer(producer_config(ctx.bootstrap, {"linger.ms": 0}))
        k = 0
        while not stop.is_set():
            k += 1
            features: dict[str, float | None] = {n: 0.0 for n in V1_NAMES}
            features["flow_imb"] = 1.0 if k % 2 else -1.0
            fv = FeatureVector(schema_version=V1, exchange="binance", symbol="ETH-USDT", interval_s=60,
                               ts=k * 60_000, feature_schema="v1", ready=True, features=features, close=100.0)
            producer.produce(SIGNALS_FEATURES.name, encode(fv), market_key("binance", "ETH-USDT"))
            producer.poll(0)
            time.sleep(0.01)
        producer.flush(10)

    threads = [threading.Thread(target=f, daemon=True) for f in (receive, registry, feed)]
    swaps, trips = [], []
    try:
        _wait_for(log_path, "consumes", proc)
        for t in threads:
            t.start()
        _wait_orders(seen_orders, bundles[0].version, 0.0, proc)
        for i in range(1, ROUNDS + 1):
            new = bundles[i % 2].version
            t0 = promote(i)
            t1 = _wait_orders(seen_orders, new, t0, proc)
            swaps.append((t1 - t0) * 1_000)
            while i + 1 not in seen_records and time.perf_counter() - t0 < 60:
                time.sleep(0.005)
            trips.append((seen_records[i + 1] - t0) * 1_000)
            time.sleep(0.5)
    finally:
        stop.set()
        stop_service(proc)
        for t in threads:
            t.join(10)
        orders.close()
        log.close()
    return [Result("registry.roundtrip_ms", statistics.median(trips), "ms", None,
                   "reference: the same promotion records (the serving and previous bundles in each) written with "
                   f"their acknowledgement, then read by a follower of the registry; median of {ROUNDS}",
                   {f"round_{i + 1}": v for i, v in enumerate(trips)}),
            Result("trader.swap_ms", statistics.median(swaps), "ms", "registry.roundtrip_ms",
                   f"promotion written -> first order by the new version read (read_committed), median of {ROUNDS}; "
                   "a feature every 10 ms, each giving an order; the trader verifies the bundle before it swaps",
                   {**{f"round_{i + 1}": v for i, v in enumerate(swaps)}, "load_avg_1m": os.getloadavg()[0]})]


def _wait_for(path: Path, text: str, proc: subprocess.Popen[bytes], timeout: float = 120) -> None:
    deadline = time.monotonic() + timeout
    while text not in path.read_text(errors="replace"):
        if proc.poll() is not None or time.monotonic() > deadline:
            raise RuntimeError(f"the trader did not start; see {path}: {path.read_text(errors='replace')[-800:]}")
        time.sleep(0.1)


def _wait_orders(seen: list[tuple[float, str]], version: str, after: float, proc: subprocess.Popen[bytes],
                 timeout: float = 60) -> float:
    """When the first order by ``version`` read after ``after`` was read."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline and proc.poll() is None:
        for t, v in list(seen):
            if v == version and t > after:
                return t
        time.sleep(0.005)
    raise RuntimeError(f"no order by version {version} within {timeout:.0f} s of its promotion")
