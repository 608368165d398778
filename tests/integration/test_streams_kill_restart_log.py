"""A worker restarted after a kill -9 on a backlog logs no errors (issue 17, item 7).

Before the fix, Faust's fetcher delivered trades to the ``market.trades`` topic channel that nothing iterates
while the restarted worker restored its table, and every record past the channel's buffer logged ``Task
exception was never retrieved ... RuntimeError: Cannot put on Topic channel before aiter(market.trades)``.
"""

from __future__ import annotations

import re
import signal
import time
from collections.abc import Callable
from pathlib import Path

import pytest

from contracts import V1, Trade
from infra.kafka.broker import BrokerInfo
from tests.integration.streams_support import Worker, count_records, produce_trades, wait_committed

pytestmark = pytest.mark.integration

SYMBOLS = 100
N_TRADES = 600_000


def _backlog(t0: int) -> list[Trade]:
    """20 symbols over the four partitions, 100 trades per second each in event time."""
    return [Trade(schema_version=V1, exchange="bench", symbol=f"R{i % SYMBOLS:02d}-USDT",
                  venue_symbol=f"R{i % SYMBOLS:02d}USDT", trade_id=str(i), price=100.0 + (i * 7 % 13) / 10,
                  size=0.5, side="buy" if i % 3 else "sell", ts_event=t0 + i // 2, ts_ingest=t0 + i // 2)
            for i in range(N_TRADES)]


def test_a_restart_after_kill_9_on_a_backlog_logs_no_error(make_broker: Callable[[], BrokerInfo],
                                                           tmp_path: Path) -> None:
    b = make_broker().bootstrap
    produce_trades(b, _backlog(1_700_000_000_000))
    first = Worker(b, tmp_path / "w")
    deadline = time.monotonic() + 120
    while count_records(b, "signals.bars") < 2000:
        assert time.monotonic() < deadline and first.proc.poll() is None, first.tail()
        time.sleep(0.2)
    first.stop(signal.SIGKILL)
    restarted = Worker(b, tmp_path / "again")
    try:
        assert wait_committed(b, "tickflow-streams", timeout_s=180), "the restarted worker did not finish: " + \
            restarted.tail()
        time.sleep(3)  # what a flood would log after the backlog is done
    finally:
        code = restarted.stop()
    log = restarted.log.read_text(errors="replace")
    errors = [line for line in log.splitlines() if re.search(r"\b(ERROR|CRITICAL)\b|Traceback|never retrieved", line)]
    print(f"restart after kill -9: {len(errors)} error lines, {len(log):,} bytes of log")
    assert code == 0, restarted.tail()
    assert not errors, f"{len(errors)} error lines after the restart, the first: {errors[:3]}"
    assert "Reading market.trades partitions [0, 1, 2, 3]" in log
