"""Time, one way: UTC integer milliseconds since the epoch."""

from __future__ import annotations

import time
from datetime import UTC, datetime


def now_ms() -> int:
    """Wall-clock time in UTC milliseconds."""
    return time.time_ns() // 1_000_000


def iso(ms: int) -> str:
    """An ISO-8601 UTC string for a millisecond timestamp, for logs and reports."""
    return datetime.fromtimestamp(ms / 1000, tz=UTC).isoformat(timespec="milliseconds")


def floor_ms(ms: int, interval_ms: int) -> int:
    """The start of the epoch-aligned window of ``interval_ms`` that holds ``ms``."""
    return ms - ms % interval_ms
