"""`tickflow kafka start|status|topics|stop` and `tickflow topic dump` as a user runs them."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest
from confluent_kafka import Producer

from contracts.client_config import producer_config
from contracts.topics import ORDERS, REGISTRY, topic
from infra.kafka.admin import admin, describe_topics
from infra.kafka.broker import BrokerInfo, LocalBroker, free_port, port_in_use
from tests.helpers import REPO, cli_env, tickflow_cmd

pytestmark = pytest.mark.integration


def run(args: list[str], env: dict[str, str], timeout: float = 150) -> subprocess.CompletedProcess[str]:
    return subprocess.run(tickflow_cmd(*args), env=env, capture_output=True, text=True, timeout=timeout,
                          cwd=REPO)


def test_start_topics_status_stop_in_a_separate_home(tmp_path: Path) -> None:
    port = free_port()
    env = cli_env(f"127.0.0.1:{port}", tmp_path / "home")
    env.pop("KAFKA_BOOTSTRAP")  # `kafka start --port` alone must be enough
    started = run(["kafka", "start", "--port", str(port)], env)
    assert started.returncode == 0, started.stderr
    assert f"ready at 127.0.0.1:{port}" in started.stdout
    try:
        topics = run(["kafka", "topics"], env)
        assert topics.returncode == 0, topics.stderr
        listed = {line.split("\t")[0] for line in topics.stdout.splitlines()}
        assert set(REGISTRY) <= listed
        status = run(["kafka", "status"], env)
        assert status.returncode == 0 and "version 4." in status.stdout and f"127.0.0.1:{port}" in status.stdout
        again = run(["kafka", "start", "--port", str(port)], env)
        assert again.returncode == 0 and "already running" in again.stdout
    finally:
        stopped = run(["kafka", "stop"], env)
    assert stopped.returncode == 0 and "stopped Kafka" in stopped.stdout
    assert not port_in_use("127.0.0.1", port)
    assert run(["kafka", "status"], env).returncode == 1


def test_start_on_a_taken_port_says_so(tmp_path: Path) -> None:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        s.listen()
        port = s.getsockname()[1]
        result = run(["kafka", "start", "--port", str(port)], cli_env(f"127.0.0.1:{port}", tmp_path))
    assert result.returncode == 1
    assert f"port {port} on 127.0.0.1 is already in use" in result.stderr


def test_topic_dump_prints_values_to_the_end(shared_broker: BrokerInfo, tmp_path: Path) -> None:
    """Under a topic prefix, `topic dump` takes the registry's base name."""
    bootstrap = shared_broker.bootstrap
    producer = Producer(producer_config(bootstrap))
    for i in range(5):
        producer.produce(topic("market.events.dlq").name, json.dumps({"n": i}).encode())
    producer.flush(10)
    result = run(["topic", "dump", "market.events.dlq", "--timeout", "2"], cli_env(bootstrap, tmp_path))
    assert result.returncode == 0, result.stderr
    values = [json.loads(line) for line in result.stdout.splitlines()]
    assert [v["n"] for v in values][-5:] == [0, 1, 2, 3, 4]
    limited = run(["topic", "dump", "market.events.dlq", "--timeout", "2", "--max", "2", "--meta"],
                  cli_env(bootstrap, tmp_path))
    rows = [json.loads(line) for line in limited.stdout.splitlines()]
    assert len(rows) == 2 and rows[0]["partition"] == 0 and rows[0]["offset"] == 0


def test_topic_dump_follow_prints_what_arrives_until_it_is_idle(bootstrap: str, tmp_path: Path) -> None:
    """With --follow --timeout, a record produced after the dump printed what was there is printed too, as it
    comes within --timeout."""
    marker = time.time_ns()
    producer = Producer(producer_config(bootstrap))
    producer.produce("signals.bars.dlq", json.dumps({"early": marker}).encode())
    producer.flush(10)
    env = {**cli_env(bootstrap, tmp_path), "PYTHONUNBUFFERED": "1"}
    dump = subprocess.Popen(tickflow_cmd("topic", "dump", "signals.bars.dlq", "--follow", "--timeout", "5"), env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, cwd=REPO)
    assert dump.stdout is not None
    lines: list[str] = []
    while not lines or json.loads(lines[-1]) != {"early": marker}:  # it has read up to its end offsets
        line = dump.stdout.readline()
        assert line, f"the dump ended before printing the first record: {dump.communicate()[1]}"
        lines.append(line)
    producer.produce("signals.bars.dlq", json.dumps({"late": marker}).encode())
    producer.flush(10)
    out, err = dump.communicate(timeout=60)
    assert dump.returncode == 0, err
    assert [json.loads(line) for line in out.splitlines()] == [{"late": marker}]


def test_dump_of_a_missing_topic_fails_with_its_name(bootstrap: str, tmp_path: Path) -> None:
    result = run(["topic", "dump", "no.such.topic", "--timeout", "1"], cli_env(bootstrap, tmp_path))
    assert result.returncode != 0
    assert "no.such.topic" in result.stderr


def test_a_killed_test_run_leaves_no_broker_behind(tmp_path: Path) -> None:
    """The broker a killed process started with die_with_parent dies with it; the port is free again."""
    home, port = tmp_path / "home", free_port()
    script = (
        "import sys, time; from infra.kafka.broker import LocalBroker; "
        f"i = LocalBroker(sys.argv[1], port={port}).start(die_with_parent=True); "
        "print(i.pid, flush=True); time.sleep(600)"
    )
    parent = subprocess.Popen([sys.executable, "-c", script, str(home)], stdout=subprocess.PIPE, text=True,
                              cwd=REPO, env={**os.environ, "PYTHONPATH": str(REPO)})
    assert parent.stdout is not None
    broker_pid = int(parent.stdout.readline())
    assert port_in_use("127.0.0.1", port)
    parent.send_signal(signal.SIGKILL)
    parent.wait()
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline and (Path(f"/proc/{broker_pid}").exists() or port_in_use("127.0.0.1", port)):
        time.sleep(0.2)
    assert not Path(f"/proc/{broker_pid}").exists(), "the broker outlived the killed run"
    assert not port_in_use("127.0.0.1", port)
    # The next run on the same home and port starts cleanly despite the stale broker.json.
    again = LocalBroker(home, port=port)
    info = again.start()
    assert info.pid != broker_pid
    again.stop()


def test_create_topics_restores_a_missing_registry_topic(shared_broker: BrokerInfo, tmp_path: Path) -> None:
    info, orders = shared_broker, ORDERS.name
    client = admin(info.bootstrap)
    client.delete_topics([orders])[orders].result(timeout=30)
    deadline = time.monotonic() + 30
    while orders in describe_topics(info.bootstrap) and time.monotonic() < deadline:
        time.sleep(0.2)
    result = run(["kafka", "create-topics"], cli_env(info.bootstrap, tmp_path), timeout=120)
    assert result.returncode == 0, result.stderr
    assert "created 1 topics" in result.stdout and orders in result.stdout
    assert describe_topics(info.bootstrap)[orders] == 4
