"""`tickflow topic dump`: a topic's records from a start (the beginning, a time, the last N) to the end
offsets found at the call, optionally one key's or the newest per key, then (``--follow``) what arrives.

Without ``--follow`` a dump ends as soon as every partition is read to the end offsets it found at start.
``last`` counts per partition (a topic's partitions share no order); ``overall`` keeps the ``last`` newest
records of the whole topic by record timestamp instead, printed in timestamp order. With a key filter
or ``latest_per_key`` the last N are those of the records that pass, so the partitions are read from
their start (or ``from_ms``).
"""

from __future__ import annotations

import itertools
import json
import re
import sys
from collections import defaultdict, deque
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import TextIO

from confluent_kafka import Message

from contracts.topic_reader import follow, offsets_at, read_to_end, watermarks
from contracts.topics import Topic

_MARKET_KEY = re.compile(r"[^:\s]+:[^:\s]+")
_EPOCH_MS_FLOOR = 10**11  # 1973-03 in ms: a smaller number is more likely seconds than milliseconds


@dataclass(frozen=True)
class DumpRequest:
    """What to print of a topic (the options of `tickflow topic dump`)."""

    topic: str  # the name on the broker
    last: int | None = None
    overall: bool = False
    key: str | None = None
    from_ms: int | None = None
    latest_per_key: bool = False
    follow: bool = False
    idle_s: float = float("inf")  # with follow: stop after this long without a record
    stall_s: float = 60.0  # reading to the end: give up after this long without a record
    limit: int | None = None
    meta: bool = False


def parse_time(text: str) -> int:
    """``--from-time``: ISO-8601 (a time without a zone is UTC) or epoch milliseconds, as epoch ms."""
    value = text.strip()
    if value.isdigit():
        ms = int(value)
        if ms < _EPOCH_MS_FLOOR:
            raise ValueError(f"--from-time {text!r}: epoch milliseconds expected, and this is "
                             f"{datetime.fromtimestamp(ms / 1000, UTC):%Y-%m-%d}; for epoch seconds append 000")
        return ms
    try:
        when = datetime.fromisoformat(value)
    except ValueError:
        raise ValueError(f"--from-time {text!r}: not an ISO-8601 time (e.g. 2026-12-01T12:00:00Z) nor epoch "
                         "milliseconds") from None
    return int((when if when.tzinfo else when.replace(tzinfo=UTC)).timestamp() * 1000)


def check_key(known: Topic | None, key: str) -> None:
    """Refuse a ``--key`` that no record of a registry topic can carry, naming the topic's key format."""
    if known is None:
        return
    if known.key == "none":
        raise ValueError(f"--key {key!r}: records of {known.base} carry no key")
    if known.key == "exchange:symbol" and not _MARKET_KEY.fullmatch(key):
        raise ValueError(f"--key {key!r}: keys of {known.base} are exchange:symbol, e.g. binance:BTC-USDT")


def dump(bootstrap: str, req: DumpRequest, out: TextIO = sys.stdout) -> int:
    """Print the records ``req`` asks for as JSON lines; return how many."""
    marks = watermarks(bootstrap, req.topic)
    ends = {p: high for p, (_, high) in marks.items()}
    starts = {p: low for p, (low, _) in marks.items()}
    if req.from_ms is not None:
        starts = {p: max(starts[p], off) for p, off in offsets_at(bootstrap, req.topic, req.from_ms).items()}
    wanted = _selector(req)
    if req.last is not None and wanted is None and not req.latest_per_key:
        records: Iterable[Message] = _tail(bootstrap, req.topic, req.last, starts, ends, req.stall_s)
    else:
        records = read_to_end(bootstrap, req.topic, starts, ends, idle_s=req.stall_s)
        if wanted is not None:
            records = filter(wanted, records)
        if req.latest_per_key:
            records = _latest_per_key(records)
        if req.last is not None:
            records = _last_per_partition(records, req.last)
    if req.overall and req.last is not None:
        records = sorted(records, key=lambda m: (m.timestamp()[1], m.partition(), m.offset()))[-req.last:]
    if req.follow:
        more: Iterable[Message] = follow(bootstrap, req.topic, ends, req.idle_s)
        records = itertools.chain(records, filter(wanted, more) if wanted is not None else more)
    count = 0
    for m in itertools.islice(records, req.limit):
        out.write(_line(m, req.meta))
        count += 1
        if req.follow:
            out.flush()
    out.flush()
    return count


def _selector(req: DumpRequest) -> Callable[[Message], bool] | None:
    """The records ``--key`` and ``--from-time`` keep. The broker's offsets_for_times gives the first batch
    whose newest time is at or after the time, and a transaction's commit marker carries the wall-clock time
    of its commit: records stamped earlier (a replay of old data, written in transactions) can follow it."""
    key = None if req.key is None else req.key.encode()
    since = req.from_ms
    if key is None and since is None:
        return None
    return lambda m: (key is None or m.key() == key) and (since is None or m.timestamp()[1] >= since)


def _tail(bootstrap: str, name: str, n: int, floor: dict[int, int], ends: dict[int, int],
          stall_s: float) -> list[Message]:
    """The last ``n`` committed records of each partition at or after ``floor``, partition by partition.

    Transaction markers and compacted-away records take offsets, so the read starts ``n`` offsets before
    the end and goes back twice as far each time a partition has fewer than ``n``."""
    got: dict[int, list[Message]] = {}
    upper, window = dict(ends), n
    todo = {p for p in ends if ends[p] > floor[p]}
    while todo:
        start = {p: max(floor[p], upper[p] - window) if p in todo else upper[p] for p in ends}
        chunk: dict[int, list[Message]] = defaultdict(list)
        for m in read_to_end(bootstrap, name, start, {p: upper[p] if p in todo else 0 for p in ends}, stall_s):
            chunk[m.partition() or 0].append(m)
        for p in todo:
            got[p] = chunk[p] + got.get(p, [])
            upper[p] = start[p]
        todo = {p for p in todo if len(got[p]) < n and start[p] > floor[p]}
        window *= 2
    return [m for p in sorted(got) for m in got[p][-n:]]


def _latest_per_key(records: Iterable[Message]) -> list[Message]:
    """The newest record of each key (what compaction leaves), in partition and offset order."""
    newest: dict[bytes | None, Message] = {}
    for m in records:
        newest[m.key()] = m
    return sorted(newest.values(), key=lambda m: (m.partition(), m.offset()))


def _last_per_partition(records: Iterable[Message], n: int) -> Iterator[Message]:
    kept: dict[int, deque[Message]] = defaultdict(lambda: deque(maxlen=n))
    for m in records:
        kept[m.partition() or 0].append(m)
    for p in sorted(kept):
        yield from kept[p]


def _line(m: Message, meta: bool) -> str:
    value = (m.value() or b"").decode("utf-8", errors="replace")
    if not meta:
        return value + "\n"
    try:
        parsed: object = json.loads(value)
    except ValueError:
        parsed = value
    key = m.key()
    record = {"topic": m.topic(), "partition": m.partition(), "offset": m.offset(), "timestamp": m.timestamp()[1],
              "key": None if key is None else key.decode("utf-8", errors="replace"), "value": parsed}
    return json.dumps(record) + "\n"
