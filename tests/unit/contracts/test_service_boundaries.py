"""The services share only contracts/: read from the source (ast), not from what one run happens to import.

Rules (ARCHITECTURE, "The data flow" and change 5): no module of ingestor/, streams/, trader/ or paper/
imports another of those packages; offline tools (trader/policy/, trader/evaluation*) may call
``streams.offline`` (a recording is read with the ingestor's replay code by ``tickflow.recording``,
outside the services); the
serving paths (the trader service and the paper broker) reach neither torch,
stable-baselines3 nor any streams code, even through a lazy import inside a function.
"""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

from tests.helpers import REPO

SERVICES = ("ingestor", "streams", "trader", "paper")
OFFLINE_TOOLS = ("trader/policy/", "trader/evaluation")
SERVING_ENTRIES = ("trader.service", "paper.broker")
NOT_ON_SERVING_PATH = ("torch", "stable_baselines3", "streams")


def _imports(path: Path) -> list[tuple[int, str]]:
    """(line, absolute module name) of every import in ``path``, at any depth; ``from a import b`` also
    yields ``a.b`` when b is a module of this repository."""
    out: list[tuple[int, str]] = []
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            out += [(node.lineno, a.name) for a in node.names]
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            out.append((node.lineno, node.module))
            out += [(node.lineno, f"{node.module}.{a.name}") for a in node.names
                    if _source(f"{node.module}.{a.name}") is not None]
    return out


def _source(module: str) -> Path | None:
    base = REPO / module.replace(".", "/")
    for candidate in (base.with_suffix(".py"), base / "__init__.py"):
        if candidate.is_file():
            return candidate
    return None


def test_services_import_one_another_only_through_contracts() -> None:
    bad = []
    for pkg in SERVICES:
        assert (REPO / pkg / "__init__.py").is_file(), f"the service package {pkg}/ is missing"
        for path in sorted((REPO / pkg).rglob("*.py")):
            rel = path.relative_to(REPO).as_posix()
            offline_ok = rel.startswith(OFFLINE_TOOLS)
            for line, name in _imports(path):
                top = name.split(".")[0]
                allowed = offline_ok and name.startswith("streams.offline")
                if top in SERVICES and top != pkg and not allowed:
                    bad.append(f"{rel}:{line} imports {name}")
    assert not bad, "services may share only contracts/: " + "; ".join(sorted(set(bad)))


def test_the_paper_broker_is_no_longer_inside_the_trader() -> None:
    assert not (REPO / "trader" / "execution").exists(), "trader/execution/ should have moved to paper/"


def test_serving_paths_reach_no_torch_and_no_streams_code() -> None:
    """Follow every first-party import (lazy ones too) from the trader service and the paper broker."""
    seen: set[str] = set()
    todo = list(SERVING_ENTRIES)
    reached: dict[str, str] = {}  # forbidden module -> the file that imports it
    while todo:
        module = todo.pop()
        if module in seen:
            continue
        seen.add(module)
        path = _source(module)
        if path is None:
            continue
        for line, name in _imports(path):
            if name.split(".")[0] in NOT_ON_SERVING_PATH:
                reached.setdefault(name, f"{path.relative_to(REPO)}:{line}")
            elif _source(name) is not None:
                todo.append(name)
    assert {"trader.handler", "trader.policy.runtime", "contracts.kafka_io", "paper.matching"} <= seen
    assert not reached, f"the serving path imports {reached}"


def test_importing_the_serving_paths_loads_no_torch_and_no_streams() -> None:
    code = ("import sys\n" + "".join(f"import {m}\n" for m in SERVING_ENTRIES)
            + f"print(sorted({{m for m in sys.modules if m.split('.')[0] in {NOT_ON_SERVING_PATH!r}}}))")
    out = subprocess.run([sys.executable, "-c", code], cwd=REPO, capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]", f"importing {SERVING_ENTRIES} loaded {out.stdout.strip()}"
