"""Recorded frames -> `tickflow ingest replay` -> market.books on a real broker -> `tickflow book dump`."""

from __future__ import annotations

import gzip
import json
import subprocess
from pathlib import Path

import pytest

from contracts.messages import DeadLetter, MarketEvent
from contracts.serde import decode
from contracts.topics import MARKET_BOOKS, MARKET_EVENTS, MARKET_TRADES
from infra.kafka.broker import BrokerInfo
from tests.helpers import cli_env, tickflow_cmd
from tests.integration.books_support import expected_dump, read_all
from tests.integration.ingest_kafka_support import FRAMES

pytestmark = pytest.mark.integration


@pytest.fixture
def kafka(shared_broker: BrokerInfo) -> BrokerInfo:
    """The session broker under a topic prefix of this test's own."""
    return shared_broker


def tf(kafka: BrokerInfo, home: Path, *args: str) -> str:
    done = subprocess.run(tickflow_cmd(*args), env=cli_env(kafka.bootstrap, home), capture_output=True, text=True,
                          timeout=180)
    assert done.returncode == 0, done.stdout + done.stderr[-3000:]
    return done.stdout


def test_replayed_books_dump_as_the_book_code_builds_them_keyed_and_co_partitioned(kafka: BrokerInfo,
                                                                                   tmp_path: Path) -> None:
    tf(kafka, tmp_path, "ingest", "replay", str(FRAMES), "--venue", "binance", "--speed", "max", "--no-progress")
    out = tf(kafka, tmp_path, "book", "dump", "--symbol", "BTC-USDT", "--depth", "5", "--timeout", "5")
    rows = [json.loads(line) for line in out.splitlines()]
    # The same frames through the same code without Kafka: what the dump must show, line for line.
    with gzip.open(FRAMES, "rt") as f:
        recs = [json.loads(line) for line in f]
    want, feed = expected_dump("binance", ((r["raw"], r["recv_ts_ns"] // 1_000_000, r["kind"], None) for r in recs), 5)
    assert len(rows) == len(want) == feed.counts.deltas + 1 and rows == want
    books = read_all(kafka.bootstrap, MARKET_BOOKS.name)
    assert {k for _, k, _ in books} == {b"binance:BTC-USDT"} and len(books) == feed.counts.updates
    trades = read_all(kafka.bootstrap, MARKET_TRADES.name)
    assert {p for p, _, _ in books} == {p for p, k, _ in trades if k == b"binance:BTC-USDT"}  # one partition, the same


def test_a_lost_diff_and_a_bad_frame_on_a_real_broker(kafka: BrokerInfo, tmp_path: Path) -> None:
    with gzip.open(FRAMES, "rt") as f:
        recs = [json.loads(line) for line in f]
    for r in recs:  # another symbol, so the first test's books are not in the way
        r["raw"] = r["raw"].replace('"btcusdt@', '"ethusdt@').replace('"s":"BTCUSDT"', '"s":"ETHUSDT"')
    depth = [i for i, r in enumerate(recs) if "@depth" in r["raw"][:40]]
    lost = json.loads(recs[depth[len(depth) // 2]]["raw"])["data"]
    bad = {"recv_ts_ns": recs[depth[10]]["recv_ts_ns"], "kind": "ws",
           "raw": recs[depth[10]]["raw"].replace('"U":', '"U":"1').replace(',"u":', '","u":')}
    recs = [*recs[:depth[10]], bad, *recs[depth[10]:depth[len(depth) // 2]], *recs[depth[len(depth) // 2] + 1:]]
    path = tmp_path / "binance_ethusdt_frames.jsonl.gz"
    with gzip.open(path, "wt") as f:
        f.writelines(json.dumps(r) + "\n" for r in recs)
    tf(kafka, tmp_path, "ingest", "replay", str(path), "--speed", "max", "--no-progress")
    events = [decode(v, MarketEvent) for _, _, v in read_all(kafka.bootstrap, MARKET_EVENTS.name)]
    gaps = [(e.symbol, e.first_missing, e.last_missing) for e in events if e.kind == "book_gap"]
    assert gaps == [("ETH-USDT", str(lost["U"]), str(lost["u"]))]
    dead = [decode(v, DeadLetter) for _, _, v in read_all(kafka.bootstrap, MARKET_BOOKS.dlq.name)]
    assert [d.raw for d in dead] == [bad["raw"]] and "`$.data.U`" in dead[0].reason
    out = tf(kafka, tmp_path, "book", "dump", "--symbol", "ETH-USDT", "--depth", "1", "--timeout", "5")
    seqs = [json.loads(line)["seq"] for line in out.splitlines()]
    assert seqs and max(seqs) < lost["U"]  # nothing published for the symbol after its gap
