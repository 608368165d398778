"""A replay run twice with the worker running counts each trade once (issue 17, item 5, the worker's side).

The bundled BTCUSDT ticks are replayed twice with ``tickflow ingest replay --speed max`` (every trade lands on
``market.trades`` twice, at new offsets), then one trade five minutes later closes the windows the ticks left
open. Every 60 s bar must equal one run's: before the fix, the trades of windows still open when the second
run arrived were counted twice (one bar showed 506 trades against the file's 253).
"""

from __future__ import annotations

import subprocess
import time
from collections import Counter
from pathlib import Path

import pytest

from contracts.history import binance_dump_trades
from contracts.topics import MARKET_TRADES, SIGNALS_BARS, prefixed
from infra.kafka.broker import BrokerInfo
from streams.offline import closed_bars
from tests.helpers import DATA, REPO, cli_env, tickflow_cmd
from tests.integration.streams_support import Worker, read_all, wait_committed

pytestmark = pytest.mark.integration

TICKS = next((DATA / "ticks").glob("BTCUSDT-trades-*.csv"))


def _replay(bootstrap: str, home: Path, path: Path) -> None:
    done = subprocess.run(tickflow_cmd("ingest", "replay", str(path), "--speed", "max"), env=cli_env(bootstrap, home),
                          capture_output=True, text=True, timeout=180, cwd=REPO)
    assert done.returncode == 0, done.stdout + done.stderr


def _flush_trade(tmp: Path) -> Path:
    """One trade five minutes after the ticks' last, with the next trade id, in the same dump format."""
    rows = [line.split(",") for line in TICKS.read_text().splitlines()]
    last = max(rows, key=lambda r: int(r[4]))
    next_id = max(int(r[0]) for r in rows) + 1
    path = tmp / "BTCUSDT-trades-flush.csv"
    path.write_text(f"{next_id},{last[1]},0.001,{float(last[1]) * 0.001},{int(last[4]) + 300_000},False,True\n")
    return path


def test_a_replay_run_twice_leaves_the_bars_of_one_run(shared_broker: BrokerInfo, tmp_path: Path) -> None:
    b = shared_broker.bootstrap
    worker = Worker(b, tmp_path / "worker")
    try:
        deadline = time.monotonic() + 90
        while f"Reading {MARKET_TRADES.name} partitions [0, 1, 2, 3]" not in worker.log.read_text(errors="replace"):
            assert time.monotonic() < deadline and worker.proc.poll() is None, worker.tail()
            time.sleep(0.2)
        flush = _flush_trade(tmp_path)
        for path in (TICKS, TICKS, flush):
            _replay(b, tmp_path / "replay", path)
        assert wait_committed(b, prefixed("tickflow-streams"), timeout_s=120), worker.tail()
        bars = [v for _, v in read_all(b, SIGNALS_BARS.name) if v["interval_s"] == 60]
    finally:
        code = worker.stop()
    assert code == 0, worker.tail()
    ticks = list(binance_dump_trades(TICKS, "BTCUSDT"))
    per_window = Counter(t.ts_event // 60_000 * 60_000 for t in ticks)
    once = [*ticks, *binance_dump_trades(flush, "BTCUSDT")]
    want = {b.window_start: b for b in next(iter(closed_bars(once, (60,)).values()))}
    got: dict[int, dict] = {}
    for v in bars:
        assert got.setdefault(v["window_start"], v) == v, f"window {v['window_start']} published twice, differently"
    assert set(got) == set(want) == set(per_window), "60 s windows missing or extra"
    for start, v in sorted(got.items()):
        w = want[start]
        assert (v["trades"], v["volume"], v["close"]) == (per_window[start], w.volume, w.close), \
            f"window {start}: {v['trades']} trades, volume {v['volume']}; one run gives {w.trades}, {w.volume}"
    log = worker.log.read_text(errors="replace")
    dropped = int(log.split(" produced again dropped")[0].rsplit(" ", 1)[1])
    print(f"replayed twice: {len(got)} bars of 60 s equal one run's; {dropped} trades produced again dropped")
    assert dropped > 0
