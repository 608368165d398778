"""Book features online: the bundled Binance frames through `ingest replay` into a real broker, a real streams
worker reading market.trades and market.books, and signals.features equal to the offline builder's, every bar;
and a worker SIGKILLed halfway and restarted (it reads market.books from its start again) gives them too."""

from __future__ import annotations

import math
import signal
import subprocess
from pathlib import Path

import pytest

from contracts import encode, market_key
from contracts.feature_schema import BOOK_FEATURE_NAMES, V2
from contracts.topics import MARKET_BOOKS, SIGNALS_FEATURES, prefixed
from infra.kafka.broker import BrokerInfo
from tests.helpers import cli_env, tickflow_cmd
from tests.integration.ingest_kafka_support import FRAMES
from tests.integration.streams_support import (
    Worker,
    count_records,
    produce_raw,
    produce_trades,
    read_all,
    wait_committed,
    wait_for_count,
)
from tickflow.recording import build_from_recording, read_recording

pytestmark = pytest.mark.integration


def test_online_book_features_equal_the_offline_builder_on_the_bundled_frames(shared_broker: BrokerInfo,
                                                                               tmp_path: Path) -> None:
    done = subprocess.run(tickflow_cmd("ingest", "replay", str(FRAMES), "--venue", "binance", "--speed", "max",
                                       "--no-progress"), env=cli_env(shared_broker.bootstrap, tmp_path),
                          capture_output=True, text=True, timeout=180)
    assert done.returncode == 0, done.stderr[-3000:]
    offline = {i: build_from_recording(FRAMES, "binance", i) for i in (1, 60)}
    want = sum(len(f) for f in offline.values())
    worker = Worker(shared_broker.bootstrap, tmp_path / "w", intervals_s="1,60")
    try:
        got_n = wait_for_count(shared_broker.bootstrap, SIGNALS_FEATURES.name, want, timeout_s=120)
        assert got_n == want, worker.tail()
    finally:
        assert worker.stop() == 0, worker.tail()
    online = {(v["interval_s"], v["ts"]): v for _, v in read_all(shared_broker.bootstrap, SIGNALS_FEATURES.name)}
    assert len(online) == want
    with_book = 0
    for interval, frame in offline.items():
        for _, row in frame.iterrows():
            fv = online[(interval, int(row["ts"]))]
            assert fv["feature_schema"] == "v2" and list(fv["features"]) == list(V2)
            for name, v in fv["features"].items():
                w = row[name]
                assert (v is None) == math.isnan(w), (interval, row["ts"], name)
                assert v is None or abs(v - w) <= 1e-9, (interval, row["ts"], name, v, w)
            with_book += fv["features"]["book_mid"] is not None
    assert with_book >= len(offline[1]) - 3  # every bar but those before the book's first snapshot
    assert sum(1 for v in online.values() if v["features"][BOOK_FEATURE_NAMES[-1]]) > 600


def test_a_worker_sigkilled_halfway_and_restarted_on_the_books_gives_the_offline_numbers(shared_broker: BrokerInfo,
                                                                                         tmp_path: Path) -> None:
    """The first half of the recording's books and trades, a worker until it has committed them, SIGKILL; the
    second half and a restart, which reads market.books from its start (the books before its trade watermark
    are applied as they are read): every feature vector, repeats included, equals the offline builder's."""
    b = shared_broker.bootstrap
    trades, books = read_recording(FRAMES, "binance")
    cut = trades[len(trades) // 2].ts_event
    offline = {i: build_from_recording(FRAMES, "binance", i) for i in (1, 60)}
    want = {(i, int(row["ts"])): row for i, frame in offline.items() for _, row in frame.iterrows()}

    def produce(part: bool) -> None:
        produce_raw(b, [(market_key(u.exchange, u.symbol), encode(u)) for u in books if (u.ts_event < cut) == part],
                    MARKET_BOOKS.name)
        produce_trades(b, [t for t in trades if (t.ts_event < cut) == part])

    produce(True)
    first = Worker(b, tmp_path / "w", intervals_s="1,60", session_timeout_s="6")
    try:
        assert wait_committed(b, prefixed("tickflow-streams"), timeout_s=120), first.tail()
    finally:
        first.stop(signal.SIGKILL)
    killed_at = count_records(b, SIGNALS_FEATURES.name)
    assert 0 < killed_at < len(want) // 2 + 50, killed_at
    produce(False)
    worker = Worker(b, tmp_path / "w", intervals_s="1,60", session_timeout_s="6")
    try:
        assert wait_committed(b, prefixed("tickflow-streams"), timeout_s=120), worker.tail()
    finally:
        assert worker.stop() == 0, worker.tail()
    online = read_all(b, SIGNALS_FEATURES.name)
    assert {(v["interval_s"], v["ts"]) for _, v in online} == set(want)
    for _, fv in online:
        row = want[(fv["interval_s"], fv["ts"])]
        for name, v in fv["features"].items():
            w = row[name]
            assert (v is None) == math.isnan(w), (fv["interval_s"], fv["ts"], name)
            assert v is None or abs(v - w) <= 1e-9, (fv["interval_s"], fv["ts"], name, v, w)
    print(f"SIGKILL with {killed_at} of {len(want)} vectors out; {len(online)} after the restart")
