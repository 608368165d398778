"""The bar spec both stream layers follow (Faust here, ksqlDB in ksqldb.sql), and the worker's settings.

Settings come from ``STREAMS__*`` variables, e.g. ``STREAMS__INTERVALS_S=1,60,300``,
``STREAMS__GRACE_MS=2000``.
"""

from __future__ import annotations

from typing import Annotated

import msgspec
from msgspec import Meta

from contracts.errors import SettingsError
from contracts.messages import Bar

DEFAULT_INTERVALS_S: tuple[int, ...] = (1, 60, 300)
DEFAULT_GRACE_MS: int = 2000
# book records queued per key waiting for its trades (5.8 KB each decoded: Binance's 100 ms BTCUSDT diffs, 83 minutes)
DEFAULT_BOOK_BACKLOG_MAX: int = 50_000

# The columns of a bar as both layers publish them (contracts.Bar minus schema_version).
BAR_FIELDS: tuple[str, ...] = tuple(f for f in Bar.__struct_fields__ if f != "schema_version")


class StreamsSettings(msgspec.Struct, frozen=True, kw_only=True):
    """The Faust worker's settings (env prefix STREAMS)."""

    intervals_s: str = ",".join(str(i) for i in DEFAULT_INTERVALS_S)  # comma-separated seconds
    grace_ms: Annotated[int, Meta(ge=0)] = DEFAULT_GRACE_MS
    # A key is live when its newest trade arrived within this many ms of its event time; the bars of a
    # live key also close on the wall clock, at their end plus grace.
    live_lag_ms: Annotated[int, Meta(ge=0)] = 10_000
    # The longest a read waits for trades: live trades are applied as they come, so little is left to
    # do when a bar is due (about 2% of a core when idle).
    wall_tick_ms: Annotated[int, Meta(ge=1, le=1000)] = 20
    # Live bars are closed this long before they are due and their records held back until then (undone if a
    # trade still counting in them arrives meanwhile): the work is done before the due time, not after it.
    close_ahead_ms: Annotated[int, Meta(ge=0, lt=1000)] = 10
    batch_max: Annotated[int, Meta(ge=1)] = 5000  # trades read at once
    # A key's book records waiting for its trades; beyond it the oldest half is applied at once and the bars
    # that still end by then get null book features (a book_backlog event on market.events says so).
    book_backlog_max: Annotated[int, Meta(ge=2)] = DEFAULT_BOOK_BACKLOG_MAX
    commit_interval_s: Annotated[float, Meta(gt=0)] = 1.0  # how often the applied offsets are committed
    stop_timeout_s: Annotated[float, Meta(gt=0)] = 20.0  # a stop (SIGTERM/SIGINT) that takes longer ends the process
    session_timeout_s: Annotated[float, Meta(ge=6, le=1800)] = 15.0  # a dead worker's partitions move after this
    # load_settings puts TICKFLOW_TOPIC_PREFIX before app_id
    app_id: Annotated[str, Meta(pattern=r"^[A-Za-z0-9._-]+$", extra={"allowed": "letters, digits, . _ -"})] = \
        "tickflow-streams"
    web_port: Annotated[int, Meta(ge=0, le=65535)] = 0  # 0: Faust's web server is off

    @property
    def intervals(self) -> tuple[int, ...]:
        """The bar intervals in seconds, ascending."""
        return tuple(sorted(int(x) for x in self.intervals_s.strip("[] ").split(",")))

    def check(self) -> StreamsSettings:
        try:
            intervals = self.intervals
        except ValueError:
            intervals = ()
        if not intervals or any(i <= 0 for i in intervals) or len(set(intervals)) != len(intervals):
            raise SettingsError(f"STREAMS__INTERVALS_S={self.intervals_s!r} must list distinct positive seconds, "
                                "comma-separated (for example 1,60,300)")
        if self.grace_ms < 0:
            raise SettingsError(f"STREAMS__GRACE_MS={self.grace_ms} must be zero or more")
        if not 0 <= self.close_ahead_ms < 1000:
            raise SettingsError(f"STREAMS__CLOSE_AHEAD_MS={self.close_ahead_ms} must be at least 0 and under 1000")
        if self.batch_max <= 0:
            raise SettingsError(f"STREAMS__BATCH_MAX={self.batch_max} must be positive")
        return self


def load_settings() -> StreamsSettings:
    """The STREAMS__* settings, the app id under the topic prefix (so are Faust's group and changelog topics)."""
    from contracts.settings import load
    from contracts.topics import prefixed

    settings = load(StreamsSettings, "STREAMS").check()
    return msgspec.structs.replace(settings, app_id=prefixed(settings.app_id))
