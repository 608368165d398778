"""Fetch the locked Kafka jars from Maven Central (or a mirror) into a cache, verified by sha256."""

from __future__ import annotations

import fcntl
import hashlib
import logging
import os
import urllib.error
import urllib.request
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from rich.progress import BarColumn, DownloadColumn, Progress, TaskID, TextColumn, TransferSpeedColumn

from infra.kafka.java import PrerequisiteError
from infra.kafka.lockfile import Artifact, Lock, read_lock

log = logging.getLogger(__name__)

DEFAULT_MIRROR = "https://repo1.maven.org/maven2"


def cache_root() -> Path:
    """Where downloaded jars live across runs: TICKFLOW_CACHE, else $XDG_CACHE_HOME/tickflow."""
    if os.environ.get("TICKFLOW_CACHE"):
        return Path(os.environ["TICKFLOW_CACHE"]).expanduser()
    xdg = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(xdg) / "tickflow"


def jar_dir(lock: Lock | None = None) -> Path:
    """The folder of one Kafka version's jars."""
    lock = lock or read_lock()
    return cache_root() / f"kafka-{lock.kafka_version}" / "jars"


def _sha256(path: Path) -> str:
    with path.open("rb") as f:
        return hashlib.file_digest(f, "sha256").hexdigest()


def _fetch(artifact: Artifact, target: Path, mirror: str, progress: Progress | None, task: TaskID | None) -> None:
    url = f"{mirror.rstrip('/')}/{artifact.path()}"
    tmp = target.with_name(f"{target.name}.{os.getpid()}.part")
    try:
        with urllib.request.urlopen(url, timeout=60) as resp, tmp.open("wb") as out:
            while chunk := resp.read(1 << 16):
                out.write(chunk)
                if progress is not None and task is not None:
                    progress.advance(task, len(chunk))
    except (urllib.error.URLError, OSError) as err:
        tmp.unlink(missing_ok=True)
        raise PrerequisiteError(
            f"could not download {artifact.file} from {url}: {err}. Check the network, or point "
            "TICKFLOW_MAVEN_MIRROR at a Maven Central mirror you can reach."
        ) from err
    digest = _sha256(tmp)
    if digest != artifact.sha256:
        tmp.unlink(missing_ok=True)
        raise PrerequisiteError(
            f"{artifact.file} from {url} has sha256 {digest}, but jars.lock.json expects "
            f"{artifact.sha256}: the mirror served a different file; refusing it."
        )
    tmp.replace(target)


def provision(mirror: str | None = None, show_progress: bool = True) -> Path:
    """Make sure every locked jar is in the cache and verified; returns the jar folder."""
    lock = read_lock()
    folder = jar_dir(lock)
    stamp = folder / f".verified-{lock.digest}"
    if stamp.exists():
        return folder
    folder.mkdir(parents=True, exist_ok=True)
    # Checkouts on one machine share the cache: one provisions it while the others wait.
    with (folder / ".lock").open("w") as lock_file:
        fcntl.flock(lock_file, fcntl.LOCK_EX)
        if stamp.exists():  # another checkout finished it while this one waited
            return folder
        _fill(folder, lock, stamp, mirror or os.environ.get("TICKFLOW_MAVEN_MIRROR", DEFAULT_MIRROR),
              show_progress)
    return folder


def _fill(folder: Path, lock: Lock, stamp: Path, mirror: str, show_progress: bool) -> None:
    """Download what is missing or wrong, drop jars the lock does not name, then stamp the folder."""
    missing = []
    for a in lock.artifacts:
        path = folder / a.file
        if not (path.exists() and path.stat().st_size == a.size and _sha256(path) == a.sha256):
            missing.append(a)
    if missing:
        total = sum(a.size for a in missing)
        log.info("Fetching %d Kafka %s jars (%.1f MB) from %s", len(missing), lock.kafka_version,
                 total / 1e6, mirror)
        with Progress(TextColumn("Kafka jars"), BarColumn(), DownloadColumn(), TransferSpeedColumn(),
                      disable=not show_progress) as progress:
            task = progress.add_task("jars", total=total)
            with ThreadPoolExecutor(max_workers=8) as pool:
                futures = [pool.submit(_fetch, a, folder / a.file, mirror, progress, task) for a in missing]
                for fut in futures:
                    fut.result()
    # A jar in the folder that the lock does not name would join the classpath: remove it.
    wanted = {a.file for a in lock.artifacts}
    for extra in folder.glob("*.jar"):
        if extra.name not in wanted:
            extra.unlink()
    for old in folder.glob(".verified-*"):
        old.unlink()
    stamp.touch()
