"""`python -m bench`'s command line: help and a misspelt benchmark name answer in one line, before any broker starts."""

from __future__ import annotations

import subprocess
import sys

from tests.helpers import REPO


def _bench(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "bench", *args], cwd=REPO, capture_output=True, text=True,
                          timeout=60)


def test_help_lists_the_benchmarks() -> None:
    run = _bench("--help")
    assert run.returncode == 0, run.stderr
    assert run.stdout.startswith("usage: python -m bench") and "streams" in run.stdout and "cluster" in run.stdout


def test_an_unknown_name_is_named_and_nothing_runs() -> None:
    run = _bench("streams", "stream")
    assert run.returncode == 2
    assert "no benchmark named 'stream'" in run.stderr and "Traceback" not in run.stderr
    assert run.stdout == ""  # streams did not start either
