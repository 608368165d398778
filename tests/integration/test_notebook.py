"""notebooks/train_policy.ipynb runs top to bottom with a real kernel, and its bundle passes the trader's check."""

from __future__ import annotations

import subprocess
from pathlib import Path

import papermill
import pytest

from tests.helpers import REPO, tickflow_cmd

pytestmark = pytest.mark.integration

NOTEBOOK = REPO / "notebooks" / "train_policy.ipynb"


def test_notebook_executes_and_exports_a_bundle_the_trader_accepts(tmp_path: Path) -> None:
    out = tmp_path / "out"
    # kernel "python3" is the running interpreter's ipykernel; papermill raises PapermillExecutionError
    # naming the cell when any cell fails.
    papermill.execute_notebook(
        str(NOTEBOOK), str(tmp_path / "executed.ipynb"), kernel_name="python3", cwd=str(NOTEBOOK.parent),
        parameters={"OUT_DIR": str(out), "DQN_TIMESTEPS": 1000, "PPO_TIMESTEPS": 1024}, progress_bar=False,
    )
    bundle = out / "bundle"
    assert (bundle / "manifest.json").is_file()
    for algo in ("dqn", "ppo"):
        assert (out / f"eval-{algo}" / "metrics.json").is_file()
    check = subprocess.run(tickflow_cmd("trade", "--bundle", str(bundle), "--check"), cwd=REPO,
                           capture_output=True, text=True, timeout=120)
    assert check.returncode == 0, check.stdout + check.stderr
