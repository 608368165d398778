"""Every private or undocumented faust-streaming and mode detail the streams worker relies on, in one place.

Read from faust-streaming 0.15.3 and mode-streaming 0.7.1 (both pinned in requirements.lock). ``check()``
verifies that each one still exists with the parameters used here; the worker calls it at start and
``tests/unit/streams/test_streams_faust_seam.py`` calls it, so an upgrade that removes or renames one stops
with a sentence naming it instead of misbehaving. The details (``DETAILS`` below, in this order):

1. ``faust.transport.drivers.aiokafka.Consumer`` and ``Transport`` (driver classes, subclassed here) and
   ``Transport.Consumer``, the consumer class a transport builds.
2. ``faust.App._new_transport()``: overridden so that the app uses that transport.
3. ``faust.transport.consumer.Consumer._get_active_partitions()``: the partitions Faust's fetcher reads;
   the trade partitions are removed from it (the worker reads them itself).
4. ``Consumer._getmany(active_partitions, timeout)``: the fetch, handed to aiokafka's thread with that same
   set object. Faust's recovery adds the trade partitions back to the set (``resume_partitions``) while a
   fetch is in flight, and aiokafka reads the set on every loop: trades then reached the ``market.trades``
   topic channel that nothing iterates, and every record past its buffer logged a ``Cannot put on Topic
   channel before aiter`` traceback (tens of thousands after a kill -9 restart on a backlog). The fetch
   gets a copy without the trade partitions.
5. ``Consumer.verify_event_path(now, tp)``: the stuck-partition check, skipped for the trade partitions.
6. ``Consumer._commit_offsets(offsets)``: Faust's commit path, which first flushes its producer (the
   table's changelog) and then commits the group's offsets.
7. ``Collection.data``: the table's local store, read (``get``) and written directly.
8. ``Collection.send_changelog(partition, key, value)``: a changelog record on a chosen partition.
9. ``mode.Worker._schedule_shutdown(signal)`` and ``Worker._signal_stop_time``: the stop on a signal,
   given a deadline here.
"""

from __future__ import annotations

import importlib
import importlib.metadata
import inspect
import logging
import os
import threading
import time
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from typing import Any, ClassVar, cast

import faust
from faust.transport import consumer as faust_consumer
from faust.transport.drivers import aiokafka as faust_aiokafka
from faust.types import TP, TableT

from contracts.settings import KafkaAuth
from contracts.topics import MARKET_TRADES

log = logging.getLogger(__name__)

READ_FROM = "0.15.3"  # the faust-streaming version these details were read from


class FaustSeamError(RuntimeError):
    """An installed faust-streaming or mode lacks a detail the worker relies on."""


@dataclass(frozen=True, slots=True)
class Detail:
    """``module:Class.attribute``, the leading parameters it must take (None: not a callable), and its use."""

    module: str
    owner: str
    attribute: str
    params: tuple[str, ...] | None
    used_for: str

    @property
    def name(self) -> str:
        return f"{self.module}.{self.owner}.{self.attribute}"

    def problem(self) -> str | None:
        """None if the detail is there as used; otherwise a sentence naming what is missing or different."""
        try:
            owner = getattr(importlib.import_module(self.module), self.owner)
        except (ImportError, AttributeError):
            return f"{self.module}.{self.owner} is missing ({self.used_for})"
        if not hasattr(owner, self.attribute):
            return f"{self.name} is missing ({self.used_for})"
        if self.params is None:
            return None
        try:
            got = tuple(inspect.signature(getattr(owner, self.attribute)).parameters)
        except (TypeError, ValueError):
            return f"{self.name} is no longer a function ({self.used_for})"
        if got[:len(self.params)] != self.params:
            return f"{self.name} takes ({', '.join(got)}), not ({', '.join(self.params)}) ({self.used_for})"
        return None


_CONSUMER = "faust.transport.consumer"
_DRIVER = "faust.transport.drivers.aiokafka"
DETAILS = (
    Detail(_DRIVER, "Consumer", "__init__", ("self",), "the worker's consumer subclasses it"),
    Detail(_DRIVER, "Transport", "Consumer", None, "the consumer class the transport builds"),
    Detail("faust", "App", "_new_transport", ("self",), "the app builds the worker's transport through it"),
    Detail(_CONSUMER, "Consumer", "_get_active_partitions", ("self",),
           "the trade partitions are removed from what Faust's fetcher reads"),
    Detail(_CONSUMER, "Consumer", "_getmany", ("self", "active_partitions", "timeout"),
           "Faust's fetch gets a copy of its partitions without the trade partitions"),
    Detail(_DRIVER, "Consumer", "verify_event_path", ("self", "now", "tp"),
           "the stuck-partition check is skipped for the trade partitions"),
    Detail(_CONSUMER, "Consumer", "_commit_offsets", ("self", "offsets"),
           "the worker commits the trades' offsets through it, after the changelog is flushed"),
    Detail("faust.tables.base", "Collection", "data", None, "the worker reads and writes the state table's store"),
    Detail("faust.tables.base", "Collection", "send_changelog", ("self", "partition", "key", "value"),
           "the worker writes each key's state to the changelog partition of its trades"),
    Detail("mode.worker", "Worker", "_schedule_shutdown", ("self", "signal"),
           "the worker's stop on a signal is given a deadline"),
    Detail("mode.worker", "Worker", "_signal_stop_time", None, "tells the first stop signal from a repeat"),
)


