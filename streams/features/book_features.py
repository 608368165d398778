"""Book features (schema v2's ``book_*``), the one definition the streams worker and the offline builder call.

``BookTrack`` follows one key's ``market.books`` records: ``receive`` queues each record as it is read,
``values(start, end)`` gives a bar's book features. The book is advanced lazily, to each bar's end in
event time (or, as they are read, through the key's trade watermark, before which no bar is still to close:
a worker restarted on days of ``market.books`` does not queue them all until its first bar closes):
queued records are applied in the topic's order while their ``ts_event`` is before the end,
so the features at an end depend on the records and the end alone, not on when the worker read them or
how trades and books interleaved in its reads (the worker holds back trades until the books have caught
up with them: ``streams.book_gate``). Definitions are in ``contracts/feature_schema.py``.

Records are applied by the project's book reader (snapshots in parts, the venue's chain checked, a break
waits for the next snapshot). A record produced again (a replay run again: its ``seq`` is not above the
highest applied and its event time not after the newest applied) is dropped and counted, as trades are.
Each applied record leaves ``(ts_event, ofi)`` behind for the bars still to close (two flat lists, so a
bar finds its updates by bisection while their event times ascend, as a venue's do between resyncs, instead
of a walk over the longest interval's updates for every bar); the values at an end
are kept for a few ends, so a bar closed again at the same end (an undone close ahead of time) gets the
same numbers. The queue is bounded (``max_pending``, the worker's ``STREAMS__BOOK_BACKLOG_MAX``): a key whose
books run far ahead of its trades (its trade feed stopped, or a symbol subscribed for books alone) has its
oldest half applied at once, and a bar that still ends by then gets null book features (``unknown``), not
those of a book already moved past its end. Nothing here is stored in the worker's table: after a restart
the book is rebuilt from the topic (read again from its start), which gives the same numbers.
"""

from __future__ import annotations

from bisect import bisect_left
from collections import OrderedDict, deque
from typing import Protocol

from contracts.book_reader import BookReader
from contracts.books import BookUpdate
from contracts.feature_schema import BOOK_FEATURE_NAMES, BOOK_MAX_AGE_MS

Top = tuple[float, float, float, float]  # best bid, its size, best ask, its size

N_LEVEL_VALUES = 10  # spread .. depth: the values of the book at an end
NO_BOOK: list[float | None] = [None] * len(BOOK_FEATURE_NAMES)
_IMB_LEVELS = (1, 5, 10)
_DEPTH_BPS = (10.0, 50.0)
_KEEP_ENDS = 16  # values kept per end already passed


class _Side(Protocol):
    def top(self, n: int | None = None) -> list[tuple[float, float]]: ...


def ofi(before: Top, after: Top) -> float:
    """Cont, Kukanov and Stoikov's order-flow imbalance of one update (``before``: the best levels before it)."""
    b0, qb0, a0, qa0 = before
    b1, qb1, a1, qa1 = after
    e = 0.0
    if b1 >= b0:
        e += qb1
    if b1 <= b0:
        e -= qb0
    if a1 <= a0:
        e -= qa1
    if a1 >= a0:
        e += qa0
    return e


def _depth(levels: list[tuple[float, float]], limit: float, bids: bool) -> float:
    total = 0.0
    for price, size in levels:
        if (price < limit) if bids else (price > limit):
            break
        total += size
    return total


def level_values(bids: list[tuple[float, float]], asks: list[tuple[float, float]]) -> list[float | None]:
    """Spread, mid, microprice offset, imbalances and depths of a book, from its levels best first (all the
    levels within 50 bps of the mid at least); None each when a side is empty."""
    if not bids or not asks:
        return [None] * N_LEVEL_VALUES
    b1, qb1 = bids[0]
    a1, qa1 = asks[0]
    mid = (a1 + b1) / 2
    weight = qb1 / (qb1 + qa1)
    out: list[float | None] = [(a1 - b1) / mid * 1e4, mid, (weight * a1 + (1 - weight) * b1 - mid) / mid * 1e4]
    for k in _IMB_LEVELS:
        qb = sum(q for _, q in bids[:k])
        qa = sum(q for _, q in asks[:k])
        out.append((qb - qa) / (qb + qa))
    for bps in _DEPTH_BPS:
        out.append(_depth(bids, mid * (1 - bps / 1e4), True))
        out.append(_depth(asks, mid * (1 + bps / 1e4), False))
    return out


