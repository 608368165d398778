"""The streams worker: market.trades -> signals.bars -> signals.features, state in a changelog-backed table.

Faust runs the worker: it is the consumer group member that gets ``market.trades`` partitions assigned
and revoked, it holds the state table ``<app_id>-streams-state`` and restores it from its changelog
before a partition is processed, and it commits the group's offsets. The trades themselves are not
read through Faust's per-event stream (a few tens of thousands of events per second per core at best,
see ARCHITECTURE.md): for the partitions Faust assigns, a librdkafka consumer reads them in batches
from the group's committed offsets, and Faust's own fetcher leaves them alone. Every private Faust detail
this needs is in ``streams.faust_seam``.
The work is ``streams.processor.Processor``. Per batch:

1. apply the trades (decode, bars, features; bad records become dead letters),
2. send every output record and flush the producer,
3. write the changed keys' state (bars, feature engines, last applied offset) to the table, on the
   changelog partition of the trades' partition,
4. about once a second, commit the offsets after the applied trades through Faust, which first flushes
   its producer, so the state is durable before the offsets are.

A crash between 2 and 3 replays the batch from the older state: the same records again, identical.
A crash after 3 but before the commit re-delivers trades the state has applied: they are skipped
(each key keeps its last applied offset). So outputs are at-least-once and idempotent, and a
restarted worker resumes from its table. Trades produced twice (a replay run again) are dropped by trade id
(``streams.processor``). The table is our own, not a Faust windowed table: those
expire on wall-clock time and lose windows during a replay.

Live mode: the batch read waits no longer than the next due bar of a live key (trades arriving within
STREAMS__LIVE_LAG_MS of their event time), which is closed at end + grace on the wall clock, so a quiet
symbol's bar is not held open. The close itself is done STREAMS__CLOSE_AHEAD_MS earlier and its records
held back until end + grace (``streams.close_ahead``); held keys' state is stored, and offsets are
committed, only once those records are out.
"""

from __future__ import annotations

import asyncio
import gc
import logging
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

from confluent_kafka import OFFSET_BEGINNING, Consumer, KafkaError, KafkaException, Message, Producer, TopicPartition

from contracts.client_config import check_copartitioned, client_config, producer_config
from contracts.kafka_io import replication_at
from contracts.settings import kafka_auth, kafka_bootstrap, tickflow_home
from contracts.topics import MARKET_BOOKS, MARKET_TRADES, SIGNALS_BARS, SIGNALS_FEATURES
from streams import faust_seam, startup_logs
from streams.processor import Output, Processor
from streams.spec import StreamsSettings, load_settings

log = logging.getLogger(__name__)

_TRADES = MARKET_TRADES.name
_BOOKS = MARKET_BOOKS.name
_FEATURES = SIGNALS_FEATURES.name
_COMMIT_CLEARANCE_MS = 100  # no commit this close to a live bar's close
# librdkafka retries an output record until this delivery timeout (two of three nodes down: no acknowledgement
# under min.insync.replicas until one returns); a batch's flush waits as long, and a little more, before it
# gives up: sooner, the worker stopped while its records were still being retried.
_DELIVERY_TIMEOUT_MS = 300_000


