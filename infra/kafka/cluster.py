"""A local Kafka cluster: several KRaft nodes on loopback, each a broker and a controller.

``<TICKFLOW_HOME>/kafka/cluster.json`` records the layout (host, each node's broker and controller port,
the cluster id); node N lives under ``<TICKFLOW_HOME>/kafka/node-N`` as a ``LocalBroker``. The quorum is
static (``controller.quorum.voters``), so a node restarts on the ports it was given. Who leads the quorum
is read from each node's ``__cluster_metadata-0/quorum-state`` file (the Raft state KRaft keeps on disk;
confluent-kafka has no describe-quorum call): the live node with the highest leader epoch names it.
A secure cluster (``start(..., secure=True)``) authenticates every client and applies the services' ACLs
at each start (``infra.kafka.secure``, ``infra.kafka.acls``); the cluster's own checks use ``admin``.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path

from infra.kafka import acls
from infra.kafka.admin import admin, ensure_topics
from infra.kafka.broker import BrokerError, BrokerInfo, ClusterNode, LocalBroker, free_port, new_cluster_id, port_in_use
from infra.kafka.secure import Credentials

CLUSTER_HEAP = "-Xms128m -Xmx512m"  # three JVMs on one machine: small heaps


@dataclass(frozen=True)
class Layout:
    """What cluster.json records: the ports of every node (node N at index N-1) and the cluster id."""

    host: str
    ports: list[int]
    controller_ports: list[int]
    cluster_id: str
    secure: bool = False  # SASL/SCRAM and ACLs; the credentials are in kafka/credentials

    @property
    def bootstrap(self) -> str:
        return ",".join(f"{self.host}:{p}" for p in self.ports)


@dataclass(frozen=True)
class NodeStatus:
    node_id: int
    host: str
    port: int
    controller_port: int
    info: BrokerInfo | None  # None: the node is down
    leads_quorum: bool

    def line(self) -> str:
        state = "down" if self.info is None else f"pid {self.info.pid}"
        lead = "quorum leader" if self.leads_quorum else "quorum follower" if self.info else "-"
        return (f"node {self.node_id}  {state}  broker {self.host}:{self.port}  "
                f"controller {self.host}:{self.controller_port}  roles broker,controller  {lead}")


class LocalCluster:
    """The cluster of ``home``: create it once with ``start(nodes, port)``, then act on it or on one node."""

    def __init__(self, home: Path, host: str = "127.0.0.1") -> None:
        self.home = Path(home).resolve()
        self.host = host
        self.file = self.home / "kafka" / "cluster.json"
        self.credentials_dir = self.home / "kafka" / "credentials"

    def layout(self) -> Layout | None:
        return Layout(**json.loads(self.file.read_text())) if self.file.exists() else None

    def _layout(self) -> Layout:
        layout = self.layout()
        if layout is None:
            raise BrokerError(f"no cluster was started from {self.home}; start one with "
                              "`tickflow kafka start --nodes 3`")
        return layout

    def credentials(self, layout: Layout | None = None) -> Credentials | None:
        """A secure cluster's credentials (None for a plaintext one)."""
        layout = layout or self._layout()
        return Credentials.read(self.credentials_dir) if layout.secure else None

    def admin_env(self, layout: Layout | None = None) -> dict[str, str]:
        """The identity the cluster's own checks and provisioning use (``admin``; none when plaintext)."""
        creds = self.credentials(layout)
        return {} if creds is None else creds.env("admin")

    def _create(self, nodes: int, port: int, secure: bool) -> Layout:
        """Ports for ``nodes`` nodes: brokers at ``port``, ``port+1``, ... (a free port where one is taken)."""
        if LocalBroker(self.home, self.host).running() is not None:
            raise BrokerError(f"a single broker from {self.home} is running; stop it first with `tickflow kafka stop`")
        ports = []
        for i in range(nodes):
            want = port + i
            if i == 0 and port_in_use(self.host, want):
                raise BrokerError(f"port {want} on {self.host} is already in use by another process; "
                                  "choose another with --port")
            ports.append(want if not port_in_use(self.host, want) else free_port(self.host))
        layout = Layout(self.host, ports, [free_port(self.host) for _ in range(nodes)], new_cluster_id(), secure)
        self.file.parent.mkdir(parents=True, exist_ok=True)
        if secure:
            Credentials.create(self.credentials_dir)
        self.file.write_text(json.dumps(asdict(layout)))
        return layout

    def node(self, node_id: int, layout: Layout | None = None) -> LocalBroker:
        layout = layout or self._layout()
        n = len(layout.ports)
        if not 1 <= node_id <= n:
            raise BrokerError(f"--node {node_id} is not a node of the cluster in {self.home} (nodes 1 to {n})")
        voters = ",".join(f"{i}@{layout.host}:{p}" for i, p in enumerate(layout.controller_ports, 1))
        spec = ClusterNode(node_id, layout.controller_ports[node_id - 1], voters, layout.cluster_id, n,
                           self.credentials(layout))
        return LocalBroker(self.home, layout.host, layout.ports[node_id - 1], spec)

    # -- start -----------------------------------------------------------------------------------
    def start(self, nodes: int, port: int, timeout: float = 120.0, heap: str | None = None,
              die_with_parent: bool = False, on_progress: Callable[[str], None] | None = None,
              secure: bool = False) -> Layout:
        """Start every node (a new cluster the first time); return once the quorum has a leader, every
        broker answers, the registry's topics exist and (secure) the services' ACLs are in place."""
        say = on_progress or (lambda _msg: None)
        layout = self.layout()
        if layout is None:
            layout = self._create(nodes, port, secure)
        elif len(layout.ports) != nodes:
            raise BrokerError(f"the cluster in {self.home} has {len(layout.ports)} nodes, not {nodes}; "
                              "start it with that --nodes or use another TICKFLOW_HOME")
        elif layout.secure != secure:
            raise BrokerError(f"the cluster in {self.home} was created {'with' if layout.secure else 'without'} "
                              f"--secure; start it {'with' if layout.secure else 'without'} --secure or use "
                              "another TICKFLOW_HOME")
        brokers = [self.node(i, layout) for i in range(1, nodes + 1)]
        launched = [(b, b.launch(die_with_parent, heap or CLUSTER_HEAP, say)) for b in brokers if b.running() is None]
        try:
            for b, run in launched:  # every node must be up before any answers: the quorum needs a majority
                b.await_ready(run, timeout)
            self.wait_brokers(nodes, timeout)
        except BrokerError:
            for _, run in launched:  # those not awaited yet have no broker.json for stop() to find
                if run.proc.poll() is None:
                    run.proc.kill()
                    run.proc.wait(10)
            self.stop()
            raise
        ensure_topics(layout.bootstrap, env=self.admin_env(layout))
        if layout.secure:
            say(f"ACLs: {acls.apply(layout.bootstrap, self.admin_env(layout))} bindings for "
                f"{', '.join(acls.grants())}; credentials in {self.credentials_dir}")
        return layout

    def start_node(self, node_id: int, timeout: float = 120.0, heap: str | None = None) -> BrokerInfo:
        broker = self.node(node_id)
        current = broker.running()
        if current is not None:
            return current
        info = broker.await_ready(broker.launch(heap=heap or CLUSTER_HEAP), timeout)
        self.wait_brokers(len(self._layout().ports), timeout)
        return info

    def wait_brokers(self, count: int, timeout: float) -> None:
        """Wait until the metadata lists ``count`` brokers and a node leads the quorum; BrokerError if not."""
        client = admin(self._layout().bootstrap, quiet=True, env=self.admin_env())
        deadline = time.monotonic() + timeout
        seen = 0
        while time.monotonic() < deadline:
            seen = len(client.list_topics(timeout=5).brokers)
            if seen >= count and self.quorum_leader() is not None:
                return
            time.sleep(0.2)
        raise BrokerError(f"the cluster in {self.home} is not up {timeout:.0f}s after the start: {seen} of {count} "
                          f"brokers registered, quorum leader {self.quorum_leader()}; the nodes' logs are in "
                          f"{self.home / 'kafka'}/node-N/logs")

    # -- stop ------------------------------------------------------------------------------------
    def stop(self, node_id: int | None = None, timeout: float = 30.0) -> list[BrokerInfo]:
        """SIGTERM one node, or all of them at once; the ones that ran.

        All at once: stopped one after another, the last node's controlled shutdown waited for a controller
        quorum that had gone with the others, until its SIGKILL ``timeout`` later (and a log recovery at its
        next start)."""
        layout = self._layout()
        ids = range(1, len(layout.ports) + 1) if node_id is None else [node_id]
        nodes = [self.node(i, layout) for i in ids]
        terminated = [(node, node.terminate()) for node in nodes]
        for node, info in terminated:
            if info is not None:
                node.reap(info, timeout)
        return [info for _, info in terminated if info is not None]

    def kill(self, node_id: int) -> BrokerInfo | None:
        """SIGKILL one node (a fault drill); None when it was not running."""
        return self.node(node_id).kill()

    # -- status ----------------------------------------------------------------------------------
    def quorum_leader(self) -> int | None:
        """The node the live nodes' Raft state names leader at the highest epoch; None while none leads."""
        layout = self._layout()
        best: tuple[int, int] | None = None  # (epoch, leader)
        for i in range(1, len(layout.ports) + 1):
            broker = self.node(i, layout)
            state = broker.root / "data" / "__cluster_metadata-0" / "quorum-state"
            if broker.running() is None or not state.exists():
                continue
            try:
                raft = json.loads(state.read_text())
            except json.JSONDecodeError:  # being rewritten at this moment
                continue
            epoch, leader = int(raft.get("leaderEpoch", -1)), int(raft.get("leaderId", -1))
            if leader > 0 and (best is None or epoch > best[0]):
                best = (epoch, leader)
        if best is None or self.node(best[1], layout).running() is None:
            return None
        return best[1]

    def status(self) -> list[NodeStatus]:
        layout = self._layout()
        leader = self.quorum_leader()
        return [NodeStatus(i, layout.host, layout.ports[i - 1], layout.controller_ports[i - 1],
                           self.node(i, layout).running(), leader == i)
                for i in range(1, len(layout.ports) + 1)]
