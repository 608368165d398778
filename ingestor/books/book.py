"""An L2 order book: two sides of price levels kept sorted, best first, with the standard library only.

Each side is a dict (price -> size) beside a list of sort keys kept in order with ``bisect``: a new
price is one ``insort`` on the list (a memmove of pointers, fast at the 5,000 levels a venue sends); a
removed price is a dict write, its key left in the list until the best is read or such keys pile up,
so a price that comes back costs no insertion either (``BookSide`` says how). Bids keep their negated
prices as keys so both lists ascend from the best level. Asks use the price object itself as its key,
so an ask level costs one float fewer. About 130 bytes a level: 100 symbols with 5,000 levels a side
fit in about 130 MB (``tests/unit/ingestor/test_books_memory.py`` measures it).

Venues whose checksum is computed over the text they sent (OKX) keep that text per level as well.
"""

from __future__ import annotations

from bisect import insort
from collections.abc import Iterable


class BookSide:
    """One side of a book. ``descending`` for bids (best = highest price).

    ``sizes`` holds the live levels. ``_keys`` is sorted best first and may also hold keys of levels
    removed since (their prices are in ``_gone``): a removal is a dict write, and a level that comes
    back (prices near the top come and go many times a second) needs no insertion. The keys of gone
    levels at the front are dropped when the best is read, and all of them once they outnumber a
    quarter of the live levels (plus ``SLACK``), so reading the top stays as cheap as before.
    """

    __slots__ = ("_gone", "_keys", "descending", "sizes", "text")

    SLACK = 64

    def __init__(self, descending: bool, keep_text: bool = False) -> None:
        self.descending = descending
        self.sizes: dict[float, float] = {}
        self._keys: list[float] = []
        self._gone: set[float] = set()  # prices whose keys are still in _keys
        self.text: dict[float, tuple[str, str]] | None = {} if keep_text else None

    def __len__(self) -> int:
        return len(self.sizes)

    def set(self, price: float, size: float, text: tuple[str, str] | None = None) -> None:
        """Set a level's absolute size; 0 removes it (removing an absent level is a no-op)."""
        self.update(((price, size),))
        if self.text is not None and text is not None and size != 0.0:
            self.text[price] = text

    def update(self, levels: Iterable[tuple[float, float]]) -> None:
        """Set many levels' absolute sizes (without text), 0 removing: the hot path."""
        sizes, keys, gone, desc = self.sizes, self._keys, self._gone, self.descending
        pop, forget, remember = sizes.pop, gone.discard, gone.add
        text = self.text
        for price, size in levels:
            if size == 0.0:
                if pop(price, None) is not None:
                    remember(price)
                    if text is not None:
                        text.pop(price, None)
            else:
                if price not in sizes:
                    if price in gone:
                        forget(price)
                    else:
                        insort(keys, -price if desc else price)
                sizes[price] = size
        if len(gone) > self.SLACK + (len(sizes) >> 2):
            self._compact()

    def _compact(self) -> None:
        gone, desc = self._gone, self.descending
        self._keys = [k for k in self._keys if (-k if desc else k) not in gone]
        gone.clear()

    def _trim(self) -> None:
        """Drop the keys of gone levels at the front."""
        keys, gone, desc = self._keys, self._gone, self.descending
        i = 0
        while i < len(keys) and (-keys[i] if desc else keys[i]) in gone:
            gone.discard(-keys[i] if desc else keys[i])
            i += 1
        if i:
            del keys[:i]

    def clear(self) -> None:
        self.sizes.clear()
        self._keys.clear()
        self._gone.clear()
        if self.text is not None:
            self.text.clear()

    def best(self) -> float | None:
        if self._gone:
            self._trim()
        if not self._keys:
            return None
        key = self._keys[0]
        return -key if self.descending else key

    def prices(self, n: int | None = None) -> list[float]:
        """The best ``n`` prices (all when None), best first."""
        if self._gone:
            self._trim()
        keys, gone = self._keys, self._gone
        if n is None or n >= len(keys):
            out = [-k for k in keys] if self.descending else list(keys)
            return [p for p in out if p not in gone] if gone else out
        if not gone:
            return [-k for k in keys[:n]] if self.descending else keys[:n]
        out = []
        for k in keys:
            p = -k if self.descending else k
            if p not in gone:
                out.append(p)
                if len(out) == n:
                    break
        return out

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
        if self._gone:
            self._compact()
        keys = self._keys
        if len(keys) <= depth:
            return
        for key in keys[depth:]:
            price = -key if self.descending else key
            del self.sizes[price]
            if self.text is not None:
                self.text.pop(price, None)
        del keys[depth:]


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
