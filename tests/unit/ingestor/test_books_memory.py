"""Memory by load: 100 symbols with 5,000 levels a side in one process stay well under 300 MB."""

from __future__ import annotations

import random
import tracemalloc

from contracts.book import Book


def test_100_symbols_with_5000_levels_a_side_stay_under_300_mb() -> None:
    rng = random.Random(7)
    tracemalloc.start()
    try:
        books = []
        for _ in range(100):
            book = Book()
            mid = rng.uniform(10, 60_000)
            tick = mid / 100_000
            book.apply([(round(mid - (i + 1) * tick, 8), rng.uniform(0.001, 5)) for i in range(5_000)],
                       [(round(mid + (i + 1) * tick, 8), rng.uniform(0.001, 5)) for i in range(5_000)])
            books.append(book)
        current, _peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert sum(b.levels() for b in books) == 1_000_000
    mb = current / 1e6
    print(f"100 books x 5,000 levels a side: {mb:.0f} MB held")
    assert mb < 200, f"{mb:.0f} MB"
