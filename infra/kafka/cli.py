"""`tickflow kafka ...` and `tickflow topic ...`: the local broker and topic inspection."""

from __future__ import annotations

import argparse
import os
import time
from typing import TYPE_CHECKING

from contracts.settings import kafka_bootstrap, tickflow_home
from contracts.topics import Topic, find, topic_prefix

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
    start.add_argument("--port", type=int, default=None, help="listen port (default: KAFKA_BOOTSTRAP's port; 0: a "
                       "free port, or the one this home's broker runs at; the address is printed)")
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
        "dump", help="print a topic's records as JSON lines, from the beginning (or --from-time, or the --last N) "
        "to its end",
        description="Print the topic's values as JSON lines, from the first offset of every partition (or "
        "--from-time, or the --last N) to the end offsets found at start, then stop; --follow (until Ctrl-C) "
        "or --timeout S (until S idle seconds) go on with what arrives. A compacted topic (portfolio) shows "
        "the newest record per key unless --no-latest-per-key.",
    )
    dump.add_argument("topic", help="topic name, e.g. market.trades (a registry name gets TICKFLOW_TOPIC_PREFIX "
                      "unless it already has it)")
    dump.add_argument("--last", type=int, default=None, metavar="N",
                      help="only the last N records of each partition (with --overall: of the whole topic)")
    dump.add_argument("--overall", action="store_true",
                      help="with --last: the N newest records of the whole topic by record time, in time order")
    dump.add_argument("--key", default=None, help="only records with this key, e.g. binance:BTC-USDT")
    dump.add_argument("--from-time", default=None, metavar="T",
                      help="start at the first record at or after T: ISO-8601 (UTC unless it names a zone, e.g. "
                      "2026-12-01T12:00:00Z) or epoch milliseconds")
    dump.add_argument("--latest-per-key", action=argparse.BooleanOptionalAction, default=None,
                      help="only the newest record of each key (default: on for compacted topics, off otherwise)")
    dump.add_argument("--follow", action="store_true", help="after the end, print records as they arrive, until "
                      "Ctrl-C (or until --timeout's idle seconds pass)")
    dump.add_argument("--timeout", type=float, default=0.0, metavar="S",
                      help="after the end, go on printing what arrives until none has for S seconds; 0 stops at "
                      "the end")
    dump.add_argument("--max", type=int, default=None, help="stop after this many records")
    dump.add_argument("--meta", action="store_true", help="wrap each value with topic, partition, offset, timestamp "
                      "and key")
    dump.set_defaults(func=_dump)
    stats = ts.add_parser(
        "stats", help="per topic: partitions, records, bytes on disk and consumer-group lag",
        description="One line per topic (those under TICKFLOW_TOPIC_PREFIX, or the ones named): partitions, "
        "records (offsets held: transaction markers count), bytes of its logs on the broker (Kafka's "
        "LogDirsCommand, a JVM start) and the lag of each consumer group that committed offsets on it.",
    )
    stats.add_argument("topics", nargs="*", help="topic names (default: every topic under the prefix)")
    stats.set_defaults(func=_stats)


def _broker(args: argparse.Namespace) -> LocalBroker:
    from infra.kafka.broker import LocalBroker

    host = getattr(args, "host", None) or kafka_bootstrap().split(",")[0].rpartition(":")[0]
    return LocalBroker(tickflow_home(), host, _listen_port(args, host))


def _listen_port(args: argparse.Namespace, host: str) -> int:
    """``--port``: none given is KAFKA_BOOTSTRAP's port; 0 is the port this home's broker already runs at, else
    a free one; any other port outside 1..65535 is refused."""
    from infra.kafka.broker import BrokerError, LocalBroker, free_port

    port: int | None = getattr(args, "port", None)
    if port is None:
        return int(kafka_bootstrap().split(",")[0].rpartition(":")[2])
    if port == 0:
        running = LocalBroker(tickflow_home(), host).running()
        return running.port if running is not None and running.host == host else free_port(host)
    if not 0 < port < 65536:
        raise BrokerError(f"--port {port}: a listen port is 1 to 65535, or 0 for a free one")
    return port


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
        started = time.monotonic()
        cluster = LocalCluster(tickflow_home(), args.host or "127.0.0.1")
        layout = cluster.start(args.nodes, _listen_port(args, cluster.host), timeout=args.timeout, on_progress=say,
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


def _resolve(name: str, on_broker: dict[str, int] | None = None) -> tuple[str, Topic | None]:
    """A topic's name on the broker and its registry entry; an unknown one names the closest."""
    known = find(name)
    if known is not None:
        return known.name, known
    import difflib

    from contracts.topics import REGISTRY
    from infra.kafka.admin import describe_topics

    on_broker = describe_topics(kafka_bootstrap()) if on_broker is None else on_broker
    if name not in on_broker:
        names = sorted({*on_broker, *(t.base for t in REGISTRY.values())})
        close = difflib.get_close_matches(name, names, n=1)
        hint = f"did you mean {close[0]}?" if close else "`tickflow kafka topics` lists them"
        raise ValueError(f"no topic {name!r} on the broker or in the registry: {hint}")
    return name, None


def _dump(args: argparse.Namespace) -> int:
    from infra.kafka.broker import BrokerError
    from infra.kafka.dump import DumpRequest, check_key, dump, parse_time

    name, known = _resolve(args.topic)
    for option, value in (("--last", args.last), ("--max", args.max)):
        if value is not None and value < 1:
            raise ValueError(f"{option} {value}: give a count of 1 or more")
    if args.overall and args.last is None:
        raise ValueError("--overall goes with --last N")
    if args.timeout < 0:
        raise ValueError(f"--timeout {args.timeout:g}: give 0 (stop at the end) or more seconds")
    if args.key is not None:
        check_key(known, args.key)
    latest = args.latest_per_key if args.latest_per_key is not None else (
        known is not None and known.cleanup == "compact")
    req = DumpRequest(name, last=args.last, overall=args.overall, key=args.key,
                      from_ms=None if args.from_time is None else parse_time(args.from_time),
                      latest_per_key=latest, follow=args.follow or args.timeout > 0,
                      idle_s=args.timeout or float("inf"), limit=args.max, meta=args.meta)
    try:
        dump(kafka_bootstrap(), req)
    except TimeoutError as err:
        raise BrokerError(f"topic dump {name}: {err}") from err
    return 0


def _stats(args: argparse.Namespace) -> int:
    from infra.kafka.admin import describe_topics
    from infra.kafka.stats import header, topic_stats

    on_broker = describe_topics(kafka_bootstrap())
    if args.topics:
        names = [_resolve(t, on_broker)[0] for t in args.topics]
        missing = [n for n in names if n not in on_broker]
        if missing:
            raise ValueError(f"{', '.join(missing)}: in the registry but not on the broker "
                             "(`tickflow kafka create-topics` creates them)")
        topics = {n: on_broker[n] for n in names}
    else:
        prefix = topic_prefix()
        topics = {n: p for n, p in on_broker.items() if n.startswith(prefix)}
    rows = topic_stats(kafka_bootstrap(), topics)
    width = max([len("TOPIC"), *(len(r.name) for r in rows)])
    print(header(width))
    for row in rows:
        print(row.line(width))
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
