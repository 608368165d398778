"""notebooks/train_policy.ipynb runs top to bottom with a real kernel, from the repo root and from notebooks/,
writes under TICKFLOW_HOME, shows every plot, trains a schema-v2 (book features) bundle on the bundled
recording, and its exported bundle passes the trader's check."""

from __future__ import annotations

import re
import subprocess
from pathlib import Path

import nbformat
import papermill
import pytest

from contracts.feature_schema import BOOK_FEATURE_NAMES, V1
from tests.helpers import REPO, tickflow_cmd
from trader.policy import bundle as bundles

pytestmark = pytest.mark.integration

NOTEBOOK = REPO / "notebooks" / "train_policy.ipynb"
PLOTTING = ("plt.", ".plot(", ".hist(", "imshow")


@pytest.mark.parametrize("cwd", [REPO, NOTEBOOK.parent], ids=["from-repo-root", "from-notebooks"])
def test_notebook_executes_shows_its_plots_and_exports_a_bundle_the_trader_accepts(
        cwd: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    home = tmp_path / "home"
    monkeypatch.setenv("TICKFLOW_HOME", str(home))  # the kernel inherits it; OUT_DIR is left to its default
    executed = tmp_path / "executed.ipynb"
    # kernel "python3" is the running interpreter's ipykernel; papermill raises PapermillExecutionError
    # naming the cell when any cell fails.
    papermill.execute_notebook(
        str(NOTEBOOK), str(executed), kernel_name="python3", cwd=str(cwd),
        parameters={"DQN_TIMESTEPS": 1000, "PPO_TIMESTEPS": 1024}, progress_bar=False,
    )
    out = home / "notebook"
    bundle = out / "bundle"
    assert (bundle / "manifest.json").is_file()
    for algo in ("dqn", "ppo", "v2"):
        assert (out / f"eval-{algo}" / "metrics.json").is_file()
    nb = nbformat.read(executed, as_version=4)
    plotting = [c for c in nb.cells if c.cell_type == "code" and any(k in c.source for k in PLOTTING)]
    assert len(plotting) >= 5, "the notebook's plotting cells are not found"
    assert any("book_imb_5" in c.source for c in plotting), "the book-feature plot is not found"
    for cell in plotting:
        images = [o for o in cell.get("outputs", []) if "image/png" in o.get("data", {})]
        assert images, f"a plotting cell shows no image: {cell.source.splitlines()[-1]!r}"
    outputs = [o for c in nb.cells for o in c.get("outputs", [])]
    printed = " ".join(str(o.get("text", "")) for o in outputs if o.get("name") == "stdout")
    charted = re.findall(r"(DQN|PPO) policy: the chart ends at (\S+), evaluate's total return (\S+)", printed)
    assert [a for a, _, _ in charted] == ["DQN", "PPO"], printed
    assert all(chart == scored for _, chart, scored in charted), charted  # the chart is the run evaluate scores
    used = re.search(r"v2 features used \(schema v2\): (.+)", printed)
    assert used, "the v2 section printed no features line"
    names = used.group(1).split(", ")
    assert set(names) & set(V1) and set(names) & set(BOOK_FEATURE_NAMES), names
    v2 = bundles.load(out / "bundle-v2")
    assert (v2.feature_schema, list(v2.feature_names), v2.manifest["interval_s"]) == ("v2", names, 1)
    warnings = " ".join(str(o.get("text", "")) for o in outputs if o.get("name") == "stderr")
    assert "ipywidgets" not in warnings, warnings
    check = subprocess.run(tickflow_cmd("trade", "--bundle", str(bundle), "--check"), cwd=REPO,
                           capture_output=True, text=True, timeout=120)
    assert check.returncode == 0, check.stdout + check.stderr
