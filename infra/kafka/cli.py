"""`tickflow kafka ...` and `tickflow topic ...`: the local broker and topic inspection."""

from __future__ import annotations

import argparse
import os
import time
from typing import TYPE_CHECKING

from contracts.settings import kafka_bootstrap, tickflow_home
from contracts.topics import find, topic_prefix

if TYPE_CHECKING:
    from infra.kafka.broker import LocalBroker
    from infra.kafka.cluster import LocalCluster


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    kafka = sub.add_parser(
        "kafka", help="run a local Apache Kafka broker (KRaft) from Maven Central jars",
        description="A real single-node Apache Kafka broker for development, tests and the demo. "
        "State lives under TICKFLOW_HOME (default ./.tickflow); jars are cached under "
        "TICKFLOW_CACHE (default ~/.cache/tickflow).",
    )
    ks = kafka.add_subparsers(dest="kafka_command", required=True, metavar="ACTION")
    start = ks.add_parser("start", help="start the broker in the background and wait until it answers")
    start.add_argument("--host", default=None, help="listen address (default: KAFKA_BOOTSTRAP's host)")
    start.add_argument("--port", type=int, default=None, help="listen port (default: KAFKA_BOOTSTRAP's port)")
    start.add_argument("--timeout", type=float, default=90.0, help="seconds to wait for readiness")
    start.add_argument("--nodes", type=int, default=1, help="KRaft nodes on loopback, each broker and controller "
                       "(default 1; 3 gives a replicated cluster: brokers at --port, --port+1, ...)")
    start.add_argument("--node", type=int, default=None, help="start only this node of the cluster (after a "
                       "stop or kill)")
    start.add_argument("--secure", action="store_true", help="a new cluster with SASL/SCRAM authentication and "
                       "ACLs, one principal per service; credentials are written to TICKFLOW_HOME/kafka/credentials")
    start.set_defaults(func=_start)
    stop = ks.add_parser("stop", help="stop the broker (or every node of the cluster) this TICKFLOW_HOME started "
                         "(SIGTERM, then kill)")
    stop.add_argument("--timeout", type=float, default=30.0, help="seconds before SIGKILL")
    stop.add_argument("--node", type=int, default=None, help="stop only this node of the cluster")
    stop.set_defaults(func=_stop)
    kill = ks.add_parser("kill", help="SIGKILL one node of the cluster (a fault drill)")
    kill.add_argument("--node", type=int, required=True, help="the node to kill")
    kill.set_defaults(func=_kill)
    ks.add_parser("status", help="pid, address, version and uptime of the local broker; on a cluster one line "
                  "per node (pid, ports, role, quorum leader)").set_defaults(func=_status)
    ks.add_parser("topics", help="list topics and partition counts at KAFKA_BOOTSTRAP (with TICKFLOW_TOPIC_PREFIX "
                  "set, those under the prefix)").set_defaults(func=_topics)
    ks.add_parser("create-topics", help="create the registry's missing topics at KAFKA_BOOTSTRAP (any broker)"
                  ).set_defaults(func=_create_topics)
    ks.add_parser("acls", help="create the services' ACLs (infra/kafka/acls.py, under TICKFLOW_TOPIC_PREFIX) at "
                  "KAFKA_BOOTSTRAP, logged in as KAFKA_SASL_USERNAME (a super user); `kafka start --secure` does "
                  "it itself").set_defaults(func=_acls)
    ks.add_parser("provision", help="fetch and verify the locked Kafka jars into the cache").set_defaults(
        func=_provision)
    ks.add_parser("lock", help="regenerate infra/kafka/jars.lock.json from pom.xml (needs Maven)").set_defaults(
        func=_lock)

    topic = sub.add_parser("topic", help="inspect topics", description="Inspect topics at KAFKA_BOOTSTRAP.")
    ts = topic.add_subparsers(dest="topic_command", required=True, metavar="ACTION")
    dump = ts.add_parser(
        "dump", help="print a topic's values as JSON lines from the beginning",
        description="Print the topic's values as JSON lines, from the first offset of every partition, "
        "until no record arrives for --timeout seconds (or --max records were printed).",
    )
    dump.add_argument("topic", help="topic name, e.g. market.trades (a registry name gets TICKFLOW_TOPIC_PREFIX "
                      "unless it already has it)")
    dump.add_argument("--timeout", type=float, default=5.0, help="stop after this many idle seconds")
    dump.add_argument("--max", type=int, default=None, help="stop after this many records")
    dump.add_argument("--meta", action="store_true", help="wrap each value with partition, offset and key")
    dump.set_defaults(func=_dump)


