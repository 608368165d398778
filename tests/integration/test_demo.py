"""`tickflow demo run` (what `make demo` runs), small: it finishes, prints its report, leaves no process,
and the report's counts are what the topics hold (read again from the demo's broker afterwards)."""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path

import pytest

from contracts.books import BookUpdate
from contracts.messages import MarketEvent
from infra.kafka.broker import LocalBroker, free_port
from tests.helpers import REPO, tickflow_cmd
from tickflow.demo.report import read_topics

pytestmark = [pytest.mark.integration, pytest.mark.slow]


def _processes_mentioning(text: str) -> list[str]:
    found = []
    for proc in Path("/proc").iterdir():
        if proc.name.isdigit() and int(proc.name) != os.getpid():
            try:
                cmdline = (proc / "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
            except OSError:
                continue
            if text in cmdline:
                found.append(f"{proc.name}: {cmdline[:200]}")
    return found


def test_demo_runs_reports_and_leaves_nothing_running(tmp_path: Path) -> None:
    home = tmp_path / "home"
    env = dict(os.environ, TICKFLOW_HOME=str(home), PYTHONPATH=str(REPO))
    env.pop("KAFKA_BOOTSTRAP", None)
    run = subprocess.run(tickflow_cmd("demo", "run", "--days", "0.5", "--timesteps", "2000", "--no-view"),
                         cwd=REPO, env=env, capture_output=True, text=True, timeout=400)
    assert run.returncode == 0, run.stdout[-3000:] + run.stderr[-3000:]
    report = home / "demo" / "report.md"
    assert f"report: {report}" in run.stdout
    assert report.is_file() and (home / "demo" / "equity.png").is_file() and (home / "demo" / "books.png").is_file()
    assert _processes_mentioning(str(home)) == []

    figures = json.loads((home / "demo" / "report.json").read_text())
    assert figures["counts"]["market.trades"] > 19_904  # the real ticks, then candle-derived trades
    assert figures["counts"]["signals.features"] > 0 and figures["counts"]["orders"] > 0
    assert figures["counts"]["fills"] > 0 and figures["policies"]
    broker = LocalBroker(home / "demo" / "broker", "127.0.0.1", free_port())
    info = broker.start(timeout=120, die_with_parent=True)
    try:
        held = read_topics(info.bootstrap)
    finally:
        broker.stop()
    assert {name: len(records) for name, records in held.items()} == figures["counts"]
    text = report.read_text()
    for name, n in figures["counts"].items():
        assert f"| {name} | {n:,} |" in text

    # The bundled frames' book: rebuilt here from the records alone (a dict a side), it ends where the
    # report's spread and imbalance series ends.
    bids: dict[float, float] = {}
    asks: dict[float, float] = {}
    for r in held["market.books"]:
        u = r.value
        assert isinstance(u, BookUpdate)
        if u.kind == "snapshot":
            bids.clear()
            asks.clear()
        for side, levels in ((bids, u.bids), (asks, u.asks)):
            for price, size in levels:
                if size:
                    side[price] = size
                else:
                    side.pop(price, None)
    assert figures["counts"]["market.books"] > 6_000
    book_events = [r.value.kind for r in held["market.events"] if isinstance(r.value, MarketEvent)
                   and r.value.kind in ("book_gap", "resync", "checksum_mismatch", "crossed_book")]
    assert book_events == []
    book = figures["books"]["binance:BTC-USDT"]
    bid, ask = max(bids), min(asks)
    top5 = sorted(bids.items(), reverse=True)[:5], sorted(asks.items())[:5]
    bid5, ask5 = sum(s for _, s in top5[0]), sum(s for _, s in top5[1])
    assert book["series"][-1][1:] == [(ask - bid) / ((ask + bid) / 2) * 1e4, (bid5 - ask5) / (bid5 + ask5)]
    assert book["updates"] == len(book["series"]) > 6_000
    assert "## Spread and imbalance (market.books)" in text and "| binance:BTC-USDT | " in text

    # the paper trades as round trips, with buy-and-hold matched for exposure, and the latency explained
    trades = figures["trades"]["demo"]
    assert trades["summary"]["count"] == len(trades["round_trips"]) > 0
    assert f"{trades['summary']['count']:.0f} round trips, win rate" in text and "| long | " in text
    assert f"buy-and-hold at the policy's exposure ({trades['matched']['position']:.1%} held" in text
    assert 0 < trades["matched"]["position"] < 1 and (home / "demo" / "trades-demo.csv").is_file()
    assert "waits behind that backlog" in text and figures["backlog"]["features"] == figures["counts"][
        "signals.features"]
