"""Trader benchmarks: policy latency beside SB3's predict, the in-process handler, feature -> order over Kafka,
training throughput beside the bare environment, and the serving process's peak memory."""

from __future__ import annotations

import gc
import os
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from bench import feature_to_order, txn_floor
from bench.context import BenchContext
from bench.results import Result
from contracts.client_config import client_config, producer_config

if TYPE_CHECKING:  # the benchmark imports training code only when it runs
    from trader.policy.bundle import Bundle
    from trader.policy.dataset import Dataset
    from trader.policy.train import TrainResult

FRESH_BROKER = True  # reads market.trades / signals.features: only its own records there

REPO = Path(__file__).resolve().parents[1]
DATA = REPO / "data" / "ohlcv"


def _p99(xs: list[float]) -> float:
    return float(np.percentile(np.asarray(xs), 99))


def _timed(fn: object, n: int) -> list[float]:
    out = []
    for _ in range(n):
        t0 = time.perf_counter_ns()
        fn()  # type: ignore[operator]
        out.append((time.perf_counter_ns() - t0) / 1_000)
    return out


def run(ctx: BenchContext) -> list[Result]:
    import torch

    from trader.policy.dataset import load

    torch.set_num_threads(1)
    btc = load(next(DATA.glob("binance_spot_BTCUSDT_1m_*.csv.gz")))
    trained, results = _training(ctx, btc)
    ppo = trained["ppo"]
    results += _policy_latency(ppo, btc)
    fvs = _eth_day_features(ctx)
    results.append(_handler(ppo.bundle, fvs))
    single = _single_transaction(ctx)
    results.append(Result("kafka.txn_single_p99_ms", _p99(single), "ms", None,
                          f"{len(single)} records one at a time: each consumed, then one transaction (one record + "
                          "the consumed offsets) and read back read_committed, 10 ms idle between; the trader's "
                          "Kafka settings", {"p50_ms": float(np.percentile(single, 50))}))
    # the trader and its floor in alternating rounds (bench/feature_to_order.py)
    results += feature_to_order.run_pairs(ctx, ppo.bundle, fvs)
    return results


def _training(ctx: BenchContext, btc: Dataset) -> tuple[dict[str, TrainResult], list[Result]]:
    """PPO and DQN trained on BTCUSDT, their steps/s beside the bare environment's."""
    from trader.env import TradingEnv
    from trader.policy.dataset import Normaliser
    from trader.policy.train import TrainConfig, split, train

    trained = {algo: train(btc, TrainConfig(algo=algo, timesteps=20_000, seed=7, every=1, progress=False),
                           ctx.workdir / algo) for algo in ("ppo", "dqn")}
    window, _ = split(btc, 0.8)
    env = TradingEnv(Normaliser.fit(window.features).apply(window.features), window.opens, window.closes)
    env.reset(seed=0)
    t0 = time.perf_counter()
    for i in range(50_000):
        if env.step(i % 2)[3]:
            env.reset()
    env_rate = 50_000 / (time.perf_counter() - t0)
    results = [Result("env.steps_per_s", env_rate, "steps/s", None, "TradingEnv.step alone, no agent")]
    for algo in ("ppo", "dqn"):
        results.append(Result(f"train.{algo}_steps_per_s", trained[algo].steps_per_s, "steps/s", "env.steps_per_s",
                              f"SB3 {algo.upper()}, 4 DummyVecEnv envs, 1 torch thread, 20k steps on BTCUSDT 1m"))
    return trained, results


def _policy_latency(ppo: TrainResult, btc: Dataset) -> list[Result]:
    """One decision: the bundle's numpy runtime vs SB3's deterministic predict, same observations."""
    from trader.policy.dataset import Normaliser
    from trader.policy.train import split

    window, _ = split(btc, 0.8)
    rows = btc.features[-2_000:]
    obs = Normaliser.fit(window.features).apply(rows)
    obs = np.c_[np.clip(obs, -5, 5), np.zeros(len(obs), np.float32)].astype(np.float32)
    runtime = ppo.bundle.runtime
    it = iter(range(10**9))
    sb3 = _timed(lambda: ppo.model.predict(obs[next(it) % 2_000], deterministic=True), 5_000)
    it2 = iter(range(10**9))
    ours = _timed(lambda: runtime.act(rows[next(it2) % 2_000], 0.0), 20_000)
    return [Result("sb3.predict_p99_us", _p99(sb3), "us", None, "PPO model.predict(deterministic=True)"),
            Result("trader.policy_p99_us", _p99(ours), "us", "sb3.predict_p99_us",
                   "the bundle's numpy runtime: normalise, clip, 3 layers, argmax (one thread)",
                   {"p50_us": float(np.percentile(ours, 50)), "sb3_p50_us": float(np.percentile(sb3, 50)),
                    "load_avg_1m": os.getloadavg()[0]})]


