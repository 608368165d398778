"""`tickflow topic dump` (--last, --overall, --key, --from-time, the newest per key) and `tickflow topic stats`
on the session broker, as a user reads their output."""

from __future__ import annotations

import json
import subprocess
import time
from datetime import UTC, datetime
from pathlib import Path

import pytest
from confluent_kafka import Consumer, Producer, TopicPartition

from contracts.client_config import client_config, producer_config
from contracts.topics import ORDERS, PORTFOLIO, REGISTRY, prefixed, topic
from infra.kafka.broker import BrokerInfo
from tests.helpers import REPO, cli_env, tickflow_cmd

pytestmark = pytest.mark.integration
# Records stamped a year before they are written, in transactions: each commit marker carries the wall-clock
# time of its commit, which the broker's offsets_for_times counts, so the dump must still skip the older records
T0 = 1_764_590_400_000  # 2025-12-01T12:00:00Z
KEYS = ("binance:BTC-USDT", "binance:ETH-USDT", "coinbase:BTC-USDT")


def run(env: dict[str, str], *args: str) -> tuple[subprocess.CompletedProcess[str], float]:
    started = time.monotonic()
    done = subprocess.run(tickflow_cmd(*args), env=env, capture_output=True, text=True, timeout=120, cwd=REPO)
    return done, time.monotonic() - started


def values(done: subprocess.CompletedProcess[str]) -> list[dict]:
    assert done.returncode == 0, done.stderr
    return [json.loads(line) for line in done.stdout.splitlines()]


@pytest.fixture
def env(shared_broker: BrokerInfo, tmp_path: Path) -> dict[str, str]:
    """30 orders-topic records (n = 0..29, one a second from T0, keys in turn) in transactions of three,
    so each partition holds commit markers; nine portfolio snapshots, three per policy."""
    p = Producer(producer_config(shared_broker.bootstrap, {"transactional.id": prefixed("inspect-test")}))
    p.init_transactions(30)
    for batch in range(10):
        p.begin_transaction()
        for n in range(batch * 3, batch * 3 + 3):
            p.produce(ORDERS.name, json.dumps({"n": n}).encode(), KEYS[n % 3].encode(), timestamp=T0 + n * 1000)
        p.commit_transaction(30)
    plain = Producer(producer_config(shared_broker.bootstrap))
    for n in range(9):
        plain.produce(PORTFOLIO.name, json.dumps({"policy": f"p{n % 3}", "n": n}).encode(), f"p{n % 3}".encode())
    assert plain.flush(30) == 0
    return cli_env(shared_broker.bootstrap, tmp_path)


