"""Replay throughput into Kafka (acks=all, idempotent) and the replay's peak memory.

`tickflow ingest replay` of both bundled 1-minute candle files expanded into trades (about 1.05M
trades), in a subprocess: trades/s from its own summary (reading, expansion, encoding, producing and
the final flush), peak RSS from that one child's rusage (os.wait4, so no other child counts). The
reference is Kafka's own ProducerPerformance measured in the same run (bench.kafka_perf).
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

from bench.context import BenchContext
from bench.results import Result

REPO = Path(__file__).resolve().parents[1]
CANDLES = sorted((REPO / "data" / "ohlcv").glob("binance_spot_*_1m_*.csv.gz"))
_SUMMARY = re.compile(r"([\d,]+) trades in ([\d.]+)s including the flush")


def replay(ctx: BenchContext, paths: list[Path]) -> tuple[int, float, float]:
    """(trades, seconds, peak RSS in MB) of one `tickflow ingest replay` subprocess."""
    env = dict(os.environ, KAFKA_BOOTSTRAP=ctx.bootstrap, TICKFLOW_HOME=str(ctx.workdir / "home"),
               PYTHONPATH=str(REPO), TICKFLOW_LOG_LEVEL="WARNING")
    cmd = [sys.executable, "-m", "tickflow", "ingest", "replay", *map(str, paths), "--from-candles",
           "--venue", "binance", "--no-progress"]
    out_file = ctx.workdir / "ingest-replay.out"
    with out_file.open("w") as out:
        proc = subprocess.Popen(cmd, stdout=out, stderr=subprocess.STDOUT, env=env, cwd=REPO)
        _pid, status, usage = os.wait4(proc.pid, 0)
        proc.returncode = os.waitstatus_to_exitcode(status)
    text = out_file.read_text()
    match = _SUMMARY.search(text)
    if proc.returncode != 0 or not match:
        raise subprocess.SubprocessError(f"replay failed ({proc.returncode}):\n{text[-2000:]}")
    return int(match.group(1).replace(",", "")), float(match.group(2)), usage.ru_maxrss / 1024


def run(ctx: BenchContext) -> list[Result]:
    trades, seconds, rss_mb = replay(ctx, CANDLES)
    return [
        Result("ingest.replay_trades_per_s", trades / seconds, "trades/s", "kafka.producer_perf_records_per_s",
               f"tickflow ingest replay of {trades:,} trades (both bundled 1m candle files expanded) into "
               "market.trades, acks=all, idempotent, lz4, one process, including start-up and the final flush"),
        Result("ingest.peak_rss_mb", rss_mb, "MB", None,
               f"peak RSS of that replay process ({trades:,} trades); the producer queue is byte-bounded "
               "and the input streamed, so it does not grow with the replay's length"),
    ]
