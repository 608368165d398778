"""Kafka's own tools against the local broker: ProducerPerformance, the reference for ingest throughput,
and EndToEndLatency (produce, acks=all, then consume, one record at a time), the floor under any
latency measured through Kafka here."""

from __future__ import annotations

import re
import subprocess
import time

import numpy as np

from bench.context import BenchContext
from bench.results import Result
from contracts.client_config import client_config, producer_config


def producer_perf(ctx: BenchContext, records: int = 2_000_000, size: int = 200) -> float:
    topic = "bench.producer-perf"
    out = ctx.java_tool(
        "org.apache.kafka.tools.ProducerPerformance",
        ["--topic", topic, "--num-records", str(records), "--record-size", str(size), "--throughput", "-1",
         "--producer-props", f"bootstrap.servers={ctx.bootstrap}", "acks=all", "enable.idempotence=true"],
    )
    lines = [line for line in out.splitlines() if "records sent" in line]
    match = re.search(r"records sent, ([\d.]+) records/sec", lines[-1] if lines else "")
    if not match:
        raise subprocess.SubprocessError(f"ProducerPerformance printed no summary:\n{out[-2000:]}")
    return float(match.group(1))


def end_to_end_latency(ctx: BenchContext, records: int = 5_000, size: int = 200) -> tuple[float, float, float]:
    """Kafka's EndToEndLatency: (p50, p99, p99.9) in ms, as the tool prints them (whole milliseconds)."""
    out = ctx.java_tool("org.apache.kafka.tools.EndToEndLatency",
                        [ctx.bootstrap, "bench.end-to-end", str(records), "all", str(size)])
    match = re.search(r"50th = ([\d.]+), 99th = ([\d.]+), 99.9th = ([\d.]+)", out)
    if not match:
        raise subprocess.SubprocessError(f"EndToEndLatency printed no percentiles:\n{out[-2000:]}")
    p50, p99, p999 = (float(g) for g in match.groups())
    return p50, p99, p999


def client_end_to_end_ms(ctx: BenchContext, records: int = 3_000, warm_up: int = 200) -> list[float]:
    """The same loop with confluent-kafka, the client the project uses: produce one 200-byte record
    (idempotent, acks=all, no linger), read it back, then the next."""
    from confluent_kafka import Consumer, Producer, TopicPartition

    topic = "bench.end-to-end-client"
    producer = Producer(producer_config(ctx.bootstrap, {"linger.ms": 0}))
    producer.produce(topic, b"create")
    producer.flush(30)
    consumer = Consumer({**client_config(ctx.bootstrap), "group.id": "bench-end-to-end",
                         "fetch.wait.max.ms": 1})
    end = consumer.get_watermark_offsets(TopicPartition(topic, 0), timeout=10)[1]
    consumer.assign([TopicPartition(topic, 0, end)])
    lat: list[float] = []
    value = b"x" * 200
    try:
        for i in range(records):
            t0 = time.perf_counter()
            producer.produce(topic, value, partition=0)
            producer.poll(0)
            m = None
            while m is None or m.error():
                m = consumer.poll(1.0)
                if m is None and time.perf_counter() - t0 > 30:
                    raise TimeoutError(f"record {i} of the end-to-end loop did not come back within 30 s")
            lat.append((time.perf_counter() - t0) * 1_000)
    finally:
        consumer.close()
        producer.flush(10)
    return lat[warm_up:]


def run(ctx: BenchContext) -> list[Result]:
    p50, p99, p999 = end_to_end_latency(ctx)
    client = client_end_to_end_ms(ctx)
    return [Result("kafka.producer_perf_records_per_s", producer_perf(ctx), "records/s", None,
                   "Kafka's ProducerPerformance, 200-byte records, acks=all, idempotent, one broker on loopback"),
            Result("kafka.end_to_end_p99_ms", p99, "ms", None,
                   "Kafka's EndToEndLatency: 5,000 records of 200 bytes, each produced (acks=all) and consumed "
                   "before the next; whole milliseconds", {"p50_ms": p50, "p99_9_ms": p999}),
            Result("kafka.client_end_to_end_p99_ms", float(np.percentile(client, 99)), "ms", None,
                   f"the same with confluent-kafka in Python: {len(client)} records of 200 bytes, idempotent "
                   "producer without linger, consumer polling",
                   {"p50_ms": float(np.percentile(client, 50))})]
