"""The suite's own layout: pytest imports each test file by its basename (no packages under tests/), so two
test files with one basename stop the whole run at collection ("import file mismatch")."""

from __future__ import annotations

from collections import defaultdict

from tests.helpers import REPO


def test_no_two_test_files_share_a_basename() -> None:
    where: defaultdict[str, list[str]] = defaultdict(list)
    for path in sorted((REPO / "tests").rglob("test_*.py")):
        where[path.name].append(str(path.relative_to(REPO)))
    shared = {name: paths for name, paths in where.items() if len(paths) > 1}
    assert not shared, f"test files that share a basename (rename one of each): {shared}"
