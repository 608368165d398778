"""Live books: the live client against a loopback websocket replaying the real Binance frames and a local
HTTP server for the REST depth snapshot, into a real broker; and the recorder recording the snapshot."""

from __future__ import annotations

import gzip
import json
import subprocess
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from infra.kafka.broker import BrokerInfo
from ingestor.live import LiveIngest
from ingestor.recorder import run_record
from tests.helpers import cli_env, tickflow_cmd
from tests.integration.books_support import expected_dump
from tests.integration.ingest_kafka_support import FRAMES, LoopbackServer
from tests.rest_loopback import serve_body

pytestmark = pytest.mark.integration

with gzip.open(FRAMES, "rt") as _f:
    RECS = [json.loads(line) for line in _f]
WS = [r["raw"] for r in RECS if r["kind"] == "ws"]
REST = next(r["raw"] for r in RECS if r["kind"] == "rest_depth_snapshot")


@pytest.fixture
def kafka(shared_broker: BrokerInfo) -> BrokerInfo:
    """The session broker under a topic prefix of this test's own."""
    return shared_broker


@pytest.fixture
def rest() -> Iterator[tuple[str, list[str]]]:
    with serve_body(REST) as (base, asked):
        yield f"{base}/api/v3/depth?symbol={{symbol}}&limit=5000", asked


def _wait(predicate: object, timeout_s: float, what: str) -> None:
    deadline = time.monotonic() + timeout_s
    while not predicate():  # type: ignore[operator]
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.1)


def test_live_books_start_from_the_fetched_snapshot_and_dump_as_replayed(kafka: BrokerInfo, rest: tuple[str, list[str]],
                                                                         tmp_path: Path) -> None:
    rest_url, asked = rest
    with LoopbackServer(WS, lambda n: (0, len(WS), False) if n == 0 else (0, 0, False)) as server:
        ingest = LiveIngest("binance", ["BTC-USDT"], kafka.bootstrap, url=server.url, rest_url=rest_url)
        ingest.start()
        try:
            books = ingest.books
            assert books is not None
            _wait(lambda: ingest.counts.frames >= len(WS) and books.counts.deltas >= 6493, 120, "every frame")
        finally:
            assert ingest.close() == 0
    assert asked == ["/api/v3/depth?symbol=BTCUSDT&limit=5000"]
    done = subprocess.run(tickflow_cmd("book", "dump", "--symbol", "BTC-USDT", "--depth", "5", "--timeout", "5"),
                          env=cli_env(kafka.bootstrap, tmp_path), capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr[-2000:]
    rows = [json.loads(line) for line in done.stdout.splitlines()]
    want, _ = expected_dump("binance", ((r["raw"], r["recv_ts_ns"] // 1_000_000, r["kind"], None) for r in RECS), 5)
    # Live fetched the snapshot later than the recording did: the diffs buffered meanwhile give the same books
    # (ts_event of the snapshot is its arrival, so compare the rest).
    assert len(rows) == len(want) and rows[0]["seq"] == want[0]["seq"]
    assert [{k: v for k, v in r.items() if k != "ts_event"} for r in rows] == [
        {k: v for k, v in r.items() if k != "ts_event"} for r in want]
    assert [r["ts_event"] for r in rows[1:]] == [r["ts_event"] for r in want[1:]]


def test_the_recorder_records_the_rest_snapshot_with_its_symbol(rest: tuple[str, list[str]], tmp_path: Path) -> None:
    rest_url, asked = rest
    out = tmp_path / "binance_rec.jsonl.gz"
    stop = threading.Event()
    with LoopbackServer(WS[:3000], lambda n: (0, 3000, False) if n == 0 else (0, 0, False)) as server:
        timer = threading.Timer(8.0, stop.set)
        timer.start()
        assert run_record("binance", ["BTC-USDT"], out, url=server.url, rotate_bytes=10**9, rotate_s=3600,
                          duration_s=0, stop=stop, rest_url=rest_url) == 0
    with gzip.open(out, "rt") as f:
        lines = [json.loads(line) for line in f]
    snaps = [r for r in lines if r.get("kind") == "rest_depth_snapshot"]
    assert asked == ["/api/v3/depth?symbol=BTCUSDT&limit=5000"]
    assert [(r["symbol"], r["raw"]) for r in snaps] == [("BTCUSDT", REST)]
    assert [r["raw"] for r in lines if r.get("kind", "ws") == "ws"] == WS[:3000]
