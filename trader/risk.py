"""The risk gate every decision passes: position and notional caps, drawdown halt, order rate, stale
features and market-data gaps. Pure; the service feeds it and acts on its verdicts.

Time is event time by default (``clock="event"``: per symbol, the newest feature or order timestamp of
that symbol seen), so a replay behaves as live did and two markets replayed side by side, each at its own
pace or period, do not make each other's features stale; ``clock="wall"`` compares features with the wall
clock (live trading).
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass
from enum import Enum
from typing import Annotated, Literal

import msgspec
from msgspec import Meta

# a limit that the documented word ``off`` (or ``inf``) switches off; it is stored as infinity
_LIMIT = Meta(gt=0, extra={"off": True})
# a policy's target position, in units of TRADER__NOTIONAL, lies within +-this: bundles whose action map
# leaves it are refused (trader.policy.bundle)
MAX_TARGET_POSITION = 1.0


class RiskSettings(msgspec.Struct, frozen=True, kw_only=True):
    max_position: Annotated[float, _LIMIT] = float("inf")  # base units per symbol
    max_notional: Annotated[float, _LIMIT] = 50_000.0  # quote per symbol at the decision price
    max_drawdown: Annotated[float, Meta(gt=0, le=1)] = 0.2  # of peak equity: flatten everything and halt
    max_orders_per_minute: Annotated[int, Meta(ge=1, le=1_000_000)] = 60
    stale_after_s: Annotated[float, _LIMIT] = 300.0  # features older than this (see clock) are held
    clock: Literal["event", "wall"] = "event"
    gap_hold_s: Annotated[float, Meta(ge=0)] = 3600.0  # hold a symbol for features within this long after a gap


class VerdictKind(Enum):
    """What the gate did with a decision; ``Verdict.reason`` says it in words for people."""

    POLICY = "policy"  # the policy's target, as it asked
    CLIPPED = "clipped"  # the policy's target, clipped to the position or notional cap
    HOLD = "hold"  # the current position is kept: stale features, a market-data gap, the order rate
    HALT = "halt"  # the drawdown limit was reached now: flatten everything and halt
    HALTED = "halted"  # halted before: nothing moves


@dataclass(frozen=True)
class Verdict:
    target_units: float
    reason: str
    kind: VerdictKind


class RiskGate:
    def __init__(self, settings: RiskSettings) -> None:
        if not 0 < settings.max_drawdown <= 1:
            raise ValueError(f"max_drawdown must be in (0, 1], got {settings.max_drawdown}")
        self.s = settings
        self.halted = False
        self.halt_reason = ""
        self.newest_ms: dict[str, int] = {}  # symbol -> its newest event time seen
        self.gaps: dict[str, list[int]] = {}
        self.recent_orders: deque[int] = deque()

    def observe_time(self, symbol: str, ts_ms: int) -> None:
        """Event time ``ts_ms`` of ``symbol`` was seen (its staleness clock on ``clock="event"``)."""
        if ts_ms > self.newest_ms.get(symbol, 0):
            self.newest_ms[symbol] = ts_ms

    def gap(self, symbol: str, ts_ms: int) -> None:
        """A gap in the symbol's market data at event time ``ts_ms``."""
        self.gaps.setdefault(symbol, []).append(ts_ms)
        self.gaps[symbol] = self.gaps[symbol][-32:]

    def halt(self, reason: str) -> None:
        """Stop trading for good (until a person restarts the policy with a fresh book)."""
        self.halted = True
        self.halt_reason = reason

    def order_sent(self, ts_ms: int) -> None:
        self.recent_orders.append(ts_ms)

    def check(self, symbol: str, feature_ts: int, now_wall_ms: int, desired_units: float, current_units: float,
              price: float, drawdown: float) -> Verdict:
        """What target the policy may hold in ``symbol`` after this decision."""
        s = self.s
        if self.halted:
            return Verdict(current_units, f"halted ({self.halt_reason})", VerdictKind.HALTED)
        if drawdown >= s.max_drawdown:
            self.halt(f"drawdown {drawdown:.1%} reached the limit {s.max_drawdown:.1%}")
            return Verdict(0.0, f"halt: {self.halt_reason}; flattening", VerdictKind.HALT)
        now = now_wall_ms if s.clock == "wall" else self.newest_ms.get(symbol, feature_ts)
        if now - feature_ts > s.stale_after_s * 1000:
            return Verdict(current_units, f"hold: features {(now - feature_ts) / 1000:.0f} s old "
                                          f"(limit {s.stale_after_s:.0f} s, {s.clock} clock)", VerdictKind.HOLD)
        for g in self.gaps.get(symbol, ()):
            if g <= feature_ts < g + s.gap_hold_s * 1000:
                return Verdict(current_units, f"hold: market-data gap at {g} within {s.gap_hold_s:.0f} s",
                               VerdictKind.HOLD)
        target = desired_units
        kind, note = VerdictKind.POLICY, ""
        cap = min(s.max_notional / price, s.max_position)  # an off limit is infinite
        if abs(target) > cap:
            target = cap if target > 0 else -cap
            kind, note = VerdictKind.CLIPPED, f"; clipped to {cap:.6g} units"
        if target != current_units:
            while self.recent_orders and self.recent_orders[0] <= feature_ts - 60_000:
                self.recent_orders.popleft()
            if len(self.recent_orders) >= s.max_orders_per_minute:
                return Verdict(current_units, f"hold: {len(self.recent_orders)} orders in the last minute "
                                              f"(limit {s.max_orders_per_minute})", VerdictKind.HOLD)
        return Verdict(target, f"policy{note}", kind)
