"""The Faust app: market.trades -> signals.bars -> signals.features, state in a changelog-backed table.

Wiring only; the work is ``streams.processor.Processor``. Per batch of trades taken from the stream:

1. apply the trades (decode, bars, features; bad records become dead letters),
2. send every output record and flush the producer,
3. write the changed keys' state (bars, feature engines, last applied offset) to the table
   ``<app_id>-streams-state``, on the changelog partition of the trades' partition,
4. let Faust acknowledge the batch (its offsets are committed afterwards).

A crash between 2 and 3 replays the batch from the older state: the same records again, identical.
A crash after 3 but before the commit re-delivers trades the state has applied: they are skipped
(each key keeps its last applied offset). So outputs are at-least-once and idempotent, and a
restarted worker resumes from its table. The table is our own, not a Faust windowed table: those
expire on wall-clock time and lose windows during a replay.

Live mode: a timer closes the due bars of live keys (trades arriving within STREAMS__LIVE_LAG_MS of
their event time) at end + grace on the wall clock, so a quiet symbol's bar is not held open.
"""

from __future__ import annotations

import asyncio
import logging
import os
import threading
import time
from pathlib import Path
from typing import Any

import faust
from confluent_kafka import Producer

from contracts.settings import kafka_bootstrap, tickflow_home
from contracts.topics import MARKET_TRADES
from streams.processor import Output, Processor
from streams.spec import StreamsSettings, load_settings

log = logging.getLogger(__name__)


class StreamsWorkerApp:
    """The Faust app and its single agent, built from settings."""

    def __init__(self, settings: StreamsSettings, bootstrap: str, datadir: Path) -> None:
        self.settings = settings
        brokers = ";".join(f"kafka://{hp}" for hp in bootstrap.split(","))
        self.app = faust.App(
            settings.app_id, broker=brokers, datadir=str(datadir), store="memory://",
            topic_partitions=MARKET_TRADES.partitions, topic_replication_factor=1, topic_disable_leader=True,
            table_standby_replicas=0, web_enabled=settings.web_port > 0, web_port=settings.web_port or 6066,
            consumer_auto_offset_reset="earliest", producer_acks=-1, producer_linger=0.005,
            broker_commit_every=10_000, broker_commit_interval=1.0, stream_buffer_maxsize=20_000,
            broker_max_poll_records=5000, stream_wait_empty=False,
            # a killed worker's partitions move to the others (or its restart) after this, not after 60 s
            broker_session_timeout=settings.session_timeout_s, broker_heartbeat_interval=3.0,
        )
        self.trades = self.app.topic(MARKET_TRADES.name, key_serializer="raw", value_serializer="raw",
                                     partitions=MARKET_TRADES.partitions)
        self.table = self.app.Table("streams-state", partitions=MARKET_TRADES.partitions, key_type=bytes,
                                    value_type=bytes)
        self.processor = Processor(settings.intervals, settings.grace_ms)
        self.processor.loader = self.table.data.get
        # Outputs go through librdkafka (idempotent, acks=all): far cheaper per record than Faust's producer.
        self.producer = Producer({"bootstrap.servers": bootstrap, "enable.idempotence": True, "linger.ms": 1,
                                  "client.id": f"{settings.app_id}-out"}, logger=log)
        self.delivery_errors: list[str] = []
        self.lock = asyncio.Lock()
        self.wake = asyncio.Event()
        self.applied = 0
        self.emitted = 0
        self.app.agent(self.trades, name="bars-and-features")(self._agent)
        self.app.task(self._live_timer)
        self.app.task(self._progress)
        self.app.on_partitions_revoked.connect(self._on_revoked)  # type: ignore[arg-type]  # mode types it narrowly

    async def _on_revoked(self, sender: Any, *args: Any, **kwargs: Any) -> None:
        # Another worker may take these keys: drop our cached state, the table holds the latest. Under the
        # lock, so that a batch in flight first writes its state.
        async with self.lock:
            self.processor.keys.clear()

    async def _agent(self, stream: Any) -> None:
        s = self.settings
        async for events in stream.take_events(s.batch_max, within=s.batch_within_ms / 1000):
            async with self.lock:
                out = self.processor.apply(((e.message.partition, e.message.offset, e.value) for e in events),
                                           int(time.time() * 1000))
                await self._publish(out)
                self.applied += len(events)
                self.emitted += len(out)
            self.wake.set()

    def _on_delivery(self, err: Any, msg: Any) -> None:
        if err is not None:
            self.delivery_errors.append(f"{msg.topic()}: {err}")

    async def _publish(self, out: list[Output]) -> None:
        produce, poll = self.producer.produce, self.producer.poll
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
            left = await asyncio.get_running_loop().run_in_executor(None, self.producer.flush, 60.0)
            if left or self.delivery_errors:
                raise RuntimeError(f"{left} output records were not delivered: {self.delivery_errors[:3]}; the "
                                   "batch is not acknowledged and will be processed again after a restart")
        for key, partition, state in self.processor.take_dirty():
            self.table.data[key] = state
            self.table.send_changelog(partition, key, state)

    async def _progress(self) -> None:
        """A log line every 30 s while trades flow."""
        last = 0
        while True:
            await asyncio.sleep(30)
            if self.applied != last:
                p = self.processor
                log.info("Applied %d trades (%.0f/s over the last 30 s), published %d records; %d keys, %d late "
                         "trades dropped, %d re-delivered trades skipped.", self.applied, (self.applied - last) / 30,
                         self.emitted, len(p.keys), p.late, p.skipped)
                last = self.applied

    async def _live_timer(self) -> None:
        s = self.settings
        while True:
            now = time.time() * 1000
            deadline = self.processor.next_live_deadline(s.live_lag_ms)
            wait_ms = s.wall_tick_ms if deadline is None else min(max(deadline - now, 0.0), s.wall_tick_ms)
            self.wake.clear()
            if wait_ms > 0:
                try:
                    await asyncio.wait_for(self.wake.wait(), wait_ms / 1000)
                    continue  # new trades: recompute the deadline
                except TimeoutError:
                    pass
            async with self.lock:
                out = self.processor.advance_live(int(time.time() * 1000), s.live_lag_ms)
                if out:
                    await self._publish(out)


