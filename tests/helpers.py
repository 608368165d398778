"""Helpers for tests that run the `tickflow` command against a test broker."""

from __future__ import annotations

import os
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
DATA = REPO / "data"


def cli_env(bootstrap: str, home: Path) -> dict[str, str]:
    """The environment for running `tickflow` as a subprocess against a test broker."""
    env = dict(os.environ)
    env.update({"KAFKA_BOOTSTRAP": bootstrap, "TICKFLOW_HOME": str(home), "PYTHONPATH": str(REPO)})
    return env


def tickflow_cmd(*args: str) -> list[str]:
    return [sys.executable, "-m", "tickflow", *args]
