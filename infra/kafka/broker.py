"""Start, watch and stop one local Apache Kafka node (KRaft, broker + controller in one process).

State lives under ``<TICKFLOW_HOME>/kafka`` (a node of a local cluster: ``<TICKFLOW_HOME>/kafka/node-N``,
see ``infra.kafka.cluster``): ``config/``, ``data/``, ``logs/broker.log`` and ``broker.json`` (pid,
address, version, start time). ``stop`` only ever signals the process that ``broker.json`` names, and
only when its command line is this node's broker.
"""

from __future__ import annotations

import base64
import contextlib
import ctypes
import json
import os
import signal
import socket
import subprocess
import time
import uuid
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from contracts.kafka_io import replication
from infra.kafka.admin import ensure_topics, wait_ready
from infra.kafka.java import find_java
from infra.kafka.lockfile import read_lock
from infra.kafka.provision import provision

if TYPE_CHECKING:
    from infra.kafka.secure import Credentials

LOG4J2 = """\
status = warn
appender.file.type = File
appender.file.name = FILE
appender.file.fileName = {log}
appender.file.layout.type = PatternLayout
appender.file.layout.pattern = [%d{{ISO8601}}] %p %m (%c{{1}})%n
rootLogger.level = INFO
rootLogger.appenderRef.file.ref = FILE
logger.kafka.name = kafka
logger.kafka.level = INFO
logger.state.name = state.change.logger
logger.state.level = WARN
logger.cleaner.name = kafka.log.LogCleaner
logger.cleaner.level = WARN
logger.apache.name = org.apache.kafka
logger.apache.level = WARN
logger.raft.name = org.apache.kafka.raft
logger.raft.level = WARN
"""


class BrokerError(RuntimeError):
    """The local broker could not be started or stopped; the message says why."""


@dataclass(frozen=True)
class BrokerInfo:
    """What broker.json records about a running broker."""

    pid: int
    host: str
    port: int
    controller_port: int
    version: str
    started_ms: int
    ready_s: float
    home: str
    node_id: int = 1

    @property
    def bootstrap(self) -> str:
        return f"{self.host}:{self.port}"


def free_port(host: str = "127.0.0.1") -> int:
    """A TCP port nothing listens on right now."""
    with socket.socket() as s:
        s.bind((host, 0))
        port: int = s.getsockname()[1]
        return port


def port_in_use(host: str, port: int) -> bool:
    with socket.socket() as s:
        s.settimeout(0.5)
        return s.connect_ex((host, port)) == 0


def new_cluster_id() -> str:
    """16 random bytes, url-safe base64 without padding; never starting with "-", which StorageTool
    would read as an option."""
    while True:
        cluster_id = base64.urlsafe_b64encode(uuid.uuid4().bytes).decode().rstrip("=")
        if not cluster_id.startswith("-"):
            return cluster_id


def _die_with_parent() -> None:
    """In the child before exec: ask Linux to SIGTERM it when the parent dies (tests killed midway)."""
    try:
        libc = ctypes.CDLL("libc.so.6", use_errno=True)
        libc.prctl(1, signal.SIGTERM)  # PR_SET_PDEATHSIG
    except OSError:
        pass
    os.setsid()


@dataclass(frozen=True)
class ClusterNode:
    """What makes a node one of several: its id, its fixed controller port, the static voters of the
    quorum, the cluster id they share, and how many nodes there are."""

    node_id: int
    controller_port: int
    voters: str  # controller.quorum.voters: "1@host:port,2@host:port,..."
    cluster_id: str
    nodes: int  # how many nodes the cluster has: the internal topics get min(3, nodes) replicas
    secure: Credentials | None = None  # SASL and ACLs (infra.kafka.secure); None: plaintext, no authorizer

    @property
    def admin_env(self) -> dict[str, str]:
        """The identity the node's own readiness checks use: the admin principal on a secure cluster."""
        return {} if self.secure is None else self.secure.env("admin")


@dataclass(frozen=True)
class _Launched:
    proc: subprocess.Popen[bytes]
    version: str
    controller_port: int
    started: float