class _Worker(faust.Worker):
    """Faust's worker, with a deadline on stopping.

    With the broker gone, aiokafka's consumer can wait forever in its shutdown; a stop that takes
    longer than STREAMS__STOP_TIMEOUT_S ends the process (exit 1). That loses nothing: state is
    written before a batch is acknowledged, so a restart re-applies, idempotently, what was not committed.
    """

    stop_timeout_s: float = 20.0

    def _schedule_shutdown(self, signal: Any) -> None:
        if not self._signal_stop_time:
            timeout = self.stop_timeout_s

            def watchdog() -> None:
                time.sleep(timeout)
                log.error("The streams worker did not stop within %.0f s of %s (is the broker reachable?); "
                          "exiting now. Trades after the last committed offset will be re-applied on restart.",
                          timeout, getattr(signal, "name", signal))
                logging.shutdown()
                os._exit(1)

            threading.Thread(target=watchdog, name="stop-watchdog", daemon=True).start()
        super()._schedule_shutdown(signal)


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

    built = build()
    s = built.settings
    log.info("Streams worker starting: broker %s, intervals %s s, grace %d ms, state table %s.",
             kafka_bootstrap(), list(s.intervals), s.grace_ms, built.table.changelog_topic.get_topic_name())
    worker = _Worker(built.app, loglevel="WARNING", override_logging=False, quiet=True)
    worker.stop_timeout_s = s.stop_timeout_s
    setup_logging()
    try:
        worker.execute_from_commandline()
    except SystemExit as err:
        code = err.code if isinstance(err.code, int) else 0
        log.info("Streams worker stopped after applying %d trades (%d late, %d re-delivered skipped).",
                 built.applied, built.processor.late, built.processor.skipped)
        return code
    return 0
