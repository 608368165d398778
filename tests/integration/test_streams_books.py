"""Book features online: the bundled Binance frames through `ingest replay` into a real broker, a real streams
worker reading market.trades and market.books, and signals.features equal to the offline builder's, every bar."""

from __future__ import annotations

import math
import subprocess
from pathlib import Path

import pytest

from contracts.feature_schema import BOOK_FEATURE_NAMES, V2
from contracts.topics import SIGNALS_FEATURES
from infra.kafka.broker import BrokerInfo
from tests.helpers import cli_env, tickflow_cmd
from tests.integration.ingest_kafka_support import FRAMES
from tests.integration.streams_support import Worker, read_all, wait_for_count
from tickflow.recording import build_from_recording

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
