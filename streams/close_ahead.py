"""Live bars closed ahead of their due time, per key, until their records are published or the close is undone.

Closing the due bars of live keys and computing their features takes about a millisecond; the worker does it
STREAMS__CLOSE_AHEAD_MS before they are due (``Processor.close_ahead``) and holds the records back until end
plus grace (ARCHITECTURE.md, change 9). The contract, per key:

- **hold**: the records of the bars closed at a watermark, with the key's state from before the close; the
  trades applied to the key meanwhile are remembered (``applied``), and so is the wall-clock watermark that
  reached it (``wall``);
- **release**: once the wall clock reaches that watermark (``release_due``), or a trade's event time closes
  the same bars anyway (``before_trade``), the held records are published as they are;
- **undo**: a trade that still counts in a held bar (event time before the watermark), a revoke or a stop
  (``take_all``) hands the hold back to the processor, which restores the state from before and applies the
  remembered trades again, so what is published equals closing on time.

While a key is held its state is not stored (``unstored``), and while anything is held (``holding``) no
offsets are committed: the at-least-once, idempotent contract of the worker is unchanged.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from contracts import Trade

if TYPE_CHECKING:
    from streams.processor import Output


@dataclass(slots=True)
class Held:
    """One key's close made ahead of time: the watermark it was closed at, the key's state before, the records
    held back, the trades applied since (partition, offset, trade, wall ms) and the latest wall-clock watermark
    that reached the key meanwhile."""

    watermark: int
    before: bytes
    outputs: list[Output]
    since: list[tuple[int, int, Trade, int]] = field(default_factory=list)
    live_watermark: int | None = None


class CloseAhead:
    """The keys whose bars were closed ahead of time."""

    def __init__(self, grace_ms: int) -> None:
        self.grace_ms = grace_ms
        self.held: dict[bytes, Held] = {}
        self.undone = 0  # closes handed back to be undone

    @property
    def holding(self) -> bool:
        return bool(self.held)

    def __contains__(self, key: bytes) -> bool:
        return key in self.held

    def hold(self, key: bytes, watermark: int, before: bytes, outputs: list[Output]) -> None:
        self.held[key] = Held(watermark, before, outputs)

    def before_trade(self, key: bytes, ts_event: int, out: list[Output]) -> Held | None:
        """Before a trade of ``key`` is applied: the hold to undo if the trade still counts in a held bar (no
        longer held); if the trade's event time closes the held bars anyway, their records go to ``out``."""
        held = self.held.get(key)
        if held is None:
            return None
        if ts_event < held.watermark:
            del self.held[key]
            self.undone += 1
            return held
        if ts_event - self.grace_ms >= held.watermark:
            out.extend(self.held.pop(key).outputs)
        return None

    def applied(self, key: bytes, partition: int, offset: int, trade: Trade, now_ms: int) -> None:
        """A trade was applied to ``key``: remembered, to apply again should the close be undone."""
        held = self.held.get(key)
        if held is not None:
            held.since.append((partition, offset, trade, now_ms))

    def wall(self, key: bytes, watermark: int) -> bool:
        """The wall clock reached ``watermark`` for a live key: True if the key is held (its bars wait; the
        watermark is kept for the state from before, should the close be undone)."""
        held = self.held.get(key)
        if held is None:
            return False
        held.live_watermark = watermark
        return True

    def release_due(self, watermark: int, out: list[Output]) -> list[bytes]:
        """Publish (into ``out``) the held records whose watermark the wall clock reached; return their keys."""
        due = [k for k, h in self.held.items() if h.watermark <= watermark]
        for key in due:
            out.extend(self.held.pop(key).outputs)
        return due

    def take_all(self) -> list[tuple[bytes, Held]]:
        """Every hold, to undo (on a revoke or a stop)."""
        taken = list(self.held.items())
        self.held.clear()
        self.undone += len(taken)
        return taken

    def watermarks(self) -> list[int]:
        """The watermarks the held keys wait for."""
        return [h.watermark for h in self.held.values()]

    def unstored(self, keys: set[bytes]) -> set[bytes]:
        """Those of ``keys`` whose state must not be stored yet: their held records are not out."""
        return keys & self.held.keys()