def _broker(args: argparse.Namespace) -> LocalBroker:
    from infra.kafka.broker import LocalBroker

    host, _, port = kafka_bootstrap().split(",")[0].rpartition(":")
    return LocalBroker(tickflow_home(), getattr(args, "host", None) or host,
                       getattr(args, "port", None) or int(port))


def _cluster() -> LocalCluster | None:
    """The cluster this TICKFLOW_HOME started, if it did."""
    from infra.kafka.cluster import LocalCluster

    cluster = LocalCluster(tickflow_home())
    return cluster if cluster.layout() is not None else None


def _start(args: argparse.Namespace) -> int:
    from infra.kafka.broker import BrokerError
    from infra.kafka.cluster import LocalCluster

    say = lambda m: print(f"kafka: {m}", flush=True)  # noqa: E731
    if args.node is not None:
        cluster = _cluster()
        if cluster is None:
            raise BrokerError(f"--node {args.node}: no cluster was started from {tickflow_home()}")
        info = cluster.start_node(args.node, timeout=args.timeout)
        print(f"node {args.node} ready at {info.bootstrap} (pid {info.pid})")
        return 0
    if args.nodes < 1:
        raise BrokerError(f"--nodes {args.nodes}: a cluster needs at least one node")
    if args.nodes > 1 or args.secure or _cluster() is not None:
        _host, _, port = kafka_bootstrap().split(",")[0].rpartition(":")
        started = time.monotonic()
        cluster = LocalCluster(tickflow_home(), args.host or "127.0.0.1")
        layout = cluster.start(args.nodes, args.port or int(port), timeout=args.timeout, on_progress=say,
                               secure=args.secure)
        print(f"Kafka cluster of {len(layout.ports)} nodes ready in {time.monotonic() - started:.1f}s "
              f"(home {tickflow_home()})")
        print(f"export KAFKA_BOOTSTRAP={layout.bootstrap}")
        if layout.secure:
            print(f"SASL/SCRAM-SHA-512 and ACLs: a service loads its credentials with "
                  f"`set -a; . {cluster.credentials_dir}/<ingestor|streams|trader|paper|admin>.env; set +a`")
        return 0
    broker = _broker(args)
    info = broker.start(timeout=args.timeout, on_progress=say)
    print(f"Kafka {info.version} ready at {info.bootstrap} in {info.ready_s:.1f}s "
          f"(pid {info.pid}, home {info.home})")
    print(f"export KAFKA_BOOTSTRAP={info.bootstrap}")
    return 0


def _stop(args: argparse.Namespace) -> int:
    from infra.kafka.broker import BrokerError, LocalBroker

    cluster = _cluster()
    if cluster is not None:
        for node in cluster.stop(args.node, timeout=args.timeout):
            print(f"stopped node {node.node_id} at {node.bootstrap} (pid {node.pid})")
        return 0
    if args.node is not None:
        raise BrokerError(f"--node {args.node}: no cluster was started from {tickflow_home()}")
    broker = LocalBroker(tickflow_home())
    info = broker.stop(timeout=args.timeout)
    if info is None:
        print(f"no broker started from {broker.home} is running")
        return 0
    print(f"stopped Kafka {info.version} at {info.bootstrap} (pid {info.pid})")
    return 0


def _kill(args: argparse.Namespace) -> int:
    from infra.kafka.broker import BrokerError

    cluster = _cluster()
    if cluster is None:
        raise BrokerError(f"--node {args.node}: no cluster was started from {tickflow_home()}")
    info = cluster.kill(args.node)
    if info is None:
        print(f"node {args.node} was not running")
        return 0
    print(f"killed node {args.node} at {info.bootstrap} (pid {info.pid}, SIGKILL)")
    return 0


