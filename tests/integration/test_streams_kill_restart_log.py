"""Workers restarted after a kill -9 on a backlog log no errors (issue 17, item 7).

Before the fix, Faust's fetcher delivered trades to the ``market.trades`` topic channel that nothing iterates
while the restarted worker restored its table, and every record past the channel's buffer logged ``Task
exception was never retrieved ... RuntimeError: Cannot put on Topic channel before aiter(market.trades)``.
"""

from __future__ import annotations

import re
import signal
import time
from pathlib import Path

import pytest

from contracts import V1, Trade
from contracts.topics import MARKET_TRADES, SIGNALS_BARS, prefixed
from infra.kafka.broker import BrokerInfo
from tests.integration.streams_support import Worker, count_records, produce_trades, wait_committed

pytestmark = pytest.mark.integration

SYMBOLS = 100
N_TRADES = 600_000
RESTARTS = 4


def _backlog(t0: int) -> list[Trade]:
    """100 symbols over the four partitions, 2,000 trades per second of event time."""
    return [Trade(schema_version=V1, exchange="bench", symbol=f"R{i % SYMBOLS:02d}-USDT",
                  venue_symbol=f"R{i % SYMBOLS:02d}USDT", trade_id=str(i), price=100.0 + (i * 7 % 13) / 10,
                  size=0.5, side="buy" if i % 3 else "sell", ts_event=t0 + i // 2, ts_ingest=t0 + i // 2)
            for i in range(N_TRADES)]


def _kill_once_bars_reach(b: str, worker: Worker, bars: int) -> None:
    deadline = time.monotonic() + 120
    while count_records(b, SIGNALS_BARS.name) < bars:
        assert time.monotonic() < deadline and worker.proc.poll() is None, worker.tail()
        time.sleep(0.2)
    worker.stop(signal.SIGKILL)


def _error_lines(worker: Worker) -> list[str]:
    log = worker.log.read_text(errors="replace")
    return [line for line in log.splitlines() if re.search(r"\b(ERROR|CRITICAL)\b|Traceback|never retrieved", line)]


def test_restarts_after_kill_9_on_a_backlog_log_no_error(shared_broker: BrokerInfo, tmp_path: Path) -> None:
    """Four kill -9s mid-backlog (the flood came from a race, seen in about half of the restarts on the old code):
    no restarted worker logs an error line."""
    b = shared_broker.bootstrap
    produce_trades(b, _backlog(1_700_000_000_000))
    worker = Worker(b, tmp_path / "w0", session_timeout_s="6")
    _kill_once_bars_reach(b, worker, 1)  # mostly before its first commit: the restart reads from the start
    errors: list[list[str]] = []
    for k in range(1, RESTARTS):
        worker = Worker(b, tmp_path / f"w{k}", session_timeout_s="6")
        _kill_once_bars_reach(b, worker, count_records(b, SIGNALS_BARS.name) + 1000)
        errors.append(_error_lines(worker))
    worker = Worker(b, tmp_path / f"w{RESTARTS}", session_timeout_s="6")
    try:
        assert wait_committed(b, prefixed("tickflow-streams"), timeout_s=180), \
            "the last worker did not finish: " + worker.tail()
        time.sleep(3)  # what a flood would log after the backlog is done
    finally:
        code = worker.stop()
    errors.append(_error_lines(worker))
    print(f"{RESTARTS} restarts after kill -9: {[len(e) for e in errors]} error lines")
    assert code == 0, worker.tail()
    first = next((e[:3] for e in errors if e), [])
    assert not first, f"{sum(map(len, errors))} error lines after the restarts, the first: {first}"
    assert f"Reading {MARKET_TRADES.name} partitions [0, 1, 2, 3]" in worker.log.read_text(errors="replace")