def check(details: Iterable[Detail] = DETAILS) -> None:
    """Raise FaustSeamError naming every detail that the installed faust-streaming or mode lacks."""
    problems = [p for d in details for p in (d.problem(),) if p is not None]
    if problems:
        installed = importlib.metadata.version("faust-streaming")
        raise FaustSeamError(f"faust-streaming {installed} does not have what the streams worker relies on "
                             f"(read from {READ_FROM}, see streams/faust_seam.py): " + "; ".join(problems))


class AssignOnlyConsumer(faust_aiokafka.Consumer):
    """Faust's consumer, minus fetching the topics the worker reads itself: it still joins the group, takes
    their partitions and restores the table."""

    self_read: ClassVar[frozenset[str]] = frozenset({MARKET_TRADES.name})

    def _get_active_partitions(self) -> set[TP]:
        tps: set[TP] = super()._get_active_partitions()
        for tp in [tp for tp in tps if tp.topic in self.self_read]:
            tps.discard(tp)
        return tps

    async def _getmany(self, active_partitions: set[TP] | None, timeout: float) -> Any:  # noqa: ASYNC109 (Faust's)
        # A copy: the set passed on is read in aiokafka's thread while the recovery may add to the original.
        fetched = {tp for tp in active_partitions or () if tp.topic not in self.self_read}
        if not fetched:  # aiokafka reads every assigned partition when given none
            await self.sleep(timeout)
            return {}
        return await super()._getmany(fetched, timeout)

    def verify_event_path(self, now: float, tp: TP) -> None:
        if tp.topic not in self.self_read:  # Faust would report the partitions it does not fetch as stuck
            super().verify_event_path(now, tp)


class StreamsTransport(faust_aiokafka.Transport):
    Consumer = AssignOnlyConsumer


def sasl_credentials(auth: KafkaAuth) -> faust.SASLCredentials:
    """Faust's (aiokafka's) login for the principal that KAFKA_SASL_* names, over SASL_PLAINTEXT."""
    return faust.SASLCredentials(username=auth.username, password=auth.password, mechanism=auth.mechanism)


class StreamsApp(faust.App):
    """A Faust app whose consumer leaves ``AssignOnlyConsumer.self_read`` topics to the worker."""

    def _new_transport(self) -> StreamsTransport:
        return StreamsTransport(self.conf.broker_consumer, self)


def assigned_partitions(app: faust.App, topic: str) -> frozenset[int]:
    """The partitions of ``topic`` assigned to this member."""
    return frozenset(tp.partition for tp in app.consumer.assignment() if tp.topic == topic)


async def commit_offsets(app: faust.App, topic: str, offsets: Mapping[int, int]) -> None:
    """Commit ``partition -> offset`` for the group through Faust: its producer (the changelog) is flushed first."""
    await cast(faust_consumer.Consumer, app.consumer)._commit_offsets({TP(topic, p): o for p, o in offsets.items()})


def table_reader(table: TableT) -> Callable[[bytes], bytes | None]:
    """The stored value of a key in the table's local store (restored from its changelog), or None."""
    get: Callable[[bytes], bytes | None] = table.data.get
    return get


def store(table: TableT, partition: int, key: bytes, value: bytes) -> None:
    """Write a key's value to the table's local store and to its changelog partition ``partition``."""
    table.data[key] = value
    table.send_changelog(partition, key, value)


class DeadlineWorker(faust.Worker):
    """Faust's worker, with a deadline on stopping: a stop that takes longer than ``stop_timeout_s`` ends the
    process (exit 1) with an error that ends with ``overdue`` (what that means for the service)."""

    def __init__(self, app: faust.App, stop_timeout_s: float, overdue: str, **kwargs: Any) -> None:
        super().__init__(app, **kwargs)
        self.stop_timeout_s = stop_timeout_s
        self.overdue = overdue

    def _schedule_shutdown(self, signal: Any) -> None:
        if not self._signal_stop_time:
            timeout, overdue = self.stop_timeout_s, self.overdue

            def watchdog() -> None:
                time.sleep(timeout)
                log.error("The worker did not stop within %.0f s of %s; exiting now. %s", timeout,
                          getattr(signal, "name", signal), overdue)
                logging.shutdown()
                os._exit(1)

            threading.Thread(target=watchdog, name="stop-watchdog", daemon=True).start()
        super()._schedule_shutdown(signal)

