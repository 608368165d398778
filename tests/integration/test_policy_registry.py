"""The policy registry on a real broker: promote by hand, roll back, show, history, follow."""

from __future__ import annotations

import logging
import threading
from pathlib import Path

import pytest

from contracts.policy_record import unpack
from contracts.policy_registry import follow, latest
from tests.unit.trader.test_gate import _bundle
from tickflow.cli import main
from trader.policy import bundle as bundle_mod


@pytest.mark.usefixtures("shared_broker")
def test_promote_rollback_and_follow(bootstrap: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    a, b = _bundle(tmp_path / "a", 1.0), _bundle(tmp_path / "b", -1.0)
    assert main(["policy", "promote", "p1", "--bundle", str(a.path)]) == 0
    seen: list[int] = []
    reader = threading.Thread(target=lambda: seen.extend(r.revision for r in follow(bootstrap, "p1", idle_s=8)))
    reader.start()
    assert main(["policy", "promote", "p1", "--bundle", str(b.path)]) == 0
    assert main(["policy", "promote", "p1", "--bundle", str(b.path)]) == 2  # serves already: one line, refused
    assert main(["policy", "rollback", "p1"]) == 0
    assert main(["policy", "rollback", "p1"]) == 2  # no previous version left
    rec = latest(bootstrap, "p1")
    assert rec is not None and rec.revision == 3 and rec.serving is not None and rec.serving.version == a.version
    assert rec.previous is None and [d.kind for d in rec.history] == ["promoted", "promoted", "rolled_back"]
    assert bundle_mod.load(unpack(rec.serving, tmp_path / "served")).version == a.version  # the bytes that served
    capsys.readouterr()
    assert main(["policy", "show", "p1"]) == 0 and f"serving: {a.version}" in capsys.readouterr().out
    assert main(["policy", "history", "p1"]) == 0
    assert "rolled_back " + b.version in " ".join(capsys.readouterr().out.split())
    assert main(["policy", "show", "nope"]) == 1
    assert "'nope' is not on the registry" in capsys.readouterr().err
    tampered = tmp_path / "t"
    tampered.mkdir()
    for f in a.path.iterdir():
        (tampered / f.name).write_bytes(f.read_bytes())
    (tampered / bundle_mod.NORMALISATION).write_text('{"mean": [1.0], "std": [1.0]}\n')
    assert main(["policy", "promote", "p1", "--bundle", str(tampered)]) == 1
    assert "checksum mismatch" in capsys.readouterr().err
    reader.join()
    assert seen == [1, 2, 3]  # the record there at the start, then each new one


@pytest.mark.usefixtures("shared_broker")
def test_a_scheduled_retrain_without_a_serving_version_says_so_and_waits(bootstrap: str, tmp_path: Path,
                                                                         caplog: pytest.LogCaptureFixture) -> None:
    from trader.policy.gate import GateSettings
    from trader.policy.retrain import parse_duration, run

    said = "policy absent has no serving version on the registry"
    stop = threading.Event()

    class StopWhenSaid(logging.Handler):  # stop the schedule once it has said why (however slow the read)
        def emit(self, record: logging.LogRecord) -> None:
            if said in record.getMessage():
                stop.set()

    handler = StopWhenSaid()
    logging.getLogger().addHandler(handler)
    timer = threading.Timer(60.0, stop.set)
    timer.start()
    try:
        assert run(bootstrap, "absent", 86_400, tmp_path, GateSettings(), every_s=0.2, stop=stop) == 0
    finally:
        timer.cancel()
        logging.getLogger().removeHandler(handler)
    assert said in caplog.text
    assert parse_duration("6h", "--every") == 21_600 and parse_duration("14d", "--window") == 1_209_600
    with pytest.raises(ValueError, match="--every '0h' must be positive"):
        parse_duration("0h", "--every")
