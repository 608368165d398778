"""Trades wait for the books: the worker applies a trade only once ``market.books`` has caught up with it.

The worker reads ``market.trades`` and ``market.books`` (same keys, same partitions) with one consumer, and
the two topics arrive in whatever interleaving the fetches give. A bar's book features need every book
record before its end (``streams.features.book_features``), and a bar closes on a trade, so a trade of
partition p is applied only when one of these holds:

- its key's books have reached its event time (a book record of the key at or after it was read), or
- the books partition p is read to its end (live: the books are as current as they can be; a key with no
  books waits for nothing more), or
- the books of other keys on p are ``hold_ms`` past it (this key's books stopped, e.g. waiting for a
  snapshot: its trades do not wait for ever).

Once one trade of a partition waits, the later ones of that partition wait behind it, in order, and the
worker commits that partition's offsets no further than the first waiting trade.
"""

from __future__ import annotations

from collections import deque

from contracts.messages import Trade

NEVER = -(2**62)


class BookGate:
    def __init__(self, hold_ms: int) -> None:
        self.hold_ms = hold_ms
        self.key_frontier: dict[bytes, int] = {}  # the newest book event time read per key
        self.part_frontier: dict[int, int] = {}  # ... per partition
        self.at_end: set[int] = set()  # books partitions read to their end (no record read since)
        self.waiting: dict[int, deque[tuple[int, bytes, Trade]]] = {}  # partition -> (offset, key, trade)

    def book_read(self, partition: int, key: bytes, ts: int) -> None:
        self.at_end.discard(partition)
        if ts > self.key_frontier.get(key, NEVER):
            self.key_frontier[key] = ts
        if ts > self.part_frontier.get(partition, NEVER):
            self.part_frontier[partition] = ts

    def books_at_end(self, partition: int) -> None:
        self.at_end.add(partition)

    def passes(self, partition: int, key: bytes, ts: int) -> bool:
        return (partition in self.at_end or self.key_frontier.get(key, NEVER) >= ts
                or self.part_frontier.get(partition, NEVER) >= ts + self.hold_ms)

    def admit(self, partition: int, offset: int, key: bytes, t: Trade) -> bool:
        """True: apply the trade now. False: it waits (``release`` hands it back later)."""
        queue = self.waiting.get(partition)
        if not queue and (partition in self.at_end or self.passes(partition, key, t.ts_event)):
            return True
        if queue is None:
            queue = self.waiting[partition] = deque()
        queue.append((offset, key, t))
        return False

    def release(self) -> list[tuple[int, int, bytes, Trade]]:
        """(partition, offset, key, trade) of the waiting trades that may go now, in order per partition."""
        out: list[tuple[int, int, bytes, Trade]] = []
        for partition, queue in self.waiting.items():
            while queue and self.passes(partition, queue[0][1], queue[0][2].ts_event):
                offset, key, t = queue.popleft()
                out.append((partition, offset, key, t))
        return out

    def first_waiting(self, partition: int) -> int | None:
        """The offset of the partition's first waiting trade (the commit stops there), None when none waits."""
        queue = self.waiting.get(partition)
        return queue[0][0] if queue else None

    def clear(self) -> None:
        self.key_frontier.clear()
        self.part_frontier.clear()
        self.at_end.clear()
        self.waiting.clear()