class LocalBroker:
    """One KRaft node under ``home/kafka`` (alone), or under ``home/kafka/node-N`` (one of a cluster)."""

    def __init__(self, home: Path, host: str = "127.0.0.1", port: int = 9092,
                 node: ClusterNode | None = None) -> None:
        self.home = Path(home).resolve()
        self.node = node
        self.root = self.home / "kafka" if node is None else self.home / "kafka" / f"node-{node.node_id}"
        self.host = host
        self.port = port
        self.config_file = self.root / "config" / "server.properties"
        self.info_file = self.root / "broker.json"
        self.log_file = self.root / "logs" / "broker.log"
        self.out_file = self.root / "logs" / "broker.out"

    # -- state ----------------------------------------------------------------------------------
    def running(self) -> BrokerInfo | None:
        """The broker this home started, if its process is still alive."""
        if not self.info_file.exists():
            return None
        info = BrokerInfo(**json.loads(self.info_file.read_text()))
        if not self._is_ours(info.pid):
            self.info_file.unlink(missing_ok=True)
            return None
        return info

    def _is_ours(self, pid: int) -> bool:
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            return False
        except PermissionError:
            return False
        cmdline = Path(f"/proc/{pid}/cmdline")
        if cmdline.exists():
            args = cmdline.read_bytes().split(b"\0")
            return b"kafka.Kafka" in args and str(self.config_file).encode() in args
        return True

    def log_tail(self, lines: int = 30) -> str:
        chunks = []
        for f in (self.out_file, self.log_file):
            if f.exists():
                chunks.extend(f.read_text(errors="replace").splitlines()[-lines:])
        return "\n".join(chunks[-lines:]) or "(the broker wrote no log)"

    # -- start ----------------------------------------------------------------------------------
    def start(
        self,
        timeout: float = 90.0,
        die_with_parent: bool = False,
        heap: str | None = None,
        on_progress: Callable[[str], None] | None = None,
    ) -> BrokerInfo:
        """Start the broker in the background; return once it answers metadata requests (a lone node
        then creates the registry's topics; a cluster does that once all its nodes answer)."""
        say = on_progress or (lambda _msg: None)
        current = self._already_running()
        if current is not None:
            say(f"already running (pid {current.pid})")
            return current
        info = self.await_ready(self.launch(die_with_parent, heap, say), timeout)
        if self.node is None:
            ensure_topics(info.bootstrap)
        return info

    def launch(self, die_with_parent: bool = False, heap: str | None = None,
               say: Callable[[str], None] = lambda _msg: None) -> _Launched:
        """Write the configuration, format the storage the first time, and start the JVM; do not wait."""
        java = find_java()
        jvm = self._jvm(str(java.path), provision(), heap)
        version = read_lock().kafka_version
        controller_port = free_port(self.host) if self.node is None else self.node.controller_port
        config = self._write_config(controller_port)
        if not (self.root / "data" / "meta.properties").exists():
            self._format_storage(jvm, config)
        what = "" if self.node is None else f"node {self.node.node_id}: "
        say(f"{what}starting Kafka {version} with Java {java.major} ({java.origin})")
        started = time.monotonic()
        with self.out_file.open("ab") as out:
            proc = subprocess.Popen(
                [*jvm, "kafka.Kafka", str(config)],
                stdout=out, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                preexec_fn=_die_with_parent if die_with_parent else os.setsid,
            )
        return _Launched(proc, version, controller_port, started)

    def await_ready(self, launched: _Launched, timeout: float) -> BrokerInfo:
        """Wait for a launched broker to answer metadata requests, then record it in broker.json."""
        self._wait_ready(launched.proc, timeout)
        info = BrokerInfo(launched.proc.pid, self.host, self.port, launched.controller_port, launched.version,
                          int(time.time() * 1000), round(time.monotonic() - launched.started, 2), str(self.home),
                          1 if self.node is None else self.node.node_id)
        self.info_file.write_text(json.dumps(asdict(info)))
        return info

    def _already_running(self) -> BrokerInfo | None:
        """This home's broker when it runs at this address; an error when the address is taken otherwise."""
        current = self.running()
        if current is not None:
            if current.port == self.port and current.host == self.host:
                return current
            raise BrokerError(
                f"a broker from {self.home} already runs at {current.bootstrap} (pid {current.pid}); "
                "stop it first with `tickflow kafka stop`"
            )
        if port_in_use(self.host, self.port):
            raise BrokerError(
                f"port {self.port} on {self.host} is already in use by another process; "
                "choose another with --port or TICKFLOW_KAFKA_PORT"
            )
        return None

    def _jvm(self, java: str, jars: Path, heap: str | None) -> list[str]:
        """The java command line up to the main class: heap, GC, logging configuration, class path."""
        return [java, *(heap or os.environ.get("TICKFLOW_KAFKA_HEAP", "-Xms256m -Xmx768m")).split(),
                "-XX:+UseG1GC", "-Djava.awt.headless=true",
                f"-Dlog4j2.configurationFile={self.root / 'config' / 'log4j2.properties'}",
                "-cp", f"{jars}/*"]

    def _format_storage(self, jvm: list[str], config: Path) -> None:
        """Format a new KRaft log directory with a fresh cluster id (once per home)."""
        # a lone node is its own dynamic quorum (--standalone); a cluster's nodes list static voters
        quorum = ["--standalone"] if self.node is None else []
        cluster_id = new_cluster_id() if self.node is None else self.node.cluster_id
        scram = [] if self.node is None or self.node.secure is None else self.node.secure.scram_args()
        fmt = subprocess.run(
            [*jvm, "kafka.tools.StorageTool", "format", "-t", cluster_id, "-c", str(config),
             *quorum, *scram, "--ignore-formatted"],
            capture_output=True, text=True, timeout=120,
        )
        if fmt.returncode != 0:
            said = f"{fmt.stdout}{fmt.stderr}"
            for secret in ([] if self.node is None or self.node.secure is None
                           else self.node.secure.passwords.values()):
                said = said.replace(secret, "***")
            raise BrokerError(f"formatting the broker's storage failed:\n{said}")

    def _wait_ready(self, proc: subprocess.Popen[bytes], timeout: float) -> None:
        """Wait for the new broker to answer metadata requests; kill it and say why when it does not."""
        bootstrap = f"{self.host}:{self.port}"
        try:
            wait_ready(bootstrap, timeout, alive=lambda: proc.poll() is None,
                       env=None if self.node is None else self.node.admin_env)
        except TimeoutError as err:
            self._kill(proc.pid)
            raise BrokerError(
                f"Kafka did not answer metadata requests at {bootstrap} within {timeout:.0f}s "
                f"({err}). Last log lines:\n{self.log_tail()}"
            ) from err

    def _write_config(self, controller_port: int) -> Path:
        conf_dir = self.root / "config"
        for d in (conf_dir, self.root / "data", self.root / "logs"):
            d.mkdir(parents=True, exist_ok=True)
        h = self.host
        node = self.node
        rf, isr = replication(1 if node is None else node.nodes)
        min_isr = str(isr)
        quorum = ({"controller.quorum.bootstrap.servers": f"{h}:{controller_port}"} if node is None
                  else {"controller.quorum.voters": node.voters})
        props = {
            "process.roles": "broker,controller",
            "node.id": str(1 if node is None else node.node_id),
            **quorum,
            "listeners": f"PLAINTEXT://{h}:{self.port},CONTROLLER://{h}:{controller_port}",
            "advertised.listeners": f"PLAINTEXT://{h}:{self.port}",
            "inter.broker.listener.name": "PLAINTEXT",
            "controller.listener.names": "CONTROLLER",
            "listener.security.protocol.map": "PLAINTEXT:PLAINTEXT,CONTROLLER:PLAINTEXT",
            "log.dirs": str(self.root / "data"),
            "num.partitions": "4",
            "default.replication.factor": str(rf),  # topics created without a factor (auto-created ones)
            "min.insync.replicas": min_isr,
            "offsets.topic.replication.factor": str(rf),
            "offsets.topic.num.partitions": "8",
            "transaction.state.log.replication.factor": str(rf),
            "transaction.state.log.min.isr": min_isr,
            "transaction.state.log.num.partitions": "4",
            "share.coordinator.state.topic.replication.factor": str(rf),
            "share.coordinator.state.topic.min.isr": min_isr,
            "group.initial.rebalance.delay.ms": "0",
            "auto.create.topics.enable": "true",
            "log.retention.hours": "168",
            "log.segment.bytes": str(256 * 1024 * 1024),
        }
        if node is not None and node.secure is not None:
            props.update(node.secure.broker_properties(h, self.port, controller_port))
        config = self.config_file
        config.touch(mode=0o600)  # a secure node's file holds the admin and controller passwords
        config.write_text("".join(f"{k}={v}\n" for k, v in props.items()))
        (conf_dir / "log4j2.properties").write_text(LOG4J2.format(log=self.log_file))
        return config

    # -- stop -----------------------------------------------------------------------------------
    def stop(self, timeout: float = 30.0) -> BrokerInfo | None:
        """SIGTERM the broker this home started, SIGKILL it after ``timeout``; None if none ran."""
        info = self.terminate()
        if info is not None:
            self.reap(info, timeout)
        return info

    def terminate(self) -> BrokerInfo | None:
        """SIGTERM the broker this home started, without waiting (``reap`` waits); None if none ran."""
        info = self.running()
        if info is not None:
            os.kill(info.pid, signal.SIGTERM)
        return info

    def reap(self, info: BrokerInfo, timeout: float) -> None:
        """Wait up to ``timeout`` for the terminated broker ``info`` to exit; SIGKILL it after that."""
        if not self._wait_gone(info.pid, timeout):
            self._kill(info.pid)
            self._wait_gone(info.pid, 10)
        self.info_file.unlink(missing_ok=True)

    def kill(self) -> BrokerInfo | None:
        """SIGKILL the broker this node runs (a fault drill: no clean shutdown); None if none ran."""
        info = self.running()
        if info is None:
            return None
        self._kill(info.pid)
        self._wait_gone(info.pid, 10)
        self.info_file.unlink(missing_ok=True)
        return info

    def _kill(self, pid: int) -> None:
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGKILL)

    def _wait_gone(self, pid: int, timeout: float) -> bool:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            try:
                done, _ = os.waitpid(pid, os.WNOHANG)  # reap it when it is our child
                if done == pid:
                    return True
            except ChildProcessError:
                pass
            try:
                os.kill(pid, 0)
            except ProcessLookupError:
                return True
            if _zombie(pid):  # exited, another process's child not reaped yet (a test's node stopped by the CLI)
                return True
            time.sleep(0.1)
        return False


def _zombie(pid: int) -> bool:
    """True when ``pid`` has exited and waits for its parent to reap it (Linux's /proc; False elsewhere)."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return False
    return stat[stat.rfind(")") + 1:].split()[0] == "Z"  # the state follows the command name in parentheses
