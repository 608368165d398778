"""`tickflow run`: --live without a reachable venue says so in one line at once; --replay FILE runs the whole
pipeline over the file to its end, on the session broker, and says what the trader waits for."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import time
from pathlib import Path

import pytest

from contracts.topics import MARKET_TRADES, ORDERS, SIGNALS_FEATURES
from infra.kafka.broker import BrokerInfo
from tests.helpers import DATA, REPO, cli_env, tickflow_cmd
from tests.unit.trader.trader_support import linear_bundle

pytestmark = pytest.mark.integration

TICKS = DATA / "ticks" / "BTCUSDT-trades-20240808T2354Z-20240809T0005Z.csv"


def _closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def test_live_without_the_venue_says_so_in_one_line(tmp_path: Path) -> None:
    env = dict(os.environ, TICKFLOW_HOME=str(tmp_path / "home"), PYTHONPATH=str(REPO))
    env.pop("KAFKA_BOOTSTRAP", None)
    url = f"wss://127.0.0.1:{_closed_port()}/ws"
    started = time.monotonic()
    run = subprocess.run(tickflow_cmd("run", "--live", "--url", url), cwd=REPO, env=env, capture_output=True,
                         text=True, timeout=60)
    assert time.monotonic() - started < 10
    assert run.returncode == 1 and run.stdout == ""
    assert run.stderr.splitlines() == [
        "tickflow run: --live needs internet access to binance: cannot connect to 127.0.0.1:"
        f"{url.split(':')[2].split('/')[0]} (Connection refused); offline, replay a file instead: "
        "`tickflow run --replay FILE`"]
    assert not (tmp_path / "home" / "run").exists(), "nothing starts before the venue answers"


def test_replay_runs_to_the_end_and_says_what_the_trader_waits_for(shared_broker: BrokerInfo, tmp_path: Path) -> None:
    home = tmp_path / "home"
    bundle = linear_bundle(tmp_path / "bundle").path
    run = subprocess.run(tickflow_cmd("run", "--replay", str(TICKS), "--bundle", str(bundle), "--no-board",
                                      "--view-port", "0"),
                         cwd=REPO, env=cli_env(shared_broker.bootstrap, home), capture_output=True, text=True,
                         timeout=300)
    assert run.returncode == 0, run.stdout[-3000:] + run.stderr[-3000:]
    # the bundled 11 minutes of ticks: 11 bars of 60 s, 50 short of what the features need, so no order
    assert ("trader: 0 decisions, 0 orders; waiting for: binance:BTC-USDT 60 s bars: 11 of 61 needed before the "
            "first decision") in run.stdout
    report = home / "run" / "report.md"
    assert f"report: {report}" in run.stdout and report.is_file()
    figures = json.loads((home / "run" / "report.json").read_text())
    counts = figures["counts"]  # the topics' names under the test's prefix
    assert counts[MARKET_TRADES.name] == 19_904 and counts[SIGNALS_FEATURES.name] > 0 and counts[ORDERS.name] == 0
    logs = sorted((home / "run" / "logs").glob("*.log"))
    assert {p.stem for p in logs} == {"ingest", "streams", "trader", "paper", "view"}
    for log in logs:  # a normal start-up and run log no ERROR line, the streams worker's included
        bad = [ln for ln in log.read_text().splitlines() if " ERROR " in ln or "Traceback" in ln]
        assert bad == [], f"{log.name}: {bad[:3]}"
