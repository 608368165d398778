"""An L2 order book: two sides of price levels kept sorted, best first, with the standard library only.

Each side is a dict (price -> size) beside a list of sort keys kept in order with ``bisect``: a level
change is a dict write plus, when the price is new or gone, one ``insort``/``del`` on the list (a
memmove of the pointers after it). Both lists ascend to the best level, which is last: most changes
are near the best, so the memmove is short (the bundled Binance diffs change levels about 13% of the
way down from the best: 13% of the list moves, not 87%). Asks keep their negated prices as keys; bids
use the price object itself, so a bid level costs one float fewer. About 130 bytes a level: 100
symbols with 5,000 levels a side fit in about 130 MB (``tests/unit/ingestor/test_books_memory.py``
measures it).

Venues whose checksum is computed over the text they sent (OKX) keep that text per level as well.
"""

from __future__ import annotations

from bisect import bisect_left, insort
from collections.abc import Iterable


class BookSide:
    """One side of a book. ``descending`` for bids (best = highest price)."""

    __slots__ = ("_keys", "descending", "sizes", "text")

    def __init__(self, descending: bool, keep_text: bool = False) -> None:
        self.descending = descending
        self.sizes: dict[float, float] = {}
        self._keys: list[float] = []
        self.text: dict[float, tuple[str, str]] | None = {} if keep_text else None

    def __len__(self) -> int:
        return len(self.sizes)

    def set(self, price: float, size: float, text: tuple[str, str] | None = None) -> None:
        """Set a level's absolute size; 0 removes it (removing an absent level is a no-op)."""
        sizes = self.sizes
        if size == 0.0:
            if sizes.pop(price, None) is not None:
                keys = self._keys
                del keys[bisect_left(keys, price if self.descending else -price)]
                if self.text is not None:
                    self.text.pop(price, None)
            return
        if price not in sizes:
            insort(self._keys, price if self.descending else -price)
        sizes[price] = size
        if self.text is not None and text is not None:
            self.text[price] = text

    def update(self, levels: Iterable[tuple[float, float]]) -> None:
        """``set`` for many levels (without text), with the loop's lookups hoisted: the hot path."""
        if self.text is not None:
            for price, size in levels:
                self.set(price, size)
            return
        sizes, keys = self.sizes, self._keys
        pop = sizes.pop
        if self.descending:  # bids: the price is the key
            for price, size in levels:
                if size == 0.0:
                    if pop(price, None) is not None:
                        del keys[bisect_left(keys, price)]
                else:
                    if price not in sizes:
                        insort(keys, price)
                    sizes[price] = size
            return
        for price, size in levels:
            if size == 0.0:
                if pop(price, None) is not None:
                    del keys[bisect_left(keys, -price)]
            else:
                if price not in sizes:
                    insort(keys, -price)
                sizes[price] = size

    def clear(self) -> None:
        self.sizes.clear()
        self._keys.clear()
        if self.text is not None:
            self.text.clear()

    def best(self) -> float | None:
        if not self._keys:
            return None
        key = self._keys[-1]
        return key if self.descending else -key

    def prices(self, n: int | None = None) -> list[float]:
        """The best ``n`` prices (all when None), best first."""
        keys = self._keys[::-1] if n is None else self._keys[:-n - 1:-1] if n > 0 else []
        return keys if self.descending else [-k for k in keys]

    def top(self, n: int | None = None) -> list[tuple[float, float]]:
        sizes = self.sizes
        return [(p, sizes[p]) for p in self.prices(n)]

    def top_text(self, n: int) -> list[tuple[str, str]]:
        """The venue's own text of the best ``n`` levels (a side built with ``keep_text``)."""
        if self.text is None:
            raise ValueError("this book side keeps no level text")
        return [self.text[p] for p in self.prices(n)]

    def truncate(self, depth: int) -> None:
        """Keep the best ``depth`` levels (Kraken: the book is cut to the subscribed depth)."""
        keys = self._keys
        cut = len(keys) - depth
        if cut <= 0:
            return
        for key in keys[:cut]:
            price = key if self.descending else -key
            del self.sizes[price]
            if self.text is not None:
                self.text.pop(price, None)
        del keys[:cut]


class Book:
    """Bids and asks of one symbol, with the sequence of the last update applied."""

    __slots__ = ("asks", "bids", "seq")

    def __init__(self, keep_text: bool = False) -> None:
        self.bids = BookSide(descending=True, keep_text=keep_text)
        self.asks = BookSide(descending=False, keep_text=keep_text)
        self.seq: int | None = None

    def apply(self, bids: Iterable[tuple[float, float]], asks: Iterable[tuple[float, float]]) -> None:
        self.bids.update(bids)
        self.asks.update(asks)

    def clear(self) -> None:
        self.bids.clear()
        self.asks.clear()
        self.seq = None

    def crossed(self) -> bool:
        bid, ask = self.bids.best(), self.asks.best()
        return bid is not None and ask is not None and bid >= ask

    def levels(self) -> int:
        return len(self.bids) + len(self.asks)
