"""What every benchmark gets: a fresh local broker and a way to run Kafka's Java tools."""

from __future__ import annotations

import subprocess
from dataclasses import dataclass
from pathlib import Path

from infra.kafka.broker import BrokerInfo
from infra.kafka.java import find_java
from infra.kafka.provision import provision


def stop_service(proc: subprocess.Popen[bytes], timeout_s: float = 20.0) -> None:
    """Stop a service a benchmark started (``tickflow trade``, a loop of its own): SIGTERM, then SIGKILL when it
    has not exited within ``timeout_s``."""
    proc.terminate()
    try:
        proc.wait(timeout_s)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait(timeout_s)


@dataclass
class BenchContext:
    broker: BrokerInfo
    workdir: Path

    @property
    def bootstrap(self) -> str:
        return self.broker.bootstrap

    def java_tool(self, main_class: str, args: list[str], timeout: float = 600) -> str:
        """Run one of Kafka's tools (kafka-tools jar) and return what it printed."""
        cmd = [str(find_java().path), "-Xmx512m", "-cp", f"{provision()}/*",
               f"-Dlog4j2.configurationFile={self.workdir / 'quiet-log4j2.properties'}", main_class, *args]
        (self.workdir / "quiet-log4j2.properties").write_text(
            "status = error\nrootLogger.level = ERROR\n")
        done = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout)
        if done.returncode != 0:
            raise subprocess.SubprocessError(f"{main_class} failed:\n{done.stdout[-1500:]}{done.stderr[-1500:]}")
        return done.stdout