def test_dump_by_last_key_time_and_newest_per_key(env: dict[str, str]) -> None:
    everything, seconds = run(env, "topic", "dump", "orders")
    assert sorted(v["n"] for v in values(everything)) == list(range(30))
    assert seconds < 5, f"a dump without --follow took {seconds:.1f} s: it must stop at the end, not idle"

    # --last 2: per partition, the two newest of each (transaction markers take offsets in between)
    rows = values(run(env, "topic", "dump", "orders", "--last", "2", "--meta")[0])
    by_partition: dict[int, list[int]] = {}
    for r in rows:
        by_partition.setdefault(r["partition"], []).append(r["value"]["n"])
    everything_meta = values(run(env, "topic", "dump", "orders", "--meta")[0])
    for part, got in by_partition.items():
        assert got == [r["value"]["n"] for r in everything_meta if r["partition"] == part][-2:]
    assert sum(map(len, by_partition.values())) == 2 * len(by_partition)
    assert {r["topic"] for r in rows} == {ORDERS.name}

    # --last 4 --overall: the four newest of the topic by record time, in time order
    assert [v["n"] for v in values(run(env, "topic", "dump", "orders", "--last", "4", "--overall")[0])] == [
        26, 27, 28, 29]
    # --key: one symbol's records; with --last, its newest
    eth = [v["n"] for v in values(run(env, "topic", "dump", "orders", "--key", "binance:ETH-USDT")[0])]
    assert eth == list(range(1, 30, 3))
    assert [v["n"] for v in values(run(env, "topic", "dump", "orders", "--key", "binance:ETH-USDT",
                                       "--last", "2")[0])] == [25, 28]
    # --from-time as ISO-8601 and as epoch ms: the records at or after it
    at = datetime.fromtimestamp(T0 / 1000 + 25, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
    iso = values(run(env, "topic", "dump", "orders", "--from-time", at)[0])
    assert sorted(v["n"] for v in iso) == [25, 26, 27, 28, 29]
    ms = values(run(env, "topic", "dump", "orders", "--from-time", str(T0 + 27_000), "--meta")[0])
    assert sorted(r["value"]["n"] for r in ms) == [27, 28, 29] and all(r["timestamp"] >= T0 + 27_000 for r in ms)

    # the compacted portfolio topic shows each policy's newest snapshot by default; every one on request
    assert values(run(env, "topic", "dump", "portfolio")[0]) == [
        {"policy": "p0", "n": 6}, {"policy": "p1", "n": 7}, {"policy": "p2", "n": 8}]
    assert [v["n"] for v in values(run(env, "topic", "dump", "portfolio", "--no-latest-per-key")[0])] == list(
        range(9))
    # --latest-per-key on any topic
    assert sorted(v["n"] for v in values(run(env, "topic", "dump", "orders", "--latest-per-key")[0])) == [27, 28, 29]


@pytest.mark.parametrize("args, expected", [
    (["--from-time", "yesterday"], "--from-time 'yesterday': not an ISO-8601 time"),
    (["--from-time", "1764590400"], "epoch milliseconds expected"),
    (["--key", "BTC-USDT"], "keys of orders are exchange:symbol"),
    (["--last", "0"], "--last 0: give a count of 1 or more"),
    (["--overall"], "--overall goes with --last N"),
], ids=["bad-time", "seconds", "key-format", "last-0", "overall-alone"])
def test_a_bad_dump_option_is_one_line(shared_broker: BrokerInfo, tmp_path: Path, args: list[str],
                                       expected: str) -> None:
    done, _ = run(cli_env(shared_broker.bootstrap, tmp_path), "topic", "dump", "orders", *args)
    assert done.returncode == 2 and "Traceback" not in done.stderr
    [line] = done.stderr.strip().splitlines()
    assert line.startswith("tickflow topic dump: ") and expected in line, line


def test_stats_lists_records_bytes_and_group_lag(env: dict[str, str], shared_broker: BrokerInfo) -> None:
    group = prefixed("inspect-reader")
    c = Consumer({**client_config(shared_broker.bootstrap), "group.id": group, "enable.auto.commit": False})
    c.commit(offsets=[TopicPartition(PORTFOLIO.name, 0, 4)], asynchronous=False)  # read 4 of the 9 snapshots
    c.close()
    done, _ = run(env, "topic", "stats")
    assert done.returncode == 0, done.stderr
    lines = done.stdout.splitlines()
    assert lines[0].split() == ["TOPIC", "PARTITIONS", "RECORDS", "BYTES", "CONSUMER", "GROUPS", "(LAG)"]
    rows = {line.split()[0]: line.split() for line in lines[1:]}
    assert set(rows) == set(REGISTRY)  # every topic under the test's prefix
    _, partitions, records, size, *groups = rows[PORTFOLIO.name]
    assert (partitions, records) == ("1", "9") and int(size.replace(",", "")) > 9 * 20
    assert groups == [group, "5"]
    used = {r["partition"] for r in values(run(env, "topic", "dump", "orders", "--meta")[0])}
    orders = rows[ORDERS.name]
    # 30 records and, per transaction, a commit marker in each partition it wrote to
    assert orders[1:3] == ["4", str(30 + 10 * len(used))] and orders[4:] == ["-"]
    assert int(rows[topic("fills").name][2]) == 0
