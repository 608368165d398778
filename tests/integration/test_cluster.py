"""Fault tests on a real three-node KRaft cluster started from the project's files (`LocalCluster`, the
code behind `tickflow kafka start --nodes 3`): a node is SIGKILLed mid-stream and restarted, and what
was acknowledged is compared record by record with the input."""

from __future__ import annotations

import os
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from confluent_kafka import KafkaException
from confluent_kafka.admin import AdminClient

from contracts import Trade, decode
from contracts.client_config import client_config
from contracts.topic_reader import end_offsets, read_to_end
from contracts.topics import MARKET_TRADES
from infra.kafka.broker import BrokerError
from infra.kafka.cluster import Layout, LocalCluster
from tests.helpers import cli_env, tickflow_cmd
from tests.integration.ingest_kafka_support import N_TRADES, TRADES_CSV, csv_trades

pytestmark = pytest.mark.integration
NODES = 3
CLEAN_STOP = "shut down completed (BrokerServer)"  # a node's broker log line when its controlled shutdown is done


def _say(config: pytest.Config, line: str) -> None:
    """A line on the terminal even when output is captured: what a fault test killed, when, and counts."""
    reporter = config.pluginmanager.get_plugin("terminalreporter")
    capture = config.pluginmanager.get_plugin("capturemanager")
    if reporter is not None and capture is not None:
        with capture.global_and_fixture_disabled():
            reporter.write_line(f"cluster: {line}")


@pytest.fixture(scope="module")
def cluster(tmp_path_factory: pytest.TempPathFactory, pytestconfig: pytest.Config) -> Iterator[
        tuple[LocalCluster, Layout]]:
    """Three KRaft nodes (broker + controller each, -Xmx512m) in a TICKFLOW_HOME of their own."""
    home = tmp_path_factory.mktemp("kafka-cluster")
    local = LocalCluster(home)
    started = time.monotonic()
    try:
        layout = local.start(NODES, free_base_port(), timeout=180, die_with_parent=True)
    except (BrokerError, TimeoutError) as err:
        pytest.fail(f"the three-node cluster did not start: {err}", pytrace=False)
    _say(pytestconfig, f"{NODES} nodes ready at {layout.bootstrap} in {time.monotonic() - started:.1f}s")
    yield local, layout
    local.stop()


def free_base_port() -> int:
    from infra.kafka.broker import free_port, port_in_use

    while True:
        port = free_port()
        if not any(port_in_use("127.0.0.1", port + i) for i in range(1, NODES)):
            return port


def _ends(bootstrap: str) -> dict[int, int]:
    """market.trades' end offsets, waiting out a leader election."""
    deadline = time.monotonic() + 60
    while True:
        try:
            return end_offsets(bootstrap, MARKET_TRADES)
        except KafkaException:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.5)


def _partition_state(bootstrap: str, partition: int) -> tuple[int, list[int]]:
    """(leader, in-sync replicas) of a market.trades partition."""
    md = AdminClient({**client_config(bootstrap), "log_level": 0}).list_topics(MARKET_TRADES.name, timeout=10)
    p = md.topics[MARKET_TRADES.name].partitions[partition]
    return p.leader, sorted(p.isrs)


def _wait(what: str, cond: object, timeout: float) -> float:
    """Poll ``cond`` until true; the seconds it took (fails naming ``what`` after ``timeout``)."""
    assert callable(cond)
    started = time.monotonic()
    while not cond():
        assert time.monotonic() - started < timeout, f"{what}: not within {timeout:.0f}s"
        time.sleep(0.2)
    return time.monotonic() - started


