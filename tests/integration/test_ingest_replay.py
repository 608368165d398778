"""`tickflow ingest replay` into a real broker: trade dumps, recorded frames with bad ones, candles,
and a broker restarted in the middle of a replay."""

from __future__ import annotations

import csv
import gzip
import json
import math
import subprocess
import time
from collections.abc import Callable
from pathlib import Path

import pytest

from contracts.topic_reader import end_offsets
from contracts.topics import MARKET_TRADES, PREFIX_ENV, REGISTRY
from infra.kafka.broker import BrokerInfo, LocalBroker
from tests.helpers import DATA, cli_env, tickflow_cmd
from tests.integration.ingest_kafka_support import FRAMES, N_TRADES, TRADES_CSV, Marks, csv_trades, minute_bars

pytestmark = pytest.mark.integration



def replay(kafka: BrokerInfo, home: Path, *args: str, timeout: float = 120) -> str:
    done = subprocess.run(tickflow_cmd("ingest", "replay", *args, "--no-progress"), env=cli_env(kafka.bootstrap, home),
                          capture_output=True, text=True, timeout=timeout)
    assert done.returncode == 0, done.stdout + done.stderr[-3000:]
    return done.stdout


def test_trade_dump_replays_every_trade_once_exactly(shared_broker: BrokerInfo, tmp_path: Path) -> None:
    marks = Marks(shared_broker.bootstrap)
    out = replay(shared_broker, tmp_path, str(TRADES_CSV), "--speed", "max")
    assert f"{N_TRADES:,} trades" in out and f"delivered {N_TRADES:,} of {N_TRADES:,} records" in out
    got = marks.trades()
    assert len(got) == N_TRADES
    assert {(t.exchange, t.symbol, t.venue_symbol) for t in got} == {("binance", "BTC-USDT", "BTCUSDT")}
    assert {int(t.trade_id): (t.price, t.size, t.ts_event, t.side) for t in got} == {
        r[0]: r[1:] for r in csv_trades()}