def _status(args: argparse.Namespace) -> int:
    from infra.kafka.admin import describe_topics
    from infra.kafka.broker import LocalBroker

    cluster = _cluster()
    if cluster is not None:
        nodes = cluster.status()
        for node in nodes:
            print(node.line())
        return 0 if any(n.info for n in nodes) else 1
    info = LocalBroker(tickflow_home()).running()
    if info is None:
        print(f"no broker started from {tickflow_home()} is running")
        return 1
    uptime = time.time() - info.started_ms / 1000
    topics = describe_topics(info.bootstrap)
    print(f"pid {info.pid}\naddress {info.bootstrap}\nversion {info.version}\n"
          f"uptime {uptime:.0f}s\ntopics {len(topics)}\nhome {info.home}")
    return 0


def _topics(args: argparse.Namespace) -> int:
    from infra.kafka.admin import describe_topics

    prefix = topic_prefix()
    for name, partitions in describe_topics(kafka_bootstrap()).items():
        if name.startswith(prefix):
            print(f"{name}\t{partitions}")
    return 0


def _create_topics(args: argparse.Namespace) -> int:
    from infra.kafka.admin import ensure_topics, wait_ready

    bootstrap = kafka_bootstrap()
    wait_ready(bootstrap, timeout=60)
    created = ensure_topics(bootstrap)
    print(f"created {len(created)} topics at {bootstrap}: {' '.join(sorted(created)) or '(all existed)'}")
    return 0


def _acls(args: argparse.Namespace) -> int:
    from infra.kafka import acls

    bootstrap = kafka_bootstrap()
    sent = acls.apply(bootstrap, os.environ)
    print(f"{sent} ACL bindings for {', '.join(acls.grants())} at {bootstrap} (topic prefix {topic_prefix()!r})")
    return 0


def _provision(args: argparse.Namespace) -> int:
    from infra.kafka.java import find_java
    from infra.kafka.lockfile import read_lock
    from infra.kafka.provision import provision

    java = find_java()
    folder = provision()
    print(f"Kafka {read_lock().kafka_version}: jars verified in {folder}; Java {java.major} at {java.path}")
    return 0


def _lock(args: argparse.Namespace) -> int:
    from infra.kafka.lockfile import LOCK, generate

    lock = generate()
    print(f"wrote {LOCK}: Kafka {lock.kafka_version}, {len(lock.artifacts)} jars")
    return 0


def _dump(args: argparse.Namespace) -> int:
    from infra.kafka.dump import dump

    known = find(args.topic)
    if known is None:
        import difflib

        from contracts.topics import REGISTRY
        from infra.kafka.admin import describe_topics

        on_broker = describe_topics(kafka_bootstrap())
        if args.topic not in on_broker:
            names = sorted({*on_broker, *(t.base for t in REGISTRY.values())})
            close = difflib.get_close_matches(args.topic, names, n=1)
            hint = f"did you mean {close[0]}?" if close else "`tickflow kafka topics` lists them"
            raise ValueError(f"no topic {args.topic!r} on the broker or in the registry: {hint}")
    dump(kafka_bootstrap(), args.topic if known is None else known.name, args.timeout, args.max, args.meta)
    return 0


def use_local_broker_address() -> None:
    """When KAFKA_BOOTSTRAP is unset and this home runs a broker (or a cluster), point every command at it."""
    if "KAFKA_BOOTSTRAP" in os.environ:
        return
    cluster = _cluster()
    if cluster is not None:
        layout = cluster.layout()
        if layout is not None and any(n.info for n in cluster.status()):
            os.environ["KAFKA_BOOTSTRAP"] = layout.bootstrap
        return
    info_file = tickflow_home() / "kafka" / "broker.json"
    if info_file.exists():
        from infra.kafka.broker import LocalBroker

        info = LocalBroker(tickflow_home()).running()
        if info is not None:
            os.environ["KAFKA_BOOTSTRAP"] = info.bootstrap
