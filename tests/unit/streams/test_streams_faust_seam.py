"""The Faust seam: every private faust-streaming and mode detail the worker relies on is there, and an upgrade
that removes or renames one is named in a sentence (issue 12, item 3)."""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
from pathlib import Path

import pytest
from faust.transport import consumer as faust_consumer
from faust.types import TP
from mode import worker as mode_worker

from streams import faust_seam
from tests.helpers import REPO


def test_the_installed_faust_has_every_detail_the_worker_relies_on() -> None:
    faust_seam.check()


def test_a_removed_detail_is_named(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delattr(faust_consumer.Consumer, "_commit_offsets")
    with pytest.raises(faust_seam.FaustSeamError) as err:
        faust_seam.check()
    msg = str(err.value)
    assert "faust.transport.consumer.Consumer._commit_offsets is missing" in msg
    assert "read from 0.15.3" in msg and "commits the trades' offsets" in msg
    assert msg.count("; ") == 0  # only the one detail removed


def test_a_renamed_parameter_and_a_removed_attribute_are_both_named(monkeypatch: pytest.MonkeyPatch) -> None:
    async def _getmany(self: object, partitions: object, timeout: float) -> None: ...  # noqa: ASYNC109

    monkeypatch.setattr(faust_consumer.Consumer, "_getmany", _getmany)
    monkeypatch.delattr(mode_worker.Worker, "_signal_stop_time")
    with pytest.raises(faust_seam.FaustSeamError) as err:
        faust_seam.check()
    msg = str(err.value)
    assert "faust.transport.consumer.Consumer._getmany takes (self, partitions, timeout), not (self, " \
           "active_partitions, timeout)" in msg
    assert "mode.worker.Worker._signal_stop_time is missing" in msg


def test_faust_fetches_a_copy_of_its_partitions_without_the_trades() -> None:
    """The fetch gets a set of its own, so that the recovery's resume of the trade partitions (into Faust's set,
    while aiokafka's thread reads the fetch's set) cannot let trades through to the topic channel."""
    passed: list[set[TP]] = []

    class Probe(faust_seam.AssignOnlyConsumer):
        def __init__(self) -> None:  # no transport: only the fetch is exercised
            pass

    async def upstream(self: object, active_partitions: set[TP], timeout: float) -> dict:  # noqa: ASYNC109
        passed.append(active_partitions)
        return {}

    changelog, trades = TP("tickflow-streams-streams-state-changelog", 0), TP("market.trades", 0)
    active = {changelog, trades}
    mp = pytest.MonkeyPatch()
    mp.setattr(faust_consumer.ThreadDelegateConsumer, "_getmany", upstream)  # what the aiokafka driver inherits
    try:
        asyncio.run(Probe()._getmany(active, 0.01))
    finally:
        mp.undo()
    assert passed == [{changelog}] and passed[0] is not active
    active.add(TP("market.trades", 1))  # what resume_partitions does to Faust's set meanwhile
    assert passed[0] == {changelog}


def test_the_worker_stops_at_start_with_one_line_naming_the_missing_detail(tmp_path: Path) -> None:
    script = ("import sys\nfrom faust.transport import consumer\ndel consumer.Consumer._commit_offsets\n"
              "from tickflow.cli import main\nsys.exit(main(['streams', 'worker']))\n")
    env = dict(os.environ, KAFKA_BOOTSTRAP="127.0.0.1:9", TICKFLOW_HOME=str(tmp_path), PYTHONPATH=str(REPO))
    done = subprocess.run([sys.executable, "-c", script], env=env, capture_output=True, text=True, timeout=60,
                          cwd=REPO)
    assert done.returncode == 2, done.stderr
    assert "Traceback" not in done.stderr and len(done.stderr.strip().splitlines()) == 1
    assert "faust.transport.consumer.Consumer._commit_offsets is missing" in done.stderr