class BookTrack:
    """One key's book as of the bar ends asked for, and what its updates added up to per bar."""

    __slots__ = ("applied", "applied_early", "dropping", "early_until", "ends", "flow_head", "flow_ofi", "flow_ts",
                 "frontier", "levels", "max_pending", "max_seq", "max_ts", "oldest_ms", "pending", "pos",
                 "produced_again", "reader", "top", "unknown", "unordered")

    def __init__(self, max_interval_ms: int, max_pending: int | None = None) -> None:
        self.reader = BookReader()
        self.pending: deque[BookUpdate] = deque()
        self.max_pending = max_pending  # None: unbounded (the offline builder queues a whole key's records)
        self.early_until = -(2**62)  # the newest event time applied before a bar asked for it
        self.applied_early = 0  # records applied before a bar asked for them
        self.unknown = 0  # bars that ended by early_until: null book features
        # (ts_event, ofi) of each applied update, from flow_head on (the entries before it are no bar's any more)
        self.flow_ts: list[int] = []
        self.flow_ofi: list[float] = []
        self.flow_head = 0
        self.unordered = -1  # the last index whose event time is below its predecessor's (-1: none)
        self.oldest_ms = max_interval_ms  # flow older than an end minus this is no bar's any more
        self.ends: OrderedDict[int, list[float | None]] = OrderedDict()
        self.pos = -(2**62)  # every record before this event time has been applied
        self.top: Top | None = None  # the best levels after the last applied update (None: no whole book)
        self.frontier = -(2**62)  # the newest event time received
        self.max_ts = -(2**62)  # the newest event time applied
        self.max_seq = -2
        self.dropping = False  # inside a snapshot produced again (its later parts go too)
        self.produced_again = 0
        self.applied = 0
        self.levels: list[float | None] | None = None  # the level values since the last applied record

    def receive(self, u: BookUpdate, through: int = -(2**62)) -> int:
        """Queue one record, in the topic's order, and apply the queued records from the front while their
        event time is at or before ``through`` (the key's trade watermark: every bar still to close ends
        after it, so applying them now changes no bar's numbers). When more than ``max_pending`` still wait,
        apply the oldest half of them now. Returns how many were applied so (0 almost always)."""
        pending = self.pending
        pending.append(u)
        if u.ts_event > self.frontier:
            self.frontier = u.ts_event
        if pending[0].ts_event <= through:
            while pending and pending[0].ts_event <= through:
                self._apply(pending.popleft())
            self._cut_flow(through - self.oldest_ms)
        if self.max_pending is None or len(pending) <= self.max_pending:
            return 0
        n = len(pending) - self.max_pending // 2
        until = self.early_until
        for _ in range(n):
            early = pending.popleft()
            self._apply(early)
            if early.ts_event > until:
                until = early.ts_event
        self.early_until = until
        self.applied_early += n
        self._cut_flow(until - self.oldest_ms)  # a bar still to come ends after ``until``: it starts after this
        return n

    def advance(self, end: int) -> list[float | None]:
        """Apply the queued records whose event time is before ``end``; the level values of the book then."""
        if end <= self.pos:
            kept = self.ends.get(end)
            if kept is not None:
                return kept
        pending = self.pending
        while pending and pending[0].ts_event < end:
            self._apply(pending.popleft())
        self._cut_flow(end - self.oldest_ms)
        values = self._level_values(end)
        if end > self.pos:
            self.pos = end
            self.ends[end] = values
            if len(self.ends) > _KEEP_ENDS:
                self.ends.popitem(last=False)
        return values

    def values(self, start: int, end: int) -> list[float | None]:
        """The book features of the bar ``[start, end)``, in BOOK_FEATURE_NAMES order (all null when the
        book was applied past ``end`` before the bar asked: see ``max_pending``)."""
        if end <= self.early_until:
            self.unknown += 1
            return list(NO_BOOK)
        out = [*self.advance(end), 0.0, 0.0]
        ts, flow, head = self.flow_ts, self.flow_ofi, self.flow_head
        total, n = 0.0, 0
        if self.unordered <= head:  # event times ascend from head: the bar's updates are one run
            lo = bisect_left(ts, start, head)
            hi = bisect_left(ts, end, lo)
            for e in flow[lo:hi]:  # summed in the order a scan of every update would add them
                total += e
            n = hi - lo
        else:
            for i in range(head, len(ts)):
                if start <= ts[i] < end:
                    total += flow[i]
                    n += 1
        out[-2], out[-1] = total, float(n)
        return out

    def _cut_flow(self, cut: int) -> None:
        """Drop the updates from the front while they are older than ``cut``."""
        ts, head = self.flow_ts, self.flow_head
        n = len(ts)
        while head < n and ts[head] < cut:
            head += 1
        if head > 1024 and head * 2 > n:  # compact: the dropped front goes
            del ts[:head]
            del self.flow_ofi[:head]
            self.unordered = max(self.unordered - head, -1)
            head = 0
        self.flow_head = head

    def _level_values(self, end: int) -> list[float | None]:
        """The level values at ``end``: computed again only when an update was applied since the last time
        (a quiet book, or trades replayed long after their books, would otherwise walk it for every bar)."""
        if end - self.max_ts > BOOK_MAX_AGE_MS:
            return [None] * N_LEVEL_VALUES
        if self.levels is None:
            self.levels = self._walk_levels()
        return self.levels

    def _walk_levels(self) -> list[float | None]:
        held = next(iter(self.reader.books.values()), None)
        if held is None or not held.whole:
            return [None] * N_LEVEL_VALUES
        top = self.top
        if top is None:
            return [None] * N_LEVEL_VALUES
        mid, reach = (top[0] + top[2]) / 2, _DEPTH_BPS[-1] / 1e4
        return level_values(_within(held.book.bids, mid * (1 - reach), True),
                            _within(held.book.asks, mid * (1 + reach), False))

    def _apply(self, u: BookUpdate) -> None:
        if self._again(u):
            self.produced_again += 1
            return
        self.levels = None
        if u.ts_event > self.max_ts:
            self.max_ts = u.ts_event
        if u.seq > self.max_seq:
            self.max_seq = u.seq
        book = self.reader.apply(u)
        if book is None:
            held = self.reader.books[(u.exchange, u.symbol)]
            if not held.whole:
                self.top = None
            return
        bid, ask = book.bids.best(), book.asks.best()
        now = None if bid is None or ask is None else (bid, book.bids.sizes[bid], ask, book.asks.sizes[ask])
        e = ofi(self.top, now) if self.top is not None and now is not None else 0.0
        self.top = now
        ts = self.flow_ts
        if ts and u.ts_event < ts[-1]:
            self.unordered = len(ts)
        ts.append(u.ts_event)
        self.flow_ofi.append(e)
        self.applied += 1

    def _again(self, u: BookUpdate) -> bool:
        if u.kind == "snapshot" and u.part > 0:
            return self.dropping
        again = u.seq <= self.max_seq and u.ts_event <= self.max_ts
        if u.kind == "snapshot":
            again = again and u.seq < self.max_seq  # the same seq is a periodic snapshot (the reader skips it)
            self.dropping = again and not u.last
        return again


def _within(side: _Side, limit: float, bids: bool) -> list[tuple[float, float]]:
    """The levels of a book side best first, at least down to ``limit`` and at least the best 10."""
    n = 64
    while True:
        levels = side.top(n)
        last = levels[-1][0] if levels else limit
        if len(levels) < n or ((last < limit) if bids else (last > limit)):
            return levels
        n *= 4
