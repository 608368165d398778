"""Benchmark records: {"name", "value", "unit"} (+ "reference" naming the figure it is compared with)."""

from __future__ import annotations

import json
import platform
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path


@dataclass(frozen=True)
class Result:
    name: str
    value: float
    unit: str
    reference: str | None = None  # the name of the figure, measured in the same run, it is compared with
    note: str = ""
    extra: dict[str, float] = field(default_factory=dict)


def write(results: list[Result], path: Path) -> None:
    """Write the list of records; machine facts go into a sidecar so the list stays plain."""
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps([{k: v for k, v in asdict(r).items() if v not in (None, "", {})}
                                for r in results], indent=1) + "\n")
    meta = {"when": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()), "machine": platform.machine(),
            "python": platform.python_version(), "cpus": __import__("os").cpu_count()}
    path.with_name("results.meta.json").write_text(json.dumps(meta, indent=1) + "\n")
