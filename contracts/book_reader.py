"""Books rebuilt from ``market.books``: what `tickflow book dump`, the paper broker and any consumer do with them.

A key's book starts at its next snapshot (part 0 clears it; whole again at the part with ``last``),
so a reader may start anywhere. Deltas are applied in order; where a delta carries the venue's chain
(Binance ``first_seq``, OKX ``prev_seq``) it is checked, and a break leaves the book unusable until
the next snapshot. A periodic snapshot (``seq`` equal to the book's) refreshes a whole book silently.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass, field

from contracts.book import Book
from contracts.books import BookUpdate

log = logging.getLogger(__name__)


@dataclass
class Held:
    book: Book = field(default_factory=Book)
    whole: bool = False
    building: bool = False  # between a snapshot's first and last part


class BookReader:
    """``book_factory`` makes each key's book (a subclass of ``Book`` may record its changes: the paper broker)."""

    def __init__(self, book_factory: Callable[[], Book] = Book) -> None:
        self.book_factory = book_factory
        self.books: dict[tuple[str, str], Held] = {}
        self.skipped = 0  # deltas with no whole book to apply to
        self.breaks = 0

    def apply(self, u: BookUpdate, where: str = "") -> Book | None:
        """Apply one record; the book when it is whole and this record changed it, else None."""
        held = self.books.get((u.exchange, u.symbol))
        if held is None:
            held = self.books[(u.exchange, u.symbol)] = Held(self.book_factory())
        book = held.book
        if u.kind == "snapshot":
            if u.part == 0:
                if held.whole and u.seq == book.seq:
                    return None  # a periodic snapshot of the book held: the same levels
                book.clear()
                held.whole, held.building = False, True
            elif not held.building:
                return None  # a later part of a snapshot whose start this reader did not see
            book.apply(u.bids, u.asks)
            if u.last:
                held.whole, held.building, book.seq = True, False, u.seq
                return book
            return None
        if not held.whole or book.seq is None:
            self.skipped += 1
            return None
        broken = ""
        if u.first_seq is not None and not (u.first_seq <= book.seq + 1 and u.seq > book.seq):
            broken = f"update {u.first_seq}..{u.seq} does not follow {book.seq}"
        elif u.prev_seq is not None and u.prev_seq != book.seq:
            broken = f"prev_seq {u.prev_seq} is not the book's seq {book.seq}"
        if broken:
            self.breaks += 1
            held.whole = False
            log.warning("%s %s at %s: %s; the book waits for the next snapshot.", u.exchange, u.symbol, where, broken)
            return None
        book.apply(u.bids, u.asks)
        book.seq = u.seq
        return book
