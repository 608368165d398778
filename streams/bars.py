"""Event-time bars for one ``exchange:symbol``: pure, incremental, with serialisable state.

Semantics (the same as ksqlDB's TUMBLING windows with a GRACE PERIOD and EMIT FINAL):

- A bar of interval I holds the trades with ``window_start <= ts_event < window_start + I``, windows
  aligned to the epoch.
- The watermark of a key is the largest event time it has seen minus the grace period (default 2 s).
  A window closes, and its bar is emitted once, when the watermark reaches its end.
- A trade whose window has already closed (``window_end <= watermark``) is late: it is dropped and
  counted per interval. A trade up to ``grace`` behind the newest one (or older, as long as its
  window is still open) counts: out-of-order trades within grace change nothing.
- Open and close are the trades with the smallest and largest event time (ties: first and last to
  arrive); volume, VWAP and taker volumes are summed in arrival order.
- An interval with no trades produces nothing: no bar (as in ksqlDB) and so no feature vector.
- The watermark is kept per key, so the bars of a key do not depend on which other keys share its
  partition, or on how partitions are spread over workers.
- In live mode the caller may also advance the watermark from the wall clock (``advance``), so that a
  quiet symbol's last bar still closes on time; trades for windows closed that way are late.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True, slots=True)
class ClosedBar:
    """A closed bar with the input offsets it was built from (partition, first and last offset)."""

    interval_s: int
    window_start: int
    window_end: int
    open: float
    high: float
    low: float
    close: float
    volume: float
    vwap: float
    trades: int
    buy_volume: float
    sell_volume: float
    partition: int
    first_offset: int
    last_offset: int


class _Acc:
    """The running aggregates of one open window (``KeyBars.add`` adds each trade to them in place)."""

    __slots__ = ("buy", "close", "close_ts", "high", "low", "n", "off_hi", "off_lo", "open", "open_ts",
                 "partition", "pv", "sell", "volume")

    def __init__(self, price: float, size: float, is_buy: bool, ts: int, partition: int, offset: int) -> None:
        self.open = self.high = self.low = self.close = price
        self.open_ts = self.close_ts = ts
        self.volume = size
        self.pv = price * size
        self.buy = size if is_buy else 0.0
        self.sell = 0.0 if is_buy else size
        self.n = 1
        self.partition = partition
        self.off_lo = self.off_hi = offset

    def to_list(self) -> list[Any]:
        return [self.open, self.open_ts, self.high, self.low, self.close, self.close_ts, self.volume, self.pv,
                self.buy, self.sell, self.n, self.partition, self.off_lo, self.off_hi]

    @classmethod
    def from_list(cls, v: list[Any]) -> _Acc:
        acc = cls.__new__(cls)
        (acc.open, acc.open_ts, acc.high, acc.low, acc.close, acc.close_ts, acc.volume, acc.pv, acc.buy, acc.sell,
         acc.n, acc.partition, acc.off_lo, acc.off_hi) = v
        return acc

    def closed(self, interval_ms: int, start: int) -> ClosedBar:
        return ClosedBar(interval_ms // 1000, start, start + interval_ms, self.open, self.high, self.low, self.close,
                         self.volume, self.pv / self.volume, self.n, self.buy, self.sell, self.partition,
                         self.off_lo, self.off_hi)


NO_WATERMARK = -(2**62)
NO_WINDOW = 2**62


class KeyBars:
    """The open windows of one key for every configured interval, and its watermark."""

    __slots__ = ("grace_ms", "intervals_ms", "late", "max_ts", "next_end", "open", "watermark")

    def __init__(self, intervals_s: tuple[int, ...], grace_ms: int) -> None:
        if not intervals_s or any(i <= 0 for i in intervals_s):
            raise ValueError(f"bar intervals must be positive seconds, got {intervals_s}")
        self.intervals_ms = tuple(sorted(i * 1000 for i in intervals_s))
        self.grace_ms = grace_ms
        self.max_ts = NO_WATERMARK
        self.watermark = NO_WATERMARK
        self.open: list[dict[int, _Acc]] = [{} for _ in self.intervals_ms]
        self.late: list[int] = [0 for _ in self.intervals_ms]
        self.next_end = NO_WINDOW  # the smallest end among the open windows: nothing closes before it

    def _find_next_end(self) -> None:
        self.next_end = min((s + ims for k, ims in enumerate(self.intervals_ms) for s in self.open[k]),
                            default=NO_WINDOW)

    def add(self, ts: int, price: float, size: float, is_buy: bool, partition: int = 0, offset: int = 0,
            out: list[ClosedBar] | None = None) -> tuple[list[ClosedBar], int]:
        """Apply one trade; return the bars it closed (in time order) and how many intervals dropped it."""
        closed: list[ClosedBar] = [] if out is None else out
        dropped = 0
        wm = self.watermark
        opened = self.open
        for k, ims in enumerate(self.intervals_ms):
            start = ts - ts % ims
            if start + ims <= wm:
                self.late[k] += 1
                dropped += 1
                continue
            windows = opened[k]
            acc = windows.get(start)
            if acc is None:
                windows[start] = _Acc(price, size, is_buy, ts, partition, offset)
                if start + ims < self.next_end:
                    self.next_end = start + ims
                continue
            # the trade into the window's aggregates, inline (the hot path: once per trade and interval)
            if ts < acc.open_ts:
                acc.open, acc.open_ts = price, ts
            if ts >= acc.close_ts:
                acc.close, acc.close_ts = price, ts
            if price > acc.high:
                acc.high = price
            if price < acc.low:
                acc.low = price
            acc.volume += size
            acc.pv += price * size
            if is_buy:
                acc.buy += size
            else:
                acc.sell += size
            acc.n += 1
            if offset < acc.off_lo:
                acc.off_lo = offset
            if offset > acc.off_hi:
                acc.off_hi = offset
        if ts > self.max_ts:
            self.max_ts = ts
            if ts - self.grace_ms > wm:
                self.watermark = ts - self.grace_ms
                if self.watermark >= self.next_end:
                    self._close(closed)
        return closed, dropped

    def advance(self, watermark: int, out: list[ClosedBar] | None = None) -> list[ClosedBar]:
        """Move the watermark forward (wall clock in live mode); return the bars that closed."""
        closed: list[ClosedBar] = [] if out is None else out
        if watermark > self.watermark:
            self.watermark = watermark
            if watermark >= self.next_end:
                self._close(closed)
        return closed

    def _close(self, closed: list[ClosedBar]) -> None:
        watermark = self.watermark
        for k, ims in enumerate(self.intervals_ms):
            windows = self.open[k]
            if not windows:
                continue
            ready = [s for s in windows if s + ims <= watermark]
            for start in sorted(ready):
                closed.append(windows.pop(start).closed(ims, start))
        self._find_next_end()

    def next_close_at(self) -> int | None:
        """The smallest window end among the open windows (a bar closes when the watermark reaches it)."""
        return None if self.next_end == NO_WINDOW else self.next_end

    def to_builtins(self) -> dict[str, Any]:
        return {"i": [ims // 1000 for ims in self.intervals_ms], "g": self.grace_ms, "m": self.max_ts,
                "w": self.watermark, "l": self.late,
                "o": [[[s, *acc.to_list()] for s, acc in sorted(windows.items())] for windows in self.open]}

    @classmethod
    def from_builtins(cls, state: dict[str, Any]) -> KeyBars:
        kb = cls(tuple(state["i"]), state["g"])
        kb.max_ts, kb.watermark, kb.late = state["m"], state["w"], list(state["l"])
        kb.open = [{int(row[0]): _Acc.from_list(row[1:]) for row in windows} for windows in state["o"]]
        kb._find_next_end()
        return kb
