"""The live client against a websocket server on loopback replaying the real Binance frames."""

from __future__ import annotations

import gzip
import json
import signal
import subprocess
import threading
import time
import urllib.request
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from infra.kafka.broker import BrokerInfo, free_port
from ingestor import recorder
from ingestor.connection import Backoff
from ingestor.live import LiveIngest
from ingestor.publisher import Publisher
from ingestor.recorder import RotatingWriter, run_record
from ingestor.replay import replay_file
from tests.helpers import cli_env, tickflow_cmd
from tests.integration.ingest_kafka_support import (
    N_TRADES,
    LoopbackServer,
    Marks,
    csv_trades,
    minute_bars,
    recorded_ws_frames,
)

pytestmark = pytest.mark.integration



def wait_for(predicate: Callable[[], bool], timeout_s: float, what: str) -> None:
    deadline = time.monotonic() + timeout_s
    while not predicate():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.1)


def test_all_real_frames_reach_kafka_once_and_bars_equal_binance(shared_broker: BrokerInfo) -> None:
    marks = Marks(shared_broker.bootstrap)
    frames = recorded_ws_frames()
    with LoopbackServer(frames, lambda n: (0, len(frames), False) if n == 0 else (0, 0, False)) as server:
        ingest = LiveIngest("binance", ["BTC-USDT"], shared_broker.bootstrap, url=server.url, log_every_s=5)
        ingest.start()
        try:
            wait_for(lambda: ingest.counts.frames >= len(frames), 120, "every frame to be handled")
        finally:
            assert ingest.close() == 0
    c = ingest.counts
    assert (c.trades, c.dead_lettered, c.duplicates, c.gaps, c.reconnects) == (N_TRADES, 0, 0, 0, 0)
    assert c.skipped == len(frames) - N_TRADES
    got = marks.trades()
    ids = [int(t.trade_id) for t in got]
    assert len(ids) == len(set(ids)) == N_TRADES
    ref = csv_trades()
    assert {i: (t.price, t.size, t.ts_event, t.side) for i, t in zip(ids, got, strict=True)} == {
        r[0]: r[1:] for r in ref}
    # 1-minute bars of what reached Kafka equal the bars of Binance's own trade dump, for full minutes
    online = minute_bars([(int(t.trade_id), t.price, t.size, t.ts_event) for t in got])
    reference = minute_bars([(r[0], r[1], r[2], r[3]) for r in ref])
    full = sorted(reference)[1:-1]  # the first and last minutes are cut by the recording
    assert len(full) == 10
    assert [online[m] for m in full] == [reference[m] for m in full]


def test_dropped_connection_resumes_after_a_gap_loses_nothing_and_names_the_missing_ids(
        shared_broker: BrokerInfo) -> None:
    marks = Marks(shared_broker.bootstrap)
    frames = [f for f in recorded_ws_frames() if "@trade" in f][:3000]
    # connection 0: frames 0..999 then the server drops it; 1: resumes at 1200 (200 trades lost), drops
    # again at 2000; 2: resumes at 1950 (50 trades sent twice) to the end.
    plan = {0: (0, 1000, True), 1: (1200, 2000, True), 2: (1950, 3000, False)}
    backoff = Backoff(base_s=0.2, factor=2.0, cap_s=2.0)
    with LoopbackServer(frames, lambda n: plan.get(n, (0, 0, False))) as server:
        ingest = LiveIngest("binance", ["BTC-USDT"], shared_broker.bootstrap, url=server.url, backoff=backoff)
        ingest.start()
        try:
            wait_for(lambda: ingest.counts.frames >= 1000 + 800 + 1050, 60, "every frame sent to be handled")
        finally:
            assert ingest.close() == 0
        reconnect_delays = [opened - closed for closed, opened in zip(server.closed_at, server.opened_at[1:],
                                                                    strict=False)]
    assert len(reconnect_delays) == 2 and all(d <= backoff.cap_s + 1.0 for d in reconnect_delays), reconnect_delays
    trade_ids = [int(f.split('"t":')[1].split(",")[0]) for f in frames]
    sent = trade_ids[:1000] + trade_ids[1200:3000]
    got = marks.trades()
    assert sorted(int(t.trade_id) for t in got) == sent  # every received trade, once
    assert ingest.counts.duplicates == 50
    events = marks.events()
    gaps = [e for e in events if e.kind == "gap"]
    assert [(e.symbol, e.first_missing, e.last_missing, e.count) for e in gaps] == [
        ("BTC-USDT", str(trade_ids[1000]), str(trade_ids[1199]), 200)]
    kinds = [e.kind for e in events]
    assert kinds.count("reconnect") == 2 and kinds.count("disconnect") == 2