def test_a_replay_survives_its_partition_leader_sigkilled_and_restarted_every_trade_once_in_order(
        cluster: tuple[LocalCluster, Layout], tmp_path: Path, pytestconfig: pytest.Config) -> None:
    local, layout = cluster
    bootstrap = layout.bootstrap
    assert len(layout.ports) == NODES
    replay = subprocess.Popen(
        tickflow_cmd("ingest", "replay", str(TRADES_CSV), "--speed", "30", "--no-progress"),
        env=cli_env(bootstrap, tmp_path), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    started = time.monotonic()
    try:
        # The dump is one symbol, so one partition holds it: kill that partition's leader once it has records.
        _wait("the replay's first 2,000 trades", lambda: sum(_ends(bootstrap).values()) >= 2_000, 60)
        at_kill = _ends(bootstrap)
        partition = max(at_kill, key=lambda p: at_kill[p])
        leader, isr = _partition_state(bootstrap, partition)
        assert isr == [1, 2, 3], f"market.trades[{partition}] is not replicated on three nodes: ISR {isr}"
        killed = local.kill(leader)
        assert killed is not None, f"node {leader} led market.trades[{partition}] but was not running"
        t_kill = time.monotonic() - started
        _say(pytestconfig, f"SIGKILLed node {leader} (pid {killed.pid}), leader of market.trades[{partition}], "
             f"at {t_kill:.1f}s with {at_kill[partition]:,} trades in the partition")
        # the replay goes on through the new leader; then the dead node comes back and catches up
        failover = _wait("an acknowledged write after the kill",
                         lambda: _ends(bootstrap)[partition] > at_kill[partition], 90)
        new_leader, _ = _partition_state(bootstrap, partition)
        assert new_leader not in (leader, -1)
        local.start_node(leader, timeout=120)
        t_back = time.monotonic() - started
        back_in_isr = _wait(f"node {leader} back in the ISR of market.trades[{partition}]",
                            lambda: leader in _partition_state(bootstrap, partition)[1], 120)
        _say(pytestconfig, f"node {new_leader} leads after {failover:.1f}s; node {leader} restarted at {t_back:.1f}s, "
             f"in sync again {back_in_isr:.1f}s later")
        out, err = replay.communicate(timeout=300)
    finally:
        if replay.poll() is None:
            replay.kill()
            replay.wait()
    assert replay.returncode == 0, out + err[-3000:]
    assert f"delivered {N_TRADES:,} of {N_TRADES:,} records" in out, out

    by_partition: dict[int, list[Trade]] = {}
    for m in read_to_end(bootstrap, MARKET_TRADES, idle_s=60):
        by_partition.setdefault(m.partition() or 0, []).append(decode(m.value() or b"", Trade))
    got = [t for trades in by_partition.values() for t in trades]
    ref = csv_trades()
    ids = [int(t.trade_id) for t in got]
    _say(pytestconfig, f"compared {len(got):,} trades on market.trades ({len(set(ids)):,} distinct) with "
         f"{len(ref):,} in {TRADES_CSV.name}; replay took {time.monotonic() - started:.1f}s")
    assert len(ids) == len(set(ids)), f"{len(ids) - len(set(ids))} trades duplicated"
    assert {int(t.trade_id): (t.price, t.size, t.ts_event, t.side) for t in got} == {r[0]: r[1:] for r in ref}
    order = [r[0] for r in ref]
    for p, trades in by_partition.items():  # in the CSV's order within every partition
        here = [int(t.trade_id) for t in trades]
        members = set(here)
        assert here == [i for i in order if i in members], f"market.trades[{p}] out of order"


def test_status_lists_every_node_and_one_quorum_leader(cluster: tuple[LocalCluster, Layout]) -> None:
    """`tickflow kafka status` on the cluster's home: a line per node, exactly one leading the quorum."""
    local, layout = cluster
    env = dict(os.environ, TICKFLOW_HOME=str(local.home))
    env.pop("KAFKA_BOOTSTRAP", None)
    done = subprocess.run(tickflow_cmd("kafka", "status"), env=env, capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stdout + done.stderr
    lines = done.stdout.splitlines()
    assert [line.split()[:2] for line in lines] == [["node", str(i)] for i in range(1, NODES + 1)], done.stdout
    assert sum("quorum leader" in line for line in lines) == 1, done.stdout
    for port in layout.ports:
        assert f"127.0.0.1:{port}" in done.stdout


def test_stop_shuts_every_node_down_cleanly_within_the_timeout(cluster: tuple[LocalCluster, Layout]) -> None:
    """`tickflow kafka stop` on the cluster's home (the module's last test: the cluster is gone after it): every
    node's broker completes its controlled shutdown. Stopped one after another, the last node waited for a
    controller quorum that had gone with the others and was SIGKILLed 30 s later."""
    local, _ = cluster
    logs = [local.node(i).log_file for i in range(1, NODES + 1)]
    before = [log.read_text(errors="replace").count(CLEAN_STOP) for log in logs]
    env = dict(os.environ, TICKFLOW_HOME=str(local.home))
    env.pop("KAFKA_BOOTSTRAP", None)
    started = time.monotonic()
    done = subprocess.run(tickflow_cmd("kafka", "stop"), env=env, capture_output=True, text=True, timeout=120)
    took = time.monotonic() - started
    assert done.returncode == 0, done.stdout + done.stderr
    after = [log.read_text(errors="replace").count(CLEAN_STOP) for log in logs]
    assert [a - b for a, b in zip(after, before, strict=True)] == [1] * NODES, (before, after, f"{took:.1f}s")
    assert all(node.running() is None for node in (local.node(i) for i in range(1, NODES + 1)))
    print(f"three nodes stopped cleanly in {took:.1f}s")
