"""The opt-in suite on a REAL ksqlDB 0.29.0 server (`make test-ksqldb`, marker ``ksqldb``).

Skipped, with the reason, unless a server is given, in one of two ways:

- ``KSQLDB_UP=<command>``: run as ``<command> <bootstrap> <port> <service id>`` against this suite's own
  broker; it starts a ksqlDB server in the background, returns once ``/info`` says RUNNING and writes the
  server's pid to ``$KSQL_RUN_DIR/ksql.pid`` (the convention of ../shared/checks/ksql-real); the suite
  stops the server at the end;
- ``KSQLDB_URL=http://host:port`` with ``KAFKA_BOOTSTRAP`` the (empty) broker that server reads.

It applies ksqldb.sql twice, replays the bundled BTCUSDT trades, runs the Faust worker beside ksqlDB,
and compares both layers' bars for every interval with an independent computation from the CSV.

EMIT FINAL's emission rule is part of the expectation, not hidden: ksqlDB 0.29 closes a window when its
partition's stream time (any key's record) passes end + grace, and emits closed windows only when a
record arrives, at most once per wall-clock second. After a full-speed replay, windows wait; so the test
sends, on every partition, later trades of other keys (five rounds, two seconds apart), as a live feed
would. Then ksqlDB must have emitted every window of the data, while the Faust worker (per key
watermark, no wall clock in a replay) keeps each interval's windows after BTC-USDT's watermark open.
"""

from __future__ import annotations

import csv
import json
import os
import re
import shlex
import subprocess
import time
import uuid
from collections import defaultdict
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest
from confluent_kafka import Consumer, Producer, TopicPartition

from contracts import V1, Trade, encode, market_key
from contracts.client_config import client_config, producer_config
from contracts.topics import MARKET_BOOKS, MARKET_TRADES, SIGNALS_BARS
from infra.kafka.admin import admin
from infra.kafka.broker import LocalBroker, free_port
from streams.features.book_features import BookTrack
from streams.ksql_sql import SINK_RETENTION_MS, bar_table_name, bar_topic
from streams.spec import BAR_FIELDS, DEFAULT_GRACE_MS, DEFAULT_INTERVALS_S
from tests.helpers import DATA, REPO, cli_env, tickflow_cmd
from tests.integration.ingest_kafka_support import FRAMES
from tests.integration.streams_support import Worker, produce_raw, read_all, wait_committed
from tests.integration.test_partitioning import java_partition
from tickflow.recording import read_recording

pytestmark = [pytest.mark.ksqldb, pytest.mark.integration, pytest.mark.slow]

KSQLDB_UP = os.environ.get("KSQLDB_UP", "")
KSQLDB_URL = os.environ.get("KSQLDB_URL", "")
if not KSQLDB_UP and not KSQLDB_URL:
    pytest.skip("no real ksqlDB server given: set KSQLDB_UP=<command that starts one against a broker> or "
                "KSQLDB_URL=http://host:port with KAFKA_BOOTSTRAP=<its empty broker> (see `make test-ksqldb`)",
                allow_module_level=True)

CSV = sorted((DATA / "ticks").glob("BTCUSDT-trades-*.csv"))[0]
KEY = "binance:BTC-USDT"
REL = 1e-9


@dataclass
class Run:
    """What the module's fixture set up: the broker, the server, the replay and the flush."""

    bootstrap: str
    url: str
    home: Path
    applies: list[subprocess.CompletedProcess[str]]
    last_ts: int  # the largest ts_event of the replayed trades
    flush_ts: int  # the last flush trade's ts_event


