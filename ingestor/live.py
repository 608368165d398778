"""`tickflow ingest live`: a socket thread feeding a bounded queue, a worker producing to Kafka.

The socket thread only receives and stamps frames; the worker parses them, sequences the trades,
keeps the order books (``ingestor.books``: REST snapshots fetched on threads of their own and queued
like frames, or the book resubscribed) and produces. When the worker falls behind the queue fills
and the socket thread waits: nothing received is dropped. On SIGTERM the socket closes, the worker
drains the queue and the producer flushes.
"""

from __future__ import annotations

import logging
import queue
import threading
from dataclasses import dataclass

from contracts.messages import EventKind
from contracts.settings import kafka_bootstrap
from ingestor.books.feed import BookFeed, PublisherSink, has_books
from ingestor.books.snapshots import SnapshotRequests, with_snapshot_address
from ingestor.connection import Backoff, LiveClient
from ingestor.metrics import PRODUCE_LATENCY, Counts, Reporter, serve
from ingestor.pipeline import Pipeline
from ingestor.publisher import Publisher
from ingestor.venues import venue

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Item:
    raw: str | bytes | None  # a frame, or None for a connection event
    recv_ms: int
    kind: EventKind = "reconnect"
    detail: str = ""
    frame_kind: str = "ws"  # or rest_depth_snapshot: a fetched book snapshot of ``symbol``
    symbol: str | None = None


class LiveIngest:
    """The running pieces of one live ingest (also driven directly by tests)."""

    def __init__(self, venue_name: str, symbols: list[str], bootstrap: str, *, url: str | None = None,
                 backoff: Backoff | None = None, watchdog_s: float = 60.0, queue_size: int = 100_000,
                 log_every_s: float = 10.0, rest_url: str | None = None) -> None:
        self.spec = with_snapshot_address(venue(venue_name), url, rest_url)
        self.stop = threading.Event()
        self.queue: queue.Queue[Item] = queue.Queue(maxsize=queue_size)
        self.counts = Counts()
        latency = PRODUCE_LATENCY.labels(self.spec.name)
        self.publisher = Publisher(bootstrap, reports="all", on_latency=latency.observe)
        self.pipeline = Pipeline(self.spec, self.publisher, self.counts)
        self.reporter = Reporter(self.spec.name, self.counts, log_every_s)
        self.client = LiveClient(self.spec, symbols, self._frame, self._event, url=url, backoff=backoff,
                                 watchdog_s=watchdog_s, stop=self.stop)
        requests = SnapshotRequests(self.spec, self._snapshot, self.client.send, self.stop)
        self.books = (BookFeed(self.spec, PublisherSink(self.publisher, requests.resync))
                      if has_books(self.spec) else None)
        self._socket = threading.Thread(target=self.client.run, name=f"{venue_name}-socket", daemon=True)
        self._worker = threading.Thread(target=self._work, name=f"{venue_name}-producer", daemon=True)

    def _frame(self, raw: str | bytes, recv_ms: int) -> None:
        self.queue.put(Item(raw, recv_ms))

    def _snapshot(self, raw: str, recv_ms: int, venue_symbol: str) -> None:
        self.queue.put(Item(raw, recv_ms, frame_kind="rest_depth_snapshot", symbol=venue_symbol))

    def _event(self, kind: EventKind, detail: str) -> None:
        from contracts.timeutil import now_ms

        self.queue.put(Item(None, now_ms(), kind, detail))

    def _work(self) -> None:
        while True:
            try:
                item = self.queue.get(timeout=0.2)
            except queue.Empty:
                item = None
            if item is not None:
                books = self.books
                if item.raw is None:
                    self.pipeline.connection_event(item.kind, item.detail, item.recv_ms)
                    if item.kind == "reconnect" and books is not None:
                        books.new_connection()
                elif item.frame_kind == "ws":
                    self.pipeline.on_frame(item.raw, item.recv_ms)
                    if books is not None:
                        books.on_frame(item.raw, item.recv_ms)
                elif books is not None:
                    books.on_frame(item.raw, item.recv_ms, item.frame_kind, item.symbol)
            self.publisher.poll()
            self.reporter.maybe_log(self.queue.qsize(), self.publisher.queued())
            if item is None and self.stop.is_set() and not self._socket.is_alive():
                return

    def start(self) -> None:
        self._worker.start()
        self._socket.start()

    def close(self, timeout_s: float = 60.0) -> int:
        """Stop reading, drain the queue, flush; return the records the broker did not acknowledge."""
        self.client.close()
        self._socket.join(timeout=15)
        self._worker.join()
        remaining = self.publisher.flush(timeout_s)
        self.counts.export(self.spec.name)
        log.info("%s stopped: %s; delivered %d of %d records, %d failed, %d unacknowledged.", self.spec.name,
                 self.counts.summary(), self.publisher.delivered, self.publisher.produced, self.publisher.failed,
                 remaining)
        return remaining


def run_live(venue_name: str, symbols: list[str], *, url: str | None, metrics_port: int, log_every_s: float,
             stop: threading.Event, metrics_host: str = "127.0.0.1", rest_url: str | None = None) -> int:
    ingest = LiveIngest(venue_name, symbols, kafka_bootstrap(), url=url, log_every_s=log_every_s, rest_url=rest_url)
    serve(metrics_port, metrics_host)
    ingest.start()
    while not stop.wait(0.5):
        pass
    log.info("Stopping: closing the connection, draining %d queued frames, flushing.", ingest.queue.qsize())
    remaining = ingest.close()
    return 0 if remaining == 0 and ingest.publisher.failed == 0 else 1
