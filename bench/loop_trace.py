"""Trace a transactional loop's Kafka calls: ``python -m bench.loop_trace OUT.jsonl MODULE ARGS...`` runs
``python -m MODULE ARGS...`` (``tickflow trade ...`` or ``bench.txn_floor ...``) with the clients that
``contracts.kafka_io`` builds replaced by subclasses that note each call's start and end
(``time.perf_counter_ns``, one clock for every process of the machine), the records a poll returned, and the
collector's runs; written to OUT.jsonl at exit. The trader and its floor are traced by the same code, so what
the tracing costs, both pay.
"""

from __future__ import annotations

import atexit
import gc
import json
import runpy
import sys
import threading
import time
from pathlib import Path
from typing import Any

from confluent_kafka import Consumer, Producer

from contracts import kafka_io

_events: list[tuple[Any, ...]] = []  # (what, thread, start_ns, end_ns, detail)
_now = time.perf_counter_ns


def _note(what: str, t0: int, detail: Any = None) -> None:
    _events.append((what, threading.get_ident(), t0, _now(), detail))


class TracedConsumer(Consumer):
    def poll(self, *args: Any, **kwargs: Any) -> Any:
        t0 = _now()
        m = super().poll(*args, **kwargs)
        _note("poll", t0, None if m is None or m.error() else [[m.topic(), m.partition(), m.offset()]])
        return m

    def consume(self, *args: Any, **kwargs: Any) -> Any:
        t0 = _now()
        ms = super().consume(*args, **kwargs)
        _note("consume", t0, [[m.topic(), m.partition(), m.offset()] for m in ms if not m.error()])
        return ms


class TracedProducer(Producer):
    def begin_transaction(self, *args: Any, **kwargs: Any) -> Any:
        t0 = _now()
        super().begin_transaction(*args, **kwargs)
        _note("begin", t0)

    def produce(self, topic: str, *args: Any, **kwargs: Any) -> Any:
        t0 = _now()
        super().produce(topic, *args, **kwargs)
        _note("produce", t0, topic)

    def send_offsets_to_transaction(self, positions: Any, *args: Any, **kwargs: Any) -> Any:
        t0 = _now()
        super().send_offsets_to_transaction(positions, *args, **kwargs)
        _note("offsets", t0, [[tp.topic, tp.partition, tp.offset] for tp in positions])

    def commit_transaction(self, *args: Any, **kwargs: Any) -> Any:
        t0 = _now()
        super().commit_transaction(*args, **kwargs)
        _note("commit", t0)


def _gc(phase: str, info: dict[str, int]) -> None:
    if phase == "start":
        _gc_start[0] = _now()
    else:
        _note("gc", _gc_start[0], info.get("generation"))


_gc_start = [0]


def _bounded(original: Any) -> Any:
    def traced(*args: Any, **kwargs: Any) -> Any:  # the caller's side of a call handed to another thread
        t0 = _now()
        try:
            return original(*args, **kwargs)
        finally:
            _note("bounded", t0, args[2] if len(args) > 2 else None)
    return traced


def _method(cls: type, name: str) -> None:
    original = getattr(cls, name)

    def traced(*args: Any, **kwargs: Any) -> Any:
        t0 = _now()
        try:
            return original(*args, **kwargs)
        finally:
            _note(f"{cls.__name__}.{name}", t0)
    setattr(cls, name, traced)


def main(argv: list[str]) -> None:
    out, module, *args = argv
    if module == "tickflow":  # the trader's own steps besides its Kafka calls
        import logging

        from trader.service import TraderService

        for name in ("step", "_feature", "_side", "_snapshot"):
            _method(TraderService, name)
        _method(logging.StreamHandler, "emit")
    kafka_io.Consumer = TracedConsumer  # type: ignore[misc]
    kafka_io.Producer = TracedProducer  # type: ignore[misc]
    kafka_io._bounded = _bounded(kafka_io._bounded)
    gc.callbacks.append(_gc)
    atexit.register(lambda: Path(out).write_text("".join(json.dumps(e) + "\n" for e in _events)))
    sys.argv = [module, *args]
    runpy.run_module(module, run_name="__main__", alter_sys=True)


def load(path: Path) -> list[tuple[Any, ...]]:
    return [tuple(json.loads(line)) for line in path.read_text().splitlines()]


if __name__ == "__main__":
    main(sys.argv[1:])
