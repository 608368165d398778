"""A bundle edited into another policy is refused, by --check and by the service, naming the field or file.

The seven edits of issue 17 are made to a bundle as a user would (the manifest edited in place, files
added), and again with the manifest consistently re-signed, so that the checks of the content itself
(pinned schema and order, the risk gate's limits, the golden set) are tested and not only the digests.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from tests.unit.trader.trader_support import linear_bundle
from trader.policy import bundle

REPO = Path(__file__).resolve().parents[3]


def _manifest(path: Path) -> dict[str, Any]:
    return dict(json.loads((path / bundle.MANIFEST).read_text()))


def _edit_manifest(change: Callable[[dict[str, Any]], None]) -> Callable[[Path], None]:
    def edit(path: Path) -> None:
        m = _manifest(path)
        change(m)
        (path / bundle.MANIFEST).write_text(json.dumps(m))
    return edit


def _swap(m: dict[str, Any]) -> None:
    f = m["feature_names"]
    f[0], f[1] = f[1], f[0]


def _unknown(m: dict[str, Any]) -> None:
    m["feature_names"][0] = "no_such_feature"


def _scale(m: dict[str, Any]) -> None:
    m["action_map"] = [a * 100 for a in m["action_map"]]


def _interval(m: dict[str, Any]) -> None:
    m["interval_s"] = 1


def _one_golden(m: dict[str, Any]) -> None:
    m["golden"] = m["golden"][:1]


def _extra(path: Path) -> None:
    (path / "extra.bin").write_bytes(b"x")


def _link(path: Path) -> None:
    os.symlink("/etc/passwd", path / "link.txt")


# edit, and what the refusal must name
EDITS: dict[str, tuple[Callable[[Path], None], str]] = {
    "features swapped": (_edit_manifest(_swap), "feature_names"),
    "unknown feature": (_edit_manifest(_unknown), "feature_names"),
    "action map x100": (_edit_manifest(_scale), "action_map"),
    "bar interval": (_edit_manifest(_interval), "interval_s"),
    "one golden case": (_edit_manifest(_one_golden), "golden"),
    "extra file": (_extra, "extra.bin"),
    "symlink out": (_link, "link.txt"),
}


@pytest.fixture
def good(tmp_path: Path) -> Path:
    return linear_bundle(tmp_path / "good").path


def _copy(good: Path, tmp_path: Path, name: str) -> Path:
    copy = tmp_path / name.replace(" ", "_")
    shutil.copytree(good, copy, symlinks=True)
    return copy


@pytest.mark.parametrize("edit", list(EDITS))
def test_each_edit_is_refused_naming_the_field_or_file(good: Path, tmp_path: Path, edit: str) -> None:
    change, named = EDITS[edit]
    copy = _copy(good, tmp_path, edit)
    change(copy)
    with pytest.raises(bundle.BundleError) as err:
        bundle.load(copy)
    assert named in str(err.value), str(err.value)


@pytest.mark.parametrize("edit", list(EDITS))
def test_trade_check_and_the_service_refuse_each_edit(good: Path, tmp_path: Path, edit: str) -> None:
    change, named = EDITS[edit]
    copy = _copy(good, tmp_path, edit)
    change(copy)
    env = {**os.environ, "KAFKA_BOOTSTRAP": "127.0.0.1:9", "PYTHONPATH": str(REPO)}
    for args in (["--check"], []):  # --check, then the service at start
        done = subprocess.run([sys.executable, "-m", "tickflow", "trade", "--bundle", str(copy), *args],
                              capture_output=True, text=True, cwd=REPO, timeout=60, env=env)
        assert done.returncode == 1 and "is refused" in done.stderr and named in done.stderr, done.stderr
        assert "Traceback" not in done.stderr


def _resign(path: Path, change: Callable[[dict[str, Any]], None]) -> None:
    """Edit the manifest and sign it again as the writer would: only the content checks can refuse it."""
    m = _manifest(path)
    change(m)
    (path / bundle.MANIFEST).write_text(json.dumps(bundle.sign(m)))


@pytest.mark.parametrize(("change", "reason"), [
    (_swap, "feature order"), (_unknown, "not in feature schema"), (_scale, "action_map"),
    (_one_golden, "golden cases"),
])
def test_a_consistently_resigned_edit_is_refused_by_the_content_checks(good: Path, tmp_path: Path,
                                                                       change: Callable[[dict[str, Any]], None],
                                                                       reason: str) -> None:
    copy = _copy(good, tmp_path, reason)
    _resign(copy, change)
    with pytest.raises(bundle.BundleError, match=reason):
        bundle.load(copy)


def test_a_resigned_bundle_that_passes_every_check_has_another_version(good: Path, tmp_path: Path) -> None:
    copy = _copy(good, tmp_path, "interval")
    _resign(copy, _interval)
    assert bundle.load(copy).version != bundle.load(good).version


def test_nan_weights_are_refused_saying_nan(good: Path, tmp_path: Path) -> None:
    copy = _copy(good, tmp_path, "nan")
    weights = np.frombuffer((copy / bundle.WEIGHTS).read_bytes(), "<f4").copy()
    weights[0] = np.nan
    (copy / bundle.WEIGHTS).write_bytes(weights.tobytes())
    _resign(copy, lambda m: m["files"].update({bundle.WEIGHTS: bundle.sha256(weights.tobytes())}))
    with pytest.raises(bundle.BundleError, match="NaN"):
        bundle.load(copy)


def test_a_changed_policy_version_is_refused(good: Path, tmp_path: Path) -> None:
    copy = _copy(good, tmp_path, "version")
    _edit_manifest(lambda m: m.update(policy_version="0123456789abcdef"))(copy)
    with pytest.raises(bundle.BundleError, match="policy_version"):
        bundle.load(copy)