class StreamsWorkerApp:
    """The Faust app, its state table and the batch loop over the assigned trade partitions."""

    def __init__(self, settings: StreamsSettings, bootstrap: str, datadir: Path) -> None:
        self.settings = settings
        brokers = ";".join(f"kafka://{hp}" for hp in bootstrap.split(","))
        auth = kafka_auth()  # a secure cluster: Faust's clients log in as librdkafka's do
        self.app = faust_seam.StreamsApp(
            settings.app_id, broker=brokers, datadir=str(datadir), store="memory://",
            broker_credentials=None if auth is None else faust_seam.sasl_credentials(auth),
            topic_partitions=MARKET_TRADES.partitions, topic_disable_leader=True,
            topic_replication_factor=replication_at(bootstrap),  # changelogs: min(3, brokers) replicas
            table_standby_replicas=0, web_enabled=settings.web_port > 0, web_port=settings.web_port or 6066,
            consumer_auto_offset_reset="earliest", producer_acks=-1, producer_linger=0.005,
            # a killed worker's partitions move to the others (or its restart) after this, not after 60 s
            broker_session_timeout=settings.session_timeout_s, broker_heartbeat_interval=3.0,
        )
        self.trades = self.app.topic(_TRADES, key_serializer="raw", value_serializer="raw",
                                     partitions=MARKET_TRADES.partitions)
        self.app.topics.add(self.trades)  # subscribed: Faust assigns its partitions (and the table's with them)
        self.table = self.app.Table("streams-state", partitions=MARKET_TRADES.partitions, key_type=bytes,
                                    value_type=bytes)
        self.processor = Processor(settings.intervals, settings.grace_ms, loader=faust_seam.table_reader(self.table),
                                   books=True, book_backlog_max=settings.book_backlog_max)
        # The group id is only used to read the offsets Faust commits; this consumer never joins the group.
        self.consumer = Consumer({**client_config(bootstrap), "group.id": settings.app_id,
                                  "enable.auto.commit": False, "enable.auto.offset.store": False,
                                  "enable.partition.eof": True, "fetch.wait.max.ms": 10,  # eof: the books' end
                                  "queued.max.messages.kbytes": 32_768, "client.id": f"{settings.app_id}-trades"},
                                 logger=log)
        self.reader = ThreadPoolExecutor(1, thread_name_prefix="trades-reader")  # every call on self.consumer
        # Outputs go through librdkafka (idempotent, acks=all): far cheaper per record than Faust's producer.
        self.producer = Producer(producer_config(bootstrap, {"linger.ms": 0, "client.id": f"{settings.app_id}-out",
                                                             "message.timeout.ms": _DELIVERY_TIMEOUT_MS}), logger=log)
        self.delivery_errors: list[str] = []
        self.lock = asyncio.Lock()
        self.partitions: frozenset[int] = frozenset()  # the trade partitions being read
        self.generation = 0  # bumped on every change of assignment: a read that spans one is dropped
        self.assigned = asyncio.Event()
        self.positions: dict[int, int] = {}  # partition -> offset after the last applied trade, not yet committed
        self.read_to: dict[int, int] = {}  # partition -> offset after the last trade read (some may wait for books)
        self.settled: dict[int, int] = {}  # partition -> the last position handed to positions
        self.last_commit = 0.0
        self.applied = 0
        self.emitted = 0
        self.app.task(self._read_loop)
        self.app.task(self._progress)
        self.app.on_partitions_revoked.connect(self._on_revoked)  # type: ignore[arg-type]  # mode types it narrowly
        self.app.on_rebalance_complete.connect(self._on_assigned)  # type: ignore[arg-type]
        self.app.on_before_shutdown.connect(self._on_shutdown)  # type: ignore[arg-type]

    # -- assignment ------------------------------------------------------------------------------
    async def _on_assigned(self, sender: Any, *args: Any, **kwargs: Any) -> None:
        """Tables restored: read the assigned trade partitions from the group's committed offsets."""
        startup_logs.started()  # a rebalance completed: start-up is over
        parts = faust_seam.assigned_partitions(self.app, _TRADES)
        async with self.lock:
            if parts == self.partitions:
                return
            tps = [TopicPartition(_TRADES, p) for p in sorted(parts)]
            loop = asyncio.get_running_loop()
            committed = await loop.run_in_executor(self.reader, lambda: self.consumer.committed(tps, timeout=30)) \
                if tps else []
            start = [TopicPartition(_TRADES, tp.partition, tp.offset if tp.offset >= 0 else OFFSET_BEGINNING)
                     for tp in committed]
            # the same partitions of market.books from their start: the books are rebuilt, not stored
            books = [TopicPartition(_BOOKS, p, OFFSET_BEGINNING) for p in sorted(parts)]
            await loop.run_in_executor(self.reader, self.consumer.assign, start + books)
            self.partitions = parts
            self.generation += 1
            self.positions.clear()
            self.read_to.clear()
            self.settled.clear()
            self.processor.catching_up(parts)  # no wall-clock close until each is read to its end
            log.info("Reading %s partitions %s from %s.", _TRADES, sorted(parts),
                     ", ".join(f"[{tp.partition}]@{tp.offset if tp.offset >= 0 else 'beginning'}" for tp in start)
                     or "nowhere")
            if parts:
                self.assigned.set()

    async def _on_revoked(self, sender: Any, *args: Any, **kwargs: Any) -> None:
        # Another worker may take these keys: commit what is applied, stop reading, drop the cached state
        # (the table holds the latest). Under the lock, so that a batch in flight first writes its state.
        async with self.lock:
            await self._publish(self.processor.release_held())
            await self._commit(force=True)
            self.assigned.clear()
            await asyncio.get_running_loop().run_in_executor(self.reader, self.consumer.unassign)
            self.partitions = frozenset()
            self.generation += 1
            self.processor.forget()

    async def _on_shutdown(self, sender: Any, *args: Any, **kwargs: Any) -> None:
        async with self.lock:
            await self._publish(self.processor.release_held())
            await self._commit(force=True)
            self.assigned.clear()
            self.generation += 1
            await asyncio.get_running_loop().run_in_executor(self.reader, self.consumer.close)

    # -- the batch loop --------------------------------------------------------------------------
    def _read_until(self) -> float:
        """Wall-clock seconds to wait for trades until: the next due bar of a live key (less the close-ahead
        time while nothing is held), at most a wall tick from now."""
        s = self.settings
        now_ms = time.time() * 1000
        due = self.processor.next_live_deadline(s.live_lag_ms)
        if due is None:
            return (now_ms + s.wall_tick_ms) / 1000
        ahead = 0 if self.processor.ahead.holding else s.close_ahead_ms
        return min(due - ahead, now_ms + s.wall_tick_ms) / 1000

    def _read(self, n: int, until: float) -> list[Message]:
        """Up to ``n`` trades, waiting for the first no later than ``until`` (wall-clock s); in the reader thread.

        librdkafka waits in whole milliseconds, rounded down: the rest is slept here and the queue read once
        more, so a due bar is closed on time and not after spins through the event loop.
        """
        msgs: list[Message] = self.consumer.consume(n, max(until - time.time(), 0.0))
        if not msgs:
            rest = until - time.time()
            if rest > 0:
                time.sleep(rest)
                msgs = self.consumer.consume(n, 0)
        return msgs

    async def _read_loop(self) -> None:
        s = self.settings
        loop = asyncio.get_running_loop()
        await self.assigned.wait()
        # Faust and its start-up leave a few hundred thousand long-lived objects; a full collection that
        # walks them takes about 20 ms, long enough to hold up a live bar. Frozen, collections skip them.
        gc.collect()
        gc.freeze()
        while True:
            await self.assigned.wait()
            generation = self.generation
            msgs = await loop.run_in_executor(self.reader, self._read, s.batch_max, self._read_until())
            async with self.lock:
                if generation != self.generation:
                    continue  # the assignment changed meanwhile: these are read again from the committed offsets
                records, last, books, books_end, trades_end = self._records(msgs)
                now = int(time.time() * 1000)
                proc = self.processor
                out = proc.apply_books(books, now) if books else []
                if books_end:
                    out += proc.books_at_end(books_end, now)
                if records:
                    out += proc.apply(records, now)
                if s.close_ahead_ms and not proc.ahead.holding:
                    due = proc.next_live_deadline(s.live_lag_ms)
                    if due is not None and due - s.close_ahead_ms <= now < due:
                        proc.close_ahead(due, s.live_lag_ms)
                for p in trades_end:
                    proc.caught_up(p)
                out += proc.advance_live(now, s.live_lag_ms)
                await self._publish(out)
                for p, off in last.items():
                    self.read_to[p] = off + 1
                for p, end in self.read_to.items():
                    waiting = proc.first_waiting(p)  # trades waiting for the books are not committed yet
                    pos = end if waiting is None else waiting
                    if self.settled.get(p) != pos:
                        self.positions[p] = self.settled[p] = pos
                self.applied += len(records)
                self.emitted += len(out)
                await self._commit()

    @staticmethod
    def _records(msgs: list[Message]) -> tuple[list[tuple[int, int, bytes]], dict[int, int],
                                               list[tuple[int, int, bytes]], list[int], list[int]]:
        """(partition, offset, value) of each trade record, the last offset read per trade partition, the
        book records likewise, and the book and the trade partitions read to their end."""
        records: list[tuple[int, int, bytes]] = []
        books: list[tuple[int, int, bytes]] = []
        books_end: list[int] = []
        trades_end: list[int] = []
        last: dict[int, int] = {}
        for m in msgs:
            err = m.error()
            if err is not None:
                if err.code() == KafkaError._PARTITION_EOF:
                    (books_end if m.topic() == _BOOKS else trades_end).append(m.partition() or 0)
                    continue
                if err.fatal():
                    raise KafkaException(err)
                log.warning("Reading %s[%s]: %s", m.topic(), m.partition(), err)
                continue
            p, off = m.partition() or 0, m.offset() or 0
            if m.topic() == _BOOKS:
                books.append((p, off, m.value() or b""))
                continue
            records.append((p, off, m.value() or b""))
            last[p] = off
        return records, last, books, books_end, trades_end

    def _on_delivery(self, err: Any, msg: Any) -> None:
        if err is not None:
            self.delivery_errors.append(f"{msg.topic()}: {err}")

    async def _publish(self, out: list[Output]) -> None:
        """Send the records, feature vectors first (what a trader waits for), then store the changed state."""
        produce, poll = self.producer.produce, self.producer.poll
        if len(out) > 1:
            out.sort(key=lambda o: o.topic != _FEATURES)  # stable: each topic keeps its order per key
        for o in out:
            while True:
                try:
                    if o.partition is None:
                        produce(o.topic, o.value, o.key, on_delivery=self._on_delivery)
                    else:
                        produce(o.topic, o.value, o.key, o.partition, on_delivery=self._on_delivery)
                    break
                except BufferError:
                    poll(0.01)
        if out:
            left = await asyncio.get_running_loop().run_in_executor(None, self.producer.flush,
                                                                  _DELIVERY_TIMEOUT_MS / 1000 + 5)
            if left or self.delivery_errors:
                raise RuntimeError(f"{left} output records were not delivered: {self.delivery_errors[:3]}; the "
                                   "batch is not committed and will be processed again after a restart")
        for key, partition, state in self.processor.take_dirty():
            faust_seam.store(self.table, partition, key, state)

    async def _commit(self, force: bool = False) -> None:
        """Commit the offsets after the applied trades, about once a second (at once when forced), but not
        just before a live bar is due: a commit takes a few milliseconds that the bar would wait."""
        s = self.settings
        if not self.positions or not (force or time.monotonic() - self.last_commit >= s.commit_interval_s):
            return
        if self.processor.ahead.holding:  # their keys' state is not stored yet; forced commits undo them first
            return
        due = self.processor.next_live_deadline(s.live_lag_ms)
        if not force and due is not None and due - time.time() * 1000 < _COMMIT_CLEARANCE_MS:
            return
        await faust_seam.commit_offsets(self.app, _TRADES, self.positions)
        self.positions.clear()
        self.last_commit = time.monotonic()

    async def _progress(self) -> None:
        """A log line every 30 s while trades flow."""
        last = 0
        while True:
            await asyncio.sleep(30)
            if self.applied != last:
                p = self.processor
                log.info("Applied %d trades (%.0f/s over the last 30 s), published %d records; %d keys, %d late "
                         "trades dropped, %d re-delivered trades skipped, %d trades produced again dropped, %d "
                         "closes ahead of time undone.", self.applied, (self.applied - last) / 30, self.emitted,
                         len(p.keys), p.late, p.skipped, p.duplicates, p.ahead.undone)
                last = self.applied


