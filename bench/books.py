"""Book ingest throughput: recorded Binance depth frames parsed, synchronised, applied and published.

The bundled BTCUSDT recording's depth frames and its REST depth snapshot (about 300,000 level changes)
are replayed through the ingestor's own ``BookFeed`` (the venue's parser, the Binance sync, the book,
msgspec encoding, the idempotent lz4 producer of ``ingestor.publisher``) into ``market.books``, in
this one process, as many times as it takes to pass a million level changes. Each pass after the
first starts as a reconnect does (``new_connection``: every book again from its snapshot), so each
pass is synchronised and published like the first. Reading the gzip file is not timed; the final
flush is.

The reference, measured in the same run: the same level changes (the snapshot's levels, then each
diff's that the sync applies) applied to bmoscon's ``order-book`` C library alone, from floats
already parsed, no Kafka. The two books must agree at the end (best five levels a side) and the
counts of level changes must be equal, or the bench fails.

The figure is wall-clock; ``extra`` adds the process's CPU seconds (librdkafka's threads included) and
level changes per CPU second, which say more when the machine's cores are shared with other work, and the
load average. It shares the broker Kafka's perf tool and the trade replay warmed up: after them, in
``make bench``'s order, it gave 825,000 levels/s on a nearly quiet machine (load average 3.4), more than
the 447,000 measured alone before; one run on a broker of its own, just started, waited through most of
the replay (wall 6.4 s for 1.7 CPU s, load 6.8). The objects the process already holds (the frames read,
earlier modules' leftovers) are frozen out of the garbage collector while the replay is timed.
"""

from __future__ import annotations

import gc
import math
import os
import time
from dataclasses import dataclass
from pathlib import Path

from order_book import OrderBook

from bench.context import BenchContext
from bench.results import Result
from contracts.topics import MARKET_BOOKS, MARKET_EVENTS
from infra.kafka.admin import ensure_topics
from ingestor.books.feed import BookFeed, PublisherSink
from ingestor.publisher import Publisher
from ingestor.replay import Recorded
from ingestor.venues import venue
from ingestor.venues.base import BookFrame

REPO = Path(__file__).resolve().parents[1]
FRAMES = next((REPO / "data" / "ticks").glob("binance_spot_btcusdt_*_timed.jsonl.gz"))
MIN_LEVELS = 1_000_000


@dataclass(frozen=True)
class Line:
    raw: str
    recv_ms: int
    kind: str
    symbol: str | None


