"""`tickflow kafka start --port`: 0 picks a free port (it meant KAFKA_BOOTSTRAP's 9092), a port out of range
is refused in one line; no JVM is started."""

from __future__ import annotations

import argparse
from pathlib import Path

import pytest

from infra.kafka import cli
from infra.kafka.broker import BrokerError, port_in_use


def _port(port: int | None) -> int:
    return cli._broker(argparse.Namespace(host=None, port=port)).port


def test_port_zero_is_a_free_port_and_a_bad_one_is_refused(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TICKFLOW_HOME", str(tmp_path))
    monkeypatch.setenv("KAFKA_BOOTSTRAP", "127.0.0.1:9092")
    free = _port(0)
    assert free not in (0, 9092) and not port_in_use("127.0.0.1", free)
    assert (_port(None), _port(19093)) == (9092, 19093)
    for bad in (-1, 65536):
        with pytest.raises(BrokerError, match=rf"^--port {bad}: a listen port is 1 to 65535, or 0 for a free one$"):
            _port(bad)
