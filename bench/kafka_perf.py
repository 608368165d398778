"""Kafka's own ProducerPerformance against the local broker: the reference for ingest throughput."""

from __future__ import annotations

import re
import subprocess

from bench.context import BenchContext
from bench.results import Result


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


def run(ctx: BenchContext) -> list[Result]:
    return [Result("kafka.producer_perf_records_per_s", producer_perf(ctx), "records/s", None,
                   "Kafka's ProducerPerformance, 200-byte records, acks=all, idempotent, one broker on loopback")]