def reference() -> dict[int, dict[int, dict[str, float]]]:
    """interval -> window_start -> bar fields, computed from the CSV alone (taker buy: not buyer-maker)."""
    rows = [(int(r[4]), int(r[0]), float(r[1]), float(r[2]), r[5] == "True") for r in csv.reader(CSV.open())]
    out: dict[int, dict[int, dict[str, float]]] = {}
    for interval in DEFAULT_INTERVALS_S:
        windows: dict[int, list[tuple[int, int, float, float, bool]]] = defaultdict(list)
        for r in rows:
            windows[r[0] // (interval * 1000) * interval * 1000].append(r)
        bars = {}
        for ws, tr in windows.items():
            tr.sort(key=lambda x: (x[0], x[1]))
            volume = sum(x[3] for x in tr)
            bars[ws] = {"open": tr[0][2], "high": max(x[2] for x in tr), "low": min(x[2] for x in tr),
                        "close": tr[-1][2], "volume": volume, "vwap": sum(x[2] * x[3] for x in tr) / volume,
                        "trades": len(tr), "buy_volume": sum(x[3] for x in tr if not x[4]),
                        "sell_volume": sum(x[3] for x in tr if x[4]), "window_end": ws + interval * 1000}
        out[interval] = bars
    return out


def _start_server(bootstrap: str, run_dir: Path) -> tuple[str, int | None]:
    port = free_port()
    env = dict(os.environ, KSQL_RUN_DIR=str(run_dir))
    run_dir.mkdir(parents=True, exist_ok=True)
    log = run_dir / "ksqldb_up.log"
    done = subprocess.run([*shlex.split(KSQLDB_UP), bootstrap, str(port), f"tickflow_test_{port}"], env=env,
                          stdout=log.open("w"), stderr=subprocess.STDOUT, timeout=600)
    if done.returncode != 0:
        pytest.fail(f"KSQLDB_UP={KSQLDB_UP!r} failed (exit {done.returncode}): {log.read_text()[-1500:]}")
    pid = int((run_dir / "ksql.pid").read_text().split()[0])
    return f"http://127.0.0.1:{port}", pid


def _groups_done(bootstrap: str, marker: str, topic: str) -> bool:
    """Have the consumer groups whose id holds ``marker`` committed the end of every partition of ``topic``?"""
    client = admin(bootstrap)
    groups = [g.group_id for g in client.list_consumer_groups().result(timeout=10).valid if marker in g.group_id]
    if not groups:
        return False
    c = Consumer({**client_config(bootstrap), "group.id": groups[0], "enable.auto.commit": False})
    try:
        tps = [TopicPartition(topic, p) for p in range(MARKET_TRADES.partitions)]
        ends = {tp.partition: c.get_watermark_offsets(tp, timeout=10)[1] for tp in tps}
        got = {tp.partition: tp.offset for tp in c.committed(tps, timeout=10)}
        return all(ends[p] == 0 or got.get(p, -1) >= ends[p] for p in ends)
    finally:
        c.close()


def _flush_trades(bootstrap: str, start_ts: int) -> int:
    """Five rounds, two seconds apart, of one later trade per partition (keys that murmur2 puts there)."""
    keys: dict[int, str] = {}
    i = 0
    while len(keys) < MARKET_TRADES.partitions:
        symbol = f"FLUSH{i}-USDT"
        keys.setdefault(java_partition(market_key("tickflow", symbol), MARKET_TRADES.partitions), symbol)
        i += 1
    p = Producer(producer_config(bootstrap))
    ts = start_ts
    for rnd in range(5):
        ts = start_ts + rnd * 1000
        for part, symbol in sorted(keys.items()):
            t = Trade(schema_version=V1, exchange="tickflow", symbol=symbol, venue_symbol=symbol,
                      trade_id=f"flush-{rnd}-{part}",
                      price=1.0, size=1.0, side="buy", ts_event=ts, ts_ingest=ts)
            p.produce(MARKET_TRADES.name, key=market_key(t.exchange, t.symbol), value=encode(t))
        assert p.flush(30) == 0
        time.sleep(2)
    return ts


def _wait_stable(bootstrap: str, topics: list[str], timeout_s: float = 90.0) -> None:
    c = Consumer({**client_config(bootstrap), "group.id": f"stable-{uuid.uuid4().hex[:6]}"})

    def total() -> int:
        return sum(c.get_watermark_offsets(TopicPartition(t, p), timeout=10)[1]
                   for t in topics for p in range(MARKET_TRADES.partitions))
    last, still, deadline = -1, 0, time.monotonic() + timeout_s
    while time.monotonic() < deadline and still < 4:
        now = total()
        still = still + 1 if now == last else 0
        last = now
        time.sleep(2)
    c.close()


@pytest.fixture(scope="module")
def run(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Run]:
    home = tmp_path_factory.mktemp("ksqldb-real")
    broker: LocalBroker | None = None
    pid: int | None = None
    worker: Worker | None = None
    try:
        if KSQLDB_UP:
            broker = LocalBroker(home / "kafka", "127.0.0.1", free_port())
            bootstrap = broker.start(timeout=120, die_with_parent=True).bootstrap
            url, pid = _start_server(bootstrap, home / "ksql")
        else:
            bootstrap, url = os.environ.get("KAFKA_BOOTSTRAP", ""), KSQLDB_URL
            assert bootstrap, "KSQLDB_URL needs KAFKA_BOOTSTRAP: the broker that ksqlDB server reads"
        env = cli_env(bootstrap, home)
        applies = [subprocess.run(tickflow_cmd("ksql", "apply", "--url", url, "--file", str(REPO / "ksqldb.sql")),
                                  capture_output=True, text=True, env=env, cwd=REPO, timeout=300) for _ in range(2)]
        # The bundled frames' books (the same minutes as the trades), as `ingest replay` publishes them, before
        # the worker starts: its 1-second vectors then carry the book at each bar's end.
        produce_raw(bootstrap, [(market_key(u.exchange, u.symbol), encode(u)) for u in _books()], MARKET_BOOKS.name)
        worker = Worker(bootstrap, home / "worker")
        replay = subprocess.run(tickflow_cmd("ingest", "replay", str(CSV), "--speed", "max", "--no-progress"),
                                capture_output=True, text=True, env=env, cwd=REPO, timeout=300)
        assert replay.returncode == 0, replay.stderr[-2000:]
        deadline = time.monotonic() + 180
        while not all(_groups_done(bootstrap, f"CTAS_{bar_table_name(i).upper()}", MARKET_TRADES.name)
                      for i in DEFAULT_INTERVALS_S):
            assert time.monotonic() < deadline, "ksqlDB's bar queries did not consume the replay in 180 s"
            time.sleep(2)
        assert wait_committed(bootstrap, "tickflow-streams"), worker.tail()
        last_ts = max(int(r[4]) for r in csv.reader(CSV.open()))
        # far enough ahead to close the last 300 s window of the data (end + grace)
        flush_ts = _flush_trades(bootstrap, last_ts + 600_000 + DEFAULT_GRACE_MS)
        _wait_stable(bootstrap, [bar_topic(i) for i in DEFAULT_INTERVALS_S] + [SIGNALS_BARS.name])
        yield Run(bootstrap, url, home, applies, last_ts, flush_ts)
    finally:
        if worker is not None:
            worker.stop()
        if pid is not None:
            subprocess.run(["kill", str(pid)], check=False)
            time.sleep(3)
        if broker is not None:
            broker.stop()


def _books() -> list[Any]:
    return read_recording(FRAMES, "binance")[1]


def query(url: str, sql: str, rows: int | None = None, timeout_s: float = 30.0) -> tuple[list[str], list[list[Any]]]:
    """Run one SELECT on /query-stream: (column names, rows). A push query is read until ``rows`` came or
    ``timeout_s`` passed (then the connection is closed, which ends the query on the server)."""
    body = {"sql": sql, "properties": {"auto.offset.reset": "earliest"}}
    out: list[list[Any]] = []
    columns: list[str] = []
    deadline = time.monotonic() + timeout_s
    with httpx.stream("POST", f"{url}/query-stream", json=body, timeout=httpx.Timeout(timeout_s),
                      headers={"Accept": "application/vnd.ksqlapi.delimited.v1"}) as response:
        if response.status_code != 200:
            response.read()
            raise AssertionError(f"{sql}\n -> HTTP {response.status_code}: {response.text[:500]}")
        try:
            for line in response.iter_lines():
                if not line.strip():
                    continue
                item = json.loads(line)
                if isinstance(item, dict) and "columnNames" in item:
                    columns = item["columnNames"]
                elif isinstance(item, list):
                    out.append(item)
                elif isinstance(item, dict) and "error_code" in item:
                    raise AssertionError(f"{sql}\n -> {item}")
                if (rows is not None and len(out) >= rows) or time.monotonic() > deadline:
                    break
        except httpx.ReadTimeout:
            pass  # a push query with nothing more to say
    return columns, out


def statement(url: str, sql: str) -> list[dict[str, Any]]:
    r = httpx.post(f"{url}/ksql", json={"ksql": sql, "streamsProperties": {}}, timeout=60,
                   headers={"Accept": "application/vnd.ksql.v1+json"})
    assert r.status_code == 200, f"{sql}\n -> HTTP {r.status_code}: {r.text[:500]}"
    return list(r.json())


def _bars(rows: list[tuple[bytes, dict]], symbol: str) -> dict[int, dict[int, dict]]:
    out: dict[int, dict[int, dict]] = defaultdict(dict)
    for _, b in rows:
        if b.get("symbol") == symbol:
            assert int(b["window_start"]) not in out[int(b["interval_s"])], f"window emitted twice: {b}"
            out[int(b["interval_s"])][int(b["window_start"])] = b
    return out


def _same(got: dict, want: dict) -> list[str]:
    return [f"{f}: {got[f]} != {x}" for f, x in want.items() if abs(float(got[f]) - x) > REL * max(1.0, abs(x))]


def test_ksqldb_sql_applies_twice(run: Run) -> None:
    first, second = run.applies
    assert first.returncode == 0, first.stdout[-1500:] + first.stderr[-1500:]
    assert second.returncode == 0, second.stdout[-1500:] + second.stderr[-1500:]
    assert sum("SUCCESS:" in line for line in first.stdout.splitlines()) == 11, first.stdout
    assert sum("-> warning: " in line and "already exists" in line for line in second.stdout.splitlines()) == 11
    assert "warning_entity" not in second.stdout
    print("first apply:\n" + first.stdout + "second apply:\n" + second.stdout)


def test_bars_equal_the_faust_worker_s_and_the_reference_for_every_interval(run: Run) -> None:
    ref = reference()
    faust = _bars(read_all(run.bootstrap, SIGNALS_BARS.name), "BTC-USDT")
    report = []
    for interval in DEFAULT_INTERVALS_S:
        ksql = _bars(read_all(run.bootstrap, bar_topic(interval)), "BTC-USDT")[interval]
        want = ref[interval]
        # ksqlDB: the flush trades moved every partition's stream time past every window's end + grace.
        assert sorted(ksql) == sorted(want), (interval, sorted(set(want) - set(ksql)), sorted(set(ksql) - set(want)))
        # The Faust worker: BTC-USDT's own watermark (its last trade minus grace) closes its windows.
        open_in_faust = sorted(ws for ws, b in want.items() if b["window_end"] > run.last_ts - DEFAULT_GRACE_MS)
        assert sorted(faust[interval]) == sorted(set(want) - set(open_in_faust)), interval
        for ws, bar in ksql.items():
            assert not _same(bar, want[ws]), (interval, ws, _same(bar, want[ws]))
            assert set(BAR_FIELDS) <= set(bar) and bar["window_end"] == ws + interval * 1000
        for ws, bar in faust[interval].items():
            as_ksql = {f: float(ksql[ws][f]) for f in want[ws]}
            assert not _same(bar, want[ws]) and not _same(bar, as_ksql), (interval, ws)
        report.append(f"{interval}s: ksqlDB {len(ksql)}/{len(want)}, Faust {len(faust[interval])}/{len(want)} "
                      f"(open per key: {len(open_in_faust)})")
    print("bars equal to the reference: " + "; ".join(report))


def test_sink_topics_keep_replayed_history(run: Run) -> None:
    from confluent_kafka.admin import ConfigResource

    client = admin(run.bootstrap)
    for interval in DEFAULT_INTERVALS_S:
        res = ConfigResource(ConfigResource.Type.TOPIC, bar_topic(interval))
        config = client.describe_configs([res])[res].result(timeout=10)
        assert int(config["retention.ms"].value) == SINK_RETENTION_MS, bar_topic(interval)
        md = client.list_topics(bar_topic(interval), timeout=10)
        assert len(md.topics[bar_topic(interval)].partitions) == MARKET_TRADES.partitions


def test_pull_query_by_key_returns_the_key_s_bars(run: Run) -> None:
    want = reference()[60]
    columns, rows = query(run.url, f"SELECT * FROM bars_60s WHERE trade_key = '{KEY}';")
    assert rows, "a pull query by key on bars_60s returned no row (partitioner or window RETENTION)"
    got = {int(r[columns.index("window_start")]): dict(zip(columns, r, strict=True)) for r in rows}
    assert set(got) == set(want), (sorted(set(want) - set(got)), sorted(set(got) - set(want)))
    for ws, row in got.items():
        assert not _same(row, {f: v for f, v in want[ws].items() if f != "window_end"}), ws
    print(f"pull query by key {KEY} on bars_60s: {len(rows)} rows, columns {columns}")


def _readme_statements() -> list[str]:
    blocks = re.findall(r"```sql\n(.*?)```", (REPO / "README.md").read_text(), re.DOTALL)
    text = "\n".join(re.sub(r"--[^\n]*", "", b) for b in blocks)
    return [" ".join(s.split()) + ";" for s in text.split(";") if s.strip()]


def test_every_readme_query_runs_and_returns_rows(run: Run) -> None:
    seen = []
    for sql in _readme_statements():
        upper = sql.upper()
        if upper.startswith("SET "):
            continue  # the CLI's client-side property; the queries here send auto.offset.reset themselves
        if upper.startswith("RUN SCRIPT"):
            # A CLI command, not a REST statement: the CLI sends the file's statements to /ksql as one request.
            entities = statement(run.url, (REPO / "ksqldb.sql").read_text())
            assert len(entities) >= 8, entities
            seen.append(f"RUN SCRIPT (as the CLI sends it): {len(entities)} entities")
            continue
        if upper.startswith(("SHOW ", "DESCRIBE ")):
            entities = statement(run.url, sql)
            assert entities and "error_code" not in entities[0], entities
            seen.append(f"{sql[:40]}: {entities[0]['@type']}")
            continue
        push = "EMIT CHANGES" in upper
        columns, rows = query(run.url, sql, rows=5 if push else None, timeout_s=30 if push else 15)
        selected = re.match(r"SELECT (.*?) FROM", sql, re.IGNORECASE)
        assert selected and columns, sql
        if selected.group(1).strip() != "*":
            names = [re.split(r"\s+AS\s+", c.strip(), flags=re.IGNORECASE)[-1].strip("`")
                     for c in re.split(r",(?![^(]*\))", selected.group(1))]
            assert [c.lower() for c in columns] == [n.lower() for n in names], (sql, columns)
        assert rows, f"no row came back for the README query: {sql}"
        seen.append(f"{sql}\n    -> {len(rows)} rows; {columns}\n    " + "\n    ".join(json.dumps(r) for r in rows[:2]))
    print("README queries:\n  " + "\n  ".join(seen))
    assert len(seen) >= 14


def test_top_of_book_tables_answer_as_the_project_s_book(run: Run) -> None:
    books = _books()
    columns, rows = query(run.url, f"SELECT * FROM latest_book_snapshot WHERE book_key = '{KEY}';")
    assert len(rows) == 1, rows
    snap = dict(zip(columns, rows[0], strict=True))
    last = [u for u in books if u.kind == "snapshot" and u.part == 0][-1]
    assert (snap["seq"], snap["best_bid"], snap["best_bid_size"], snap["best_ask"], snap["best_ask_size"]) == (
        last.seq, *last.bids[0], *last.asks[0])
    columns, rows = query(run.url, f"SELECT * FROM latest_top_of_book WHERE feature_key = '{KEY}';")
    assert len(rows) == 1, rows
    top = dict(zip(columns, rows[0], strict=True))
    track = BookTrack(1000)  # the project's book as of that 1-second bar's end
    for u in books:
        track.receive(u)
    track.advance(int(top["ts"]))
    held = next(iter(track.reader.books.values())).book
    bid, ask = held.bids.best(), held.asks.best()
    assert bid is not None and ask is not None
    assert abs(top["best_bid"] - bid) < 1e-6 and abs(top["best_ask"] - ask) < 1e-6, (top, bid, ask)
    print(f"latest_book_snapshot {snap}; latest_top_of_book {top}; the project's book at {top['ts']}: {bid} / {ask}")