def build(settings: StreamsSettings | None = None, bootstrap: str | None = None,
          datadir: Path | None = None) -> StreamsWorkerApp:
    settings = settings or load_settings()
    bootstrap = bootstrap or kafka_bootstrap()
    datadir = datadir or tickflow_home() / "streams" / settings.app_id
    datadir.mkdir(parents=True, exist_ok=True)
    return StreamsWorkerApp(settings, bootstrap, datadir)


def run_worker() -> int:
    """Run the worker until SIGTERM or SIGINT (Faust's Worker stops the app cleanly on either)."""
    from contracts.logs import setup_logging

    try:
        faust_seam.check()
    except faust_seam.FaustSeamError as err:  # an upgrade removed what the worker relies on: one line, exit 2
        print(f"tickflow streams worker: {err}", file=sys.stderr)
        return 2
    built = build()
    check_copartitioned(built.consumer, (MARKET_TRADES, MARKET_BOOKS, SIGNALS_BARS, SIGNALS_FEATURES))
    s = built.settings
    log.info("Streams worker starting: broker %s, intervals %s s, grace %d ms, state table %s.",
             kafka_bootstrap(), list(s.intervals), s.grace_ms, built.table.changelog_topic.get_topic_name())
    # With the broker gone, aiokafka's consumer can wait forever in its shutdown: a stop that takes longer than
    # STREAMS__STOP_TIMEOUT_S ends the process (exit 1). That loses nothing: state is written before a batch
    # is acknowledged, so a restart re-applies, idempotently, what was not committed.
    worker = faust_seam.DeadlineWorker(
        built.app, s.stop_timeout_s, "Is the broker reachable? Trades after the last committed offset will be "
        "re-applied on restart.", loglevel="WARNING", override_logging=False, quiet=True)
    setup_logging()
    startup_logs.install()  # aiokafka's two known start-up lines at INFO (streams.startup_logs)
    try:
        worker.execute_from_commandline()
    except SystemExit as err:
        code = err.code if isinstance(err.code, int) else 0
        p = built.processor
        log.info("Streams worker stopped after applying %d trades (%d late, %d re-delivered skipped, %d produced "
                 "again dropped, %d closes ahead of time undone).", built.applied, p.late, p.skipped, p.duplicates,
                 p.ahead.undone)
        return code
    return 0
