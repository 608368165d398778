"""A replay of a file with bad rows, a truncated gzip, a binary file or an empty file, into a real broker.

The stated behaviour (README, Ingestor): rows that cannot be parsed go to market.trades.dlq with the
file, line and reason, and the replay goes on (exit 0, the summary counts them); a file that cannot be
read to its end (truncated gzip, not text) stops with one line naming the file and saying how many of
its trades were produced (exit 1); an empty file is a warning and exit 1, never "0 trades" and exit 0.
"""

from __future__ import annotations

import gzip
import random
import subprocess
from pathlib import Path

import pytest

from infra.kafka.broker import BrokerInfo
from tests.helpers import cli_env, tickflow_cmd
from tests.integration.ingest_kafka_support import N_TRADES, TRADES_CSV, Marks

pytestmark = pytest.mark.integration


@pytest.fixture
def kafka(shared_broker: BrokerInfo) -> BrokerInfo:
    """The session broker under a topic prefix of this test's own."""
    return shared_broker


def _replay(kafka: BrokerInfo, home: Path, path: Path) -> subprocess.CompletedProcess[str]:
    done = subprocess.run(tickflow_cmd("ingest", "replay", str(path), "--no-progress"),
                          env=cli_env(kafka.bootstrap, home), capture_output=True, text=True, timeout=180)
    assert "Traceback" not in done.stderr, done.stderr[-3000:]
    return done


def test_a_bad_row_in_the_middle_goes_to_the_dlq_and_the_replay_goes_on(kafka: BrokerInfo, tmp_path: Path) -> None:
    rows = TRADES_CSV.read_text().splitlines()
    cells = rows[9_999].split(",")
    cells[1] = "abc"
    rows[9_999] = ",".join(cells)
    bad = tmp_path / "BTCUSDT-trades-bad.csv"
    bad.write_text("\n".join(rows) + "\n")
    marks = Marks(kafka.bootstrap)
    done = _replay(kafka, tmp_path, bad)
    assert done.returncode == 0, done.stderr[-3000:]
    assert f"{N_TRADES - 1:,} trades" in done.stdout and "1 dead-lettered" in done.stdout, done.stdout
    assert len(marks.trades()) == N_TRADES - 1
    [letter] = marks.dead_letters()
    assert f"{bad.name}:10000:" in letter.reason and "'abc'" in letter.reason and "abc" in letter.raw


def test_a_truncated_gzip_names_the_file_and_says_what_was_produced(kafka: BrokerInfo, tmp_path: Path) -> None:
    whole = gzip.compress(TRADES_CSV.read_bytes())
    cut = tmp_path / "BTCUSDT-trades-cut.csv.gz"
    cut.write_bytes(whole[: len(whole) // 2])
    marks = Marks(kafka.bootstrap)
    done = _replay(kafka, tmp_path, cut)
    lines = [line for line in done.stderr.splitlines() if line.strip()]
    assert done.returncode == 1 and len(lines) == 1, done.stderr
    assert cut.name in lines[0] and "truncated" in lines[0], lines
    produced = len(marks.trades())
    assert 0 < produced < N_TRADES and f"{produced:,} trades" in lines[0], (produced, lines)


@pytest.mark.parametrize(("name", "content", "says"), [
    ("BTCUSDT-trades-binary.csv", random.Random(5).randbytes(4096), "not a text file"),
    ("BTCUSDT-trades-empty.csv", b"", "empty"),
])
def test_a_binary_or_empty_file_is_one_line_and_exit_1(kafka: BrokerInfo, tmp_path: Path, name: str,
                                                       content: bytes, says: str) -> None:
    path = tmp_path / name
    path.write_bytes(content)
    done = _replay(kafka, tmp_path, path)
    lines = [line for line in done.stderr.splitlines() if line.strip()]
    assert done.returncode == 1 and len(lines) == 1 and name in lines[0] and says in lines[0], done.stderr


def test_resume_skips_what_the_topic_holds_and_a_rerun_without_it_adds_everything(kafka: BrokerInfo,
                                                                                    tmp_path: Path) -> None:
    rows = TRADES_CSV.read_text().splitlines()[:5_000]
    part = tmp_path / "part" / "ETHUSDT-trades-resume.csv"  # a key of its own on this module's broker
    whole = tmp_path / "ETHUSDT-trades-resume.csv"
    part.parent.mkdir()
    part.write_text("\n".join(rows[:3_000]) + "\n")
    whole.write_text("\n".join(rows) + "\n")
    marks = Marks(kafka.bootstrap)

    def eth_ids() -> list[str]:
        return [t.trade_id for t in marks.trades() if t.symbol == "ETH-USDT"]

    assert _replay(kafka, tmp_path, part).returncode == 0  # a replay that stopped part way
    resumed = subprocess.run(tickflow_cmd("ingest", "replay", str(whole), "--resume", "--no-progress"),
                             env=cli_env(kafka.bootstrap, tmp_path), capture_output=True, text=True, timeout=180)
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    assert "2,000 trades" in resumed.stdout and "already on market.trades 3,000" in resumed.stdout, resumed.stdout
    ids = eth_ids()
    assert len(ids) == len(set(ids)) == 5_000
    again = subprocess.run(tickflow_cmd("ingest", "replay", str(whole), "--resume", "--no-progress"),
                           env=cli_env(kafka.bootstrap, tmp_path), capture_output=True, text=True, timeout=180)
    assert again.returncode == 0 and "0 trades" in again.stdout, again.stdout + again.stderr[-2000:]
    assert len(eth_ids()) == 5_000
    assert _replay(kafka, tmp_path, whole).returncode == 0  # without --resume: every trade again (README)
    assert len(eth_ids()) == 10_000
