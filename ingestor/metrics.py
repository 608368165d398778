"""The ingestor's figures: counters shared by live and replay, a Prometheus endpoint and a log line.

Counts live in plain integers on the hot path (a replay handles 250k trades a second); ``export``
copies them into the Prometheus metrics, which the live loop does on each periodic log line.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass, field, fields

from prometheus_client import Counter, Gauge, Histogram, start_http_server

log = logging.getLogger(__name__)

TRADES = Counter("tickflow_ingest_trades_total", "trades published to market.trades", ["venue"])
PARSE_ERRORS = Counter("tickflow_ingest_parse_errors_total", "frames dead-lettered to market.trades.dlq", ["venue"])
SKIPPED = Counter("tickflow_ingest_skipped_frames_total", "frames of channels not ingested", ["venue"])
DUPLICATES = Counter("tickflow_ingest_duplicates_total", "repeated trades dropped by trade id", ["venue"])
GAPS = Counter("tickflow_ingest_gaps_total", "gap events published", ["venue"])
MISSING = Counter("tickflow_ingest_missing_trades_total", "trades named missing by gap events", ["venue"])
RECONNECTS = Counter("tickflow_ingest_reconnects_total", "websocket reconnects", ["venue"])
QUEUE_DEPTH = Gauge("tickflow_ingest_queue_depth", "frames waiting between the socket and the producer", ["venue"])
PRODUCER_QUEUE = Gauge("tickflow_ingest_producer_queue", "records waiting in the Kafka producer", ["venue"])
PRODUCE_LATENCY = Histogram("tickflow_ingest_produce_latency_seconds", "produce call to broker acknowledgement",
                            ["venue"], buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10))


@dataclass
class Counts:
    """Plain counters of one ingest run."""

    frames: int = 0
    trades: int = 0
    skipped: int = 0
    control: int = 0
    dead_lettered: int = 0
    duplicates: int = 0
    gaps: int = 0
    missing: int = 0
    reconnects: int = 0
    skipped_by: dict[str, int] = field(default_factory=dict)
    _exported: dict[str, int] = field(default_factory=dict)

    def export(self, venue: str) -> None:
        """Add what changed since the last export to the Prometheus counters."""
        for name, metric in (("trades", TRADES), ("dead_lettered", PARSE_ERRORS), ("skipped", SKIPPED),
                             ("duplicates", DUPLICATES), ("gaps", GAPS), ("missing", MISSING),
                             ("reconnects", RECONNECTS)):
            value = getattr(self, name)
            delta = value - self._exported.get(name, 0)
            if delta:
                metric.labels(venue).inc(delta)
                self._exported[name] = value

    def summary(self) -> str:
        return ", ".join(f"{f.name.replace('_', ' ')} {getattr(self, f.name):,}" for f in fields(self)
                         if not f.name.startswith("_") and f.name != "skipped_by")


class Reporter:
    """Logs one line of figures every ``every_s`` seconds (trades/s since the last line)."""

    def __init__(self, venue: str, counts: Counts, every_s: float = 10.0) -> None:
        self.venue, self.counts, self.every_s = venue, counts, every_s
        self._last_t = time.monotonic()
        self._last_trades = 0

    def maybe_log(self, queue_depth: int, producer_queue: int) -> None:
        now = time.monotonic()
        if now - self._last_t < self.every_s:
            return
        rate = (self.counts.trades - self._last_trades) / (now - self._last_t)
        self._last_t, self._last_trades = now, self.counts.trades
        self.counts.export(self.venue)
        QUEUE_DEPTH.labels(self.venue).set(queue_depth)
        PRODUCER_QUEUE.labels(self.venue).set(producer_queue)
        log.info("%s: %.1f trades/s; %s; queue depth %d, producer queue %d.", self.venue, rate,
                 self.counts.summary(), queue_depth, producer_queue)


def serve(port: int, host: str = "127.0.0.1") -> None:
    """Expose the metrics on http://host:port/metrics (0: do not serve)."""
    if port:
        start_http_server(port, addr=host)
        log.info("Prometheus metrics on http://%s:%d/metrics.", host, port)