def _eth_day_features(ctx: BenchContext) -> list[Any]:
    """Feature vectors of one day of ETHUSDT candles, built offline."""
    import gzip

    from streams.offline import build_from_file
    from trader.policy.dataset import feature_vectors

    eth_day = ctx.workdir / "binance_spot_ETHUSDT_1m_day.csv"
    with gzip.open(next(DATA.glob("binance_spot_ETHUSDT_1m_*.csv.gz")), "rt") as f:
        eth_day.write_text("".join(next(f) for _ in range(1_441)))
    return feature_vectors(build_from_file(eth_day, "ETHUSDT"), "ETH-USDT")


def _handler(bundle: Bundle, fvs: list[Any]) -> Result:
    """The in-process handler: a FeatureVector message in, orders (encoded) out."""
    from contracts import FeatureVector, decode, encode
    from trader.handler import PolicyTrader

    raw = [encode(fv) for fv in fvs if fv.ready]
    trader = PolicyTrader(bundle, "bench", 1_000.0, 10_000.0)
    lat = []
    gc.collect()
    gc.freeze()  # as the service does once it has started
    for data in raw:
        t0 = time.perf_counter_ns()
        fv = decode(data, FeatureVector)
        if trader.refuse_reason(fv) is None:
            for o in trader.on_feature(fv, 0).orders:
                encode(o)
        lat.append((time.perf_counter_ns() - t0) / 1_000)
    gc.unfreeze()
    return Result("trader.handler_p99_us", _p99(lat), "us", "trader.policy_p99_us",
                  f"decode + risk + policy + order encode, {len(raw)} ETHUSDT feature messages",
                  {"p50_us": float(np.percentile(lat, 50))})


def _single_transaction(ctx: BenchContext, n: int = 600) -> list[float]:
    """One transaction at a time, nothing queued behind it: record in -> transaction with offsets -> record out."""
    from confluent_kafka import Consumer, Producer, TopicPartition

    from contracts import kafka_io

    topics = ("bench.txn1.in", "bench.txn1.out")
    _create_topics(ctx, topics)
    source = Producer(producer_config(ctx.bootstrap, {"linger.ms": 0, "enable.idempotence": False}))
    loop_in = kafka_io.consumer(ctx.bootstrap, "bench-txn-single")
    loop_in.assign([TopicPartition(topics[0], p, 0) for p in range(4)])
    loop_out = kafka_io.transactional_producer(ctx.bootstrap, "bench-txn-single")
    reader = Consumer({**client_config(ctx.bootstrap), "group.id": "bench-txn-read",
                       "auto.offset.reset": "earliest", "isolation.level": "read_committed", "fetch.wait.max.ms": 1})
    reader.assign([TopicPartition(topics[1], p, 0) for p in range(4)])
    sent: dict[bytes, float] = {}
    lat: list[float] = []
    try:
        for i in range(n):
            key = str(i).encode()
            sent[key] = time.perf_counter()
            source.produce(topics[0], key, key)
            source.poll(0)
            m = None
            while m is None or m.error():
                m = loop_in.poll(1.0)
            loop_out.begin_transaction()
            loop_out.produce(topics[1], m.value(), m.key())
            loop_out.send_offsets_to_transaction(loop_in.position(loop_in.assignment()),
                                                 loop_in.consumer_group_metadata())
            loop_out.commit_transaction()
            got = None
            while got is None or got.error():
                got = reader.poll(1.0)
            lat.append((time.perf_counter() - sent[got.value() or b""]) * 1_000)
            time.sleep(0.01)
    finally:
        source.flush(10)  # its delivery reports: librdkafka otherwise warns of a message still queued at exit
        loop_in.close()
        reader.close()
    return lat[50:]  # the first transactions find coordinators and register partitions


def _create_topics(ctx: BenchContext, names: tuple[str, ...]) -> None:
    from confluent_kafka.admin import AdminClient, NewTopic

    admin = AdminClient(client_config(ctx.bootstrap))
    for f in admin.create_topics([NewTopic(t, txn_floor.PARTITIONS, 1) for t in names]).values():
        f.result(30)