def test_live_command_serves_metrics_and_flushes_everything_on_sigterm(shared_broker: BrokerInfo,
                                                                       tmp_path: Path) -> None:
    marks = Marks(shared_broker.bootstrap)
    frames = [f for f in recorded_ws_frames() if "@trade" in f or "@depth" in f][:4000]
    n_trades = sum("@trade" in f for f in frames)
    port = free_port()
    with LoopbackServer(frames, lambda n: (0, len(frames), False) if n == 0 else (0, 0, False)) as server:
        proc = subprocess.Popen(tickflow_cmd("ingest", "live", "--venue", "binance", "--symbols", "BTC-USDT",
                                             "--url", server.url, "--metrics-port", str(port), "--log-every", "0.5"),
                                env=cli_env(shared_broker.bootstrap, tmp_path), stdout=subprocess.PIPE,
                                stderr=subprocess.STDOUT, text=True)
        try:
            wait_for(lambda: server.sent >= len(frames), 60, "the server to send every frame")

            def scraped() -> bool:
                try:
                    text = urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=2).read().decode()
                except OSError:
                    return False
                return f'tickflow_ingest_trades_total{{venue="binance"}} {float(n_trades)}' in text

            wait_for(scraped, 30, "the metrics endpoint to count every trade")
            proc.send_signal(signal.SIGTERM)
            out, _ = proc.communicate(timeout=60)
        finally:
            if proc.poll() is None:
                proc.kill()
                proc.wait()
    assert proc.returncode == 0, out[-3000:]
    assert "trades/s" in out  # the periodic figures line
    got = marks.trades()
    assert len(got) == len({t.trade_id for t in got}) == n_trades


def test_recording_replays_to_the_same_trades(shared_broker: BrokerInfo, tmp_path: Path,
                                              monkeypatch: pytest.MonkeyPatch) -> None:
    frames = [f for f in recorded_ws_frames() if "@trade" in f or "@bookTicker" in f][:2000]
    out = tmp_path / "rec" / "binance.jsonl.gz"
    stop = threading.Event()
    writers: list[RotatingWriter] = []

    class SeenWriter(RotatingWriter):  # the recorder's own writer, seen: stop once it has written every frame
        def __init__(self, *args: Any, **kwargs: Any) -> None:
            super().__init__(*args, **kwargs)
            writers.append(self)

    monkeypatch.setattr(recorder, "RotatingWriter", SeenWriter)
    with LoopbackServer(frames, lambda n: (0, len(frames), False) if n == 0 else (0, 0, False)) as server:
        thread = threading.Thread(target=run_record, args=("binance", ["BTC-USDT"], out),
                                  kwargs={"url": server.url, "rotate_bytes": 100_000, "rotate_s": 3600,
                                          "duration_s": 0, "stop": stop})
        thread.start()
        wait_for(lambda: bool(writers) and writers[0].frames >= len(frames), 60, "the recorder to write every frame")
        stop.set()
        thread.join(20)
    files = sorted(out.parent.glob("*.jsonl.gz"))
    assert len(files) >= 2  # rotated by size
    lines = []
    for f in files:
        with gzip.open(f, "rt") as text:
            lines += [json.loads(line) for line in text]
    assert sorted(r["raw"] for r in lines) == sorted(frames)
    marks = Marks(shared_broker.bootstrap)
    publisher = Publisher(shared_broker.bootstrap, reports="errors")
    reports = [replay_file(f, publisher, venue_name=None, symbol=None, speed=None, progress=False) for f in files]
    assert publisher.flush() == 0 and publisher.failed == 0
    n_trades = sum("@trade" in f for f in frames)
    assert sum(r.counts.trades for r in reports) == n_trades
    assert sum(r.counts.skipped for r in reports) == len(frames) - n_trades
    assert len(marks.trades()) == n_trades
