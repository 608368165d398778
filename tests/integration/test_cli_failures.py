"""The commands a person types fail the way a person can act on: one line, the right exit code, no traceback.

Without a broker every command that needs Kafka says so within seconds; a replay stopped while its broker
is gone says what was acknowledged; ordinary mistakes name the input; help shows defaults.
"""

from __future__ import annotations

import signal
import socket
import subprocess
import time
from collections.abc import Callable
from pathlib import Path

import pytest

from contracts.topic_reader import end_offsets
from contracts.topics import MARKET_TRADES
from infra.kafka.broker import BrokerInfo
from tests.helpers import DATA, REPO, cli_env, tickflow_cmd
from tests.unit.trader.trader_support import linear_bundle

pytestmark = pytest.mark.integration

TICKS = next((DATA / "ticks").glob("BTCUSDT-trades-*.csv"))
CANDLES = DATA / "ohlcv" / "binance_spot_BTCUSDT_1m_20250520T0000_20250818T1827.csv.gz"


def closed_port() -> int:
    """A port nothing listens on (bound, then released)."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
    return port


def run(args: list[str], env: dict[str, str], timeout: float = 60) -> tuple[subprocess.CompletedProcess[str], float]:
    started = time.monotonic()
    done = subprocess.run(tickflow_cmd(*args), cwd=REPO, env=env, capture_output=True, text=True, timeout=timeout)
    return done, time.monotonic() - started


def assert_one_line(done: subprocess.CompletedProcess[str], *expected: str) -> str:
    out = done.stdout + done.stderr
    assert "Traceback" not in out, out
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1, out
    for text in expected:
        assert text in lines[0], lines[0]
    return lines[0]


@pytest.mark.parametrize("command", [
    ["ingest", "replay", str(TICKS), "--speed", "max"],
    ["trade", "--bundle", "BUNDLE"],  # a bundle the trader accepts: the broker is what is missing
    ["trade", "--policy-id", "champ"],  # served from the registry: the broker is read first
    ["paper"],
    ["kafka", "topics"],
    ["topic", "dump", "orders"],
    ["topic", "stats"],
    ["explain", "o-1"],
    ["view"],
    ["book", "dump"],
], ids=lambda c: " ".join(c[:2]) if c[0] in ("ingest", "kafka", "topic", "book") or c[1:2] == ["--policy-id"] else c[0])
def test_a_command_that_needs_kafka_says_at_once_that_there_is_none(command: list[str], tmp_path: Path) -> None:
    address = f"127.0.0.1:{closed_port()}"
    if "BUNDLE" in command:
        command = [str(linear_bundle(tmp_path / "bundle").path) if c == "BUNDLE" else c for c in command]
    done, seconds = run(command, cli_env(address, tmp_path), timeout=30)
    assert done.returncode != 0
    assert seconds < 10, f"{command} took {seconds:.1f} s"
    assert_one_line(done, address, "tickflow kafka start")


def test_a_replay_stopped_while_its_broker_is_gone_says_what_was_acknowledged(
        make_broker: Callable[[], BrokerInfo], tmp_path: Path) -> None:
    info = make_broker()
    env = cli_env(info.bootstrap, tmp_path)
    # original timing: the replay is still producing when the broker goes away
    replay = subprocess.Popen(tickflow_cmd("ingest", "replay", str(TICKS), "--speed", "1", "--no-progress"),
                              cwd=REPO, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        deadline = time.monotonic() + 60
        while sum(end_offsets(info.bootstrap, MARKET_TRADES).values()) == 0:  # its first trades acknowledged
            assert replay.poll() is None and time.monotonic() < deadline, replay.communicate()
            time.sleep(0.2)
        assert replay.poll() is None, replay.communicate()
        subprocess.run(["kill", "-9", str(info.pid)], check=True)
        time.sleep(2)
        replay.send_signal(signal.SIGTERM)
        started = time.monotonic()
        out, err = replay.communicate(timeout=30)
        seconds = time.monotonic() - started
    finally:
        if replay.poll() is None:
            replay.kill()
    assert seconds < 5, f"the replay took {seconds:.1f} s to stop"
    assert replay.returncode == 130, out + err
    assert "Traceback" not in out + err
    assert "stopped by a signal; the broker acknowledged" in err, err
    assert "were not acknowledged" in err, err
    # librdkafka's own lines (connection refused, FAIL|, ...) stay at DEBUG: the replay's report is what shows
    assert "librdkafka" not in err and "Connection refused" not in err, err


@pytest.mark.parametrize("case", ["missing data", "bundle without manifest", "unknown feature"])
def test_an_ordinary_mistake_gives_one_line_naming_the_input(case: str, tmp_path: Path) -> None:
    env = cli_env(f"127.0.0.1:{closed_port()}", tmp_path)
    if case == "missing data":
        missing = tmp_path / "nope.csv.gz"
        done, _ = run(["train", "--algo", "ppo", "--data", str(missing), "--out", str(tmp_path / "b")], env)
        assert_one_line(done, str(missing))
    elif case == "bundle without manifest":
        empty = tmp_path / "bundle"
        empty.mkdir()
        done, _ = run(["evaluate", "--bundle", str(empty), "--data", str(CANDLES), "--out", str(tmp_path / "e")],
                      env)
        assert_one_line(done, "manifest.json")
    else:
        done, _ = run(["train", "--algo", "ppo", "--data", str(CANDLES), "--out", str(tmp_path / "b"),
                       "--features", "ret_1,no_such_feature"], env)
        assert_one_line(done, "no_such_feature")
    assert done.returncode == 2


def test_options_are_not_abbreviated_and_log_level_goes_anywhere(tmp_path: Path) -> None:
    env = cli_env(f"127.0.0.1:{closed_port()}", tmp_path)
    done, _ = run(["train", "--algo", "ppo", "--data", str(CANDLES), "--out", str(tmp_path / "b"),
                   "--timestep", "100"], env)
    assert done.returncode == 2
    assert "unrecognized arguments: --timestep 100" in done.stderr
    done, _ = run(["kafka", "status", "--log-level", "DEBUG"], env)
    assert "unrecognized" not in done.stderr, done.stderr


@pytest.mark.parametrize("command, defaults", [
    (["train"], ["--timesteps", "--seed", "--train-fraction"]),
    (["evaluate"], ["--seed", "--folds"]),
    (["ingest", "replay"], ["--speed"]),
    (["topic", "dump"], ["--timeout"]),
    (["run"], ["--venue", "--symbols", "--timesteps", "--view-port"]),
    (["view"], ["--interval"]),
])
def test_help_shows_the_defaults(command: list[str], defaults: list[str], tmp_path: Path) -> None:
    done, _ = run([*command, "--help"], cli_env("127.0.0.1:1", tmp_path))
    assert done.returncode == 0
    text = " ".join(done.stdout.split()).split(" options: ", 1)[1]  # after the description
    for option in defaults:
        after = text.split(f" {option} ", 1)[1]
        assert "(default: " in after.split(" --", 1)[0], f"{option} shows no default in {command} --help"


def test_an_unknown_topic_names_the_closest_one(shared_broker: BrokerInfo, tmp_path: Path) -> None:
    done, _ = run(["topic", "dump", "market.trade"], cli_env(shared_broker.bootstrap, tmp_path))
    assert done.returncode == 2
    assert_one_line(done, "'market.trade'", "did you mean market.trades?")


def test_a_dump_into_a_closed_pipe_stops_quietly(shared_broker: BrokerInfo, tmp_path: Path) -> None:
    from confluent_kafka import Producer

    from contracts.client_config import producer_config
    from contracts.topics import topic

    name = topic("orders").name
    producer = Producer(producer_config(shared_broker.bootstrap))
    for i in range(5_000):
        producer.produce(name, f'{{"n": {i}, "pad": "{"x" * 100}"}}'.encode())
    assert producer.flush(30) == 0
    dump = subprocess.Popen(tickflow_cmd("topic", "dump", "orders", "--timeout", "1"), cwd=REPO,
                            env=cli_env(shared_broker.bootstrap, tmp_path), stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)
    assert dump.stdout is not None
    first = dump.stdout.readline()  # `| head -1`: read one line, then close the pipe
    dump.stdout.close()
    err = dump.stderr.read() if dump.stderr else ""
    assert dump.wait(timeout=60) == 0, err
    assert first.startswith('{"n": '), first
    assert "Traceback" not in err and "BrokenPipe" not in err, err