def test_a_topic_prefix_puts_every_trade_of_a_replay_on_its_topics_and_none_elsewhere(
        broker: BrokerInfo, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """TICKFLOW_TOPIC_PREFIX=bar.: `kafka create-topics`, `ingest replay`, `kafka topics` and `topic dump` all
    work under it (another environment on the same broker), and the unprefixed topics get nothing."""
    unprefixed = Marks(broker.bootstrap)
    monkeypatch.setenv(PREFIX_ENV, "bar.")
    env = cli_env(broker.bootstrap, tmp_path)
    created = subprocess.run(tickflow_cmd("kafka", "create-topics"), env=env, capture_output=True, text=True,
                             timeout=120)
    assert created.returncode == 0 and "bar.market.trades " in created.stdout, created.stdout + created.stderr
    replay(broker, tmp_path, str(TRADES_CSV), "--speed", "max")
    listed = subprocess.run(tickflow_cmd("kafka", "topics"), env=env, capture_output=True, text=True, timeout=60)
    names = {line.split("\t")[0] for line in listed.stdout.splitlines()}
    assert set(REGISTRY) <= names and all(n.startswith("bar.") for n in names), listed.stdout
    assert "bar.market.trades" in REGISTRY and "bar.orders.dlq" in REGISTRY
    dumped = subprocess.run(tickflow_cmd("topic", "dump", "bar.market.trades", "--timeout", "3"), env=env,
                            capture_output=True, text=True, timeout=120)
    assert dumped.returncode == 0, dumped.stderr
    trades = [json.loads(line) for line in dumped.stdout.splitlines()]
    assert sorted(int(t["trade_id"]) for t in trades) == sorted(r[0] for r in csv_trades())
    monkeypatch.delenv(PREFIX_ENV)
    assert unprefixed.trades() == []


def test_recorded_frames_go_through_the_live_parser_and_bad_ones_to_the_dlq(shared_broker: BrokerInfo,
                                                                            tmp_path: Path) -> None:
    with gzip.open(FRAMES, "rt") as f:
        recorded = [json.loads(next(f)) for _ in range(3000)]
    trade = next(r for r in recorded if "@trade" in r["raw"])
    doc = json.loads(trade["raw"])

    def with_price(p: object) -> str:
        bad = json.loads(json.dumps(doc))
        bad["data"]["p"] = p
        return json.dumps(bad)

    bad_frames = {"broken": trade["raw"][:40], "negative": with_price("-1.5"), "nan": with_price("NaN"),
                  "not a number": with_price("abc"),
                  "missing": json.dumps({"stream": "btcusdt@trade", "data": {"e": "trade", "s": "BTCUSDT"}}),
                  "unknown": json.dumps({"e": "mystery", "E": 1})}
    path = tmp_path / "binance_mixed.jsonl.gz"
    with gzip.open(path, "wt") as f:
        for i, r in enumerate(recorded):
            f.write(json.dumps(r) + "\n")
            if i == 100:
                for raw in bad_frames.values():  # half as objects, half as bare raw frames
                    f.write(json.dumps({"raw": raw, "ts": r["recv_ts_ns"] // 1_000_000}) + "\n")
                    f.write(raw + "\n")
    marks = Marks(shared_broker.bootstrap)
    out = replay(shared_broker, tmp_path, str(path), "--speed", "max")  # venue from the file name
    n_trades = sum('"e":"trade"' in r["raw"] for r in recorded)
    assert f"{n_trades:,} trades" in out and f"{2 * len(bad_frames)} dead-lettered" in out
    assert f"{len(recorded) - n_trades - 1:,} frames skipped" not in out  # the REST snapshot is skipped too
    dead = marks.dead_letters()
    assert sorted(d.raw for d in dead) == sorted(list(bad_frames.values()) * 2)
    assert all(d.source == "binance" and d.reason for d in dead)
    reasons = {d.raw: d.reason for d in dead}
    assert "JSON" in reasons[bad_frames["broken"]] and "price" in reasons[bad_frames["negative"]]
    got = marks.trades()
    assert len(got) == n_trades == len({t.trade_id for t in got})


def test_candles_expand_to_trades_whose_bars_are_the_candles(shared_broker: BrokerInfo, tmp_path: Path) -> None:
    src = next((DATA / "ohlcv").glob("binance_spot_ETHUSDT_1m_*.csv.gz"))
    with gzip.open(src, "rt") as f:
        head = [next(f) for _ in range(301)]
    cut = tmp_path / "eth_candles.csv.gz"
    with gzip.open(cut, "wt") as f:
        f.writelines(head)
    marks = Marks(shared_broker.bootstrap)
    out = replay(shared_broker, tmp_path, str(cut), "--from-candles", "--symbol", "ETHUSDT", "--venue", "binance",
                 "--speed", "max")
    candles = {int(r[0]): tuple(map(float, r[1:])) for r in csv.reader(head[1:])}
    n = 4 * sum(1 for c in candles.values() if c[4] > 0)
    assert f"{n:,} trades" in out
    got = marks.trades()
    assert len(got) == n and {t.symbol for t in got} == {"ETH-USDT"}
    bars = minute_bars([(int(t.trade_id), t.price, t.size, t.ts_event) for t in got])
    for minute, (o, h, low, c, v) in candles.items():
        if v > 0:
            assert bars[minute][:4] == (o, h, low, c)
            assert math.isclose(bars[minute][4], v, rel_tol=1e-12)


def test_broker_restarted_during_a_replay_loses_and_duplicates_nothing(make_broker: Callable[[], BrokerInfo],
                                                                       tmp_path: Path) -> None:
    """It restarts its private broker (same home, same port)."""
    kafka = make_broker()
    marks = Marks(kafka.bootstrap)
    # 80 times real time: the 11 minutes of trades in about 8 s, a broker restart (about 4 s) in the middle
    proc = subprocess.Popen(tickflow_cmd("ingest", "replay", str(TRADES_CSV), "--speed", "80", "--no-progress"),
                            env=cli_env(kafka.bootstrap, tmp_path), stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT, text=True)
    try:
        deadline = time.monotonic() + 60
        while sum(end_offsets(kafka.bootstrap, MARKET_TRADES).values()) < 1_000:  # the replay is under way
            assert proc.poll() is None and time.monotonic() < deadline, "the replay ended before the broker restart"
            time.sleep(0.2)
        assert proc.poll() is None, "the replay ended before the broker restart"
        broker = LocalBroker(Path(kafka.home), port=kafka.port)
        broker.stop()
        time.sleep(1)
        broker.start(timeout=120, die_with_parent=True)
        out, _ = proc.communicate(timeout=180)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    assert proc.returncode == 0, out[-3000:]
    got = marks.trades()
    ids = [int(t.trade_id) for t in got]
    assert len(ids) == len(set(ids)) == N_TRADES, f"{len(ids)} trades, {len(set(ids))} distinct"
    assert {i: (t.price, t.size, t.ts_event, t.side) for i, t in zip(ids, got, strict=True)} == {
        r[0]: r[1:] for r in csv_trades()}