def depth_lines(path: Path = FRAMES) -> list[Line]:
    """The recording's depth diffs and REST depth snapshots, in the file's order."""
    import gzip

    import msgspec

    decoder = msgspec.json.Decoder(Recorded)
    out = []
    with gzip.open(path, "rt") as f:
        for text in f:
            rec = decoder.decode(text)
            if rec.kind == "ws" and "@depth" not in rec.raw[:40]:
                continue  # trades and bookTicker frames: not the book path
            assert rec.recv_ts_ns is not None
            out.append(Line(rec.raw, rec.recv_ts_ns // 1_000_000, rec.kind, rec.symbol))
    return out


def applied_changes(lines: list[Line]) -> list[BookFrame]:
    """What the Binance sync applies from one pass: the snapshot, then the diffs after its lastUpdateId."""
    parse = venue("binance").parse_book
    assert parse is not None
    frames = [f for ln in lines for m in [parse(ln.raw, ln.recv_ms, ln.kind)] if m is not None for f in m.books]
    snap = next(i for i, f in enumerate(frames) if f.kind == "snapshot")
    last = frames[snap].seq
    assert last is not None
    kept = [f for f in frames[:snap] + frames[snap + 1:] if f.seq is not None and f.seq > last]
    return [frames[snap], *kept]


def ingest(ctx: BenchContext, lines: list[Line], passes: int) -> tuple[BookFeed, Publisher, float, float]:
    """(feed, publisher, wall seconds, CPU seconds of this process, librdkafka's threads included)."""
    publisher = Publisher(ctx.bootstrap, reports="errors")
    feed = BookFeed(venue("binance"), PublisherSink(publisher))
    on_frame = feed.on_frame
    gc.collect()
    gc.freeze()
    start, cpu = time.perf_counter(), time.process_time()
    for i in range(passes):
        if i:
            feed.new_connection()
        for ln in lines:
            on_frame(ln.raw, ln.recv_ms, ln.kind, ln.symbol)
        publisher.poll()
    remaining = publisher.flush()
    seconds, cpu = time.perf_counter() - start, time.process_time() - cpu
    gc.unfreeze()
    if remaining or publisher.failed:
        raise RuntimeError(f"the broker did not acknowledge {remaining + publisher.failed:,} book records "
                           f"({publisher.first_error or 'timed out'})")
    return feed, publisher, seconds, cpu


def reference(changes: list[BookFrame], passes: int) -> tuple[OrderBook, int, float]:
    """The same level changes on ``order_book.OrderBook``: a fresh book each pass, as after a reconnect."""
    book = OrderBook()
    n = 0
    start = time.perf_counter()
    for _ in range(passes):
        book = OrderBook()
        for f in changes:
            for side, levels in ((book.bids, f.bids), (book.asks, f.asks)):
                for price, size in levels:
                    if size:
                        side[price] = size
                    elif price in side:
                        del side[price]
                n += len(levels)
    return book, n, time.perf_counter() - start


def run(ctx: BenchContext) -> list[Result]:
    ensure_topics(ctx.bootstrap, [MARKET_BOOKS, MARKET_BOOKS.dlq, MARKET_EVENTS])
    lines = depth_lines()
    changes = applied_changes(lines)
    per_pass = sum(len(f.bids) + len(f.asks) for f in changes)
    passes = math.ceil(MIN_LEVELS / per_pass)
    feed, publisher, seconds, cpu = ingest(ctx, lines, passes)
    c = feed.counts
    if c.gaps or c.crossed or feed.dead_lettered or c.levels != per_pass * passes:
        raise RuntimeError(f"the book replay went wrong: {c.gaps} gaps, {c.crossed} crossed, {feed.dead_lettered} "
                           f"dead-lettered, {c.levels:,} level changes applied of {per_pass * passes:,}")
    ref_book, ref_levels, ref_seconds = reference(changes, passes)
    ours = feed.sync.symbols["BTCUSDT"].book
    if ref_levels != c.levels or [list(x) for x in ours.bids.top(5)] != [list(x) for x in ref_book.bids.to_list()[:5]] \
            or [list(x) for x in ours.asks.top(5)] != [list(x) for x in ref_book.asks.to_list()[:5]]:
        raise RuntimeError("the reference book does not end where the ingestor's does")
    return [
        Result("ingest.book_levels_per_s", c.levels / seconds, "levels/s", "book.reference_levels_per_s",
               f"{c.levels:,} level changes ({passes} passes of the bundled BTCUSDT depth frames and REST snapshot, "
               f"{len(lines):,} frames a pass) parsed, synchronised (Binance rule), applied and published to "
               f"market.books ({c.deltas:,} deltas, {c.snapshots:,} snapshots, {publisher.produced:,} records "
               "including resync events) by one process, acks=all, idempotent, lz4, including the final flush",
               extra={"seconds": seconds, "cpu_seconds": cpu, "levels_per_cpu_s": c.levels / cpu,
                      "records": float(publisher.produced), "frames_per_s": passes * len(lines) / seconds,
                      "load_avg_1m": os.getloadavg()[0]}),
        Result("book.reference_levels_per_s", ref_levels / ref_seconds, "levels/s", None,
               f"reference: the same {ref_levels:,} level changes, already parsed into floats, applied to the "
               "order-book C library (bmoscon, order_book.OrderBook) alone: no parsing, sync, encoding or Kafka"),
    ]
