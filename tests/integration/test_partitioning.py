"""Every producer puts a key on the partition Java clients, Kafka Streams and ksqlDB look it up on.

murmur2 is written here from Java's ``org.apache.kafka.common.utils.Utils.murmur2`` (not imported from
any client), checked against vectors computed with Kafka 4.1.1's own kafka-clients jar, and then
compared with the partition each producer path of the project picked, read back from a real broker.
"""

from __future__ import annotations

import ast
import functools
import uuid
from pathlib import Path
from typing import Any

import pytest
from confluent_kafka import Consumer, Producer, TopicPartition

from contracts import Topic, Trade
from contracts.client_config import PARTITIONER, check_copartitioned, client_config, producer_config
from contracts.errors import SettingsError
from contracts.topics import MARKET_TRADES, SIGNALS_BARS, SIGNALS_FEATURES, market_key
from infra.kafka.admin import ensure_topics
from infra.kafka.broker import BrokerInfo
from tests.helpers import REPO

KEYS = [market_key(venue, f"{base}-{quote}") for venue in ("binance", "coinbase", "okx", "kraken")
        for base in ("BTC", "ETH", "SOL", "XRP", "DOGE") for quote in ("USDT", "USD")]


def murmur2(data: bytes) -> int:
    """Java's Utils.murmur2: MurmurHash2, seed 0x9747b28c, as a signed 32-bit int."""
    m, r, mask = 0x5BD1E995, 24, 0xFFFFFFFF
    length = len(data)
    h = (0x9747B28C ^ length) & mask
    for i in range(0, length - length % 4, 4):
        k = int.from_bytes(data[i:i + 4], "little")
        k = (k * m) & mask
        k ^= k >> r
        k = (k * m) & mask
        h = (h * m) & mask
        h ^= k
    tail = length % 4
    base = length - tail
    if tail == 3:
        h ^= data[base + 2] << 16
    if tail >= 2:
        h ^= data[base + 1] << 8
    if tail >= 1:
        h ^= data[base]
        h = (h * m) & mask
    h ^= h >> 13
    h = (h * m) & mask
    h ^= h >> 15
    return h - (1 << 32) if h & 0x80000000 else h


def java_partition(key: bytes, partitions: int) -> int:
    """Kafka's default partitioner for a keyed record: toPositive(murmur2(key)) % partitions."""
    return (murmur2(key) & 0x7FFFFFFF) % partitions


def test_murmur2_is_java_s() -> None:
    # Utils.murmur2 and toPositive(...) % 4 from kafka-clients-4.1.1.jar (jshell), and Kafka's UtilsTest vectors.
    for key, value, part in [(b"21", -973932308, 0), (b"foobar", -790332482, 2),
                             (b"a-little-bit-long-string", -985981536, 0), (b"abc", 479470107, 3),
                             (b"binance:BTC-USDT", 646878651, 3), (b"binance:ETH-USDT", 331253766, 2),
                             (b"coinbase:BTC-USD", 300975881, 1)]:
        assert murmur2(key) == value and java_partition(key, 4) == part, key


def test_faust_s_producer_hashes_with_murmur2() -> None:
    """Faust's aiokafka producer uses aiokafka's DefaultPartitioner unless ``producer_partitioner`` is set
    (the worker leaves it unset: checked in the test below, on the worker's own app)."""
    from aiokafka.partitioner import DefaultPartitioner

    for n in (4, 7):
        assert [DefaultPartitioner()(k, list(range(n)), list(range(n))) for k in KEYS] == [
            java_partition(k, n) for k in KEYS]


def _read_partitions(bootstrap: str, topic: str, partitions: int, records: int) -> dict[bytes, set[int]]:
    """key -> the partitions its records were read from (read_committed, ``records`` of them)."""
    c = Consumer({**client_config(bootstrap), "group.id": f"partitioning-{uuid.uuid4().hex[:6]}",
                  "enable.auto.commit": False, "isolation.level": "read_committed"})
    seen: dict[bytes, set[int]] = {}
    try:
        c.assign([TopicPartition(topic, p, 0) for p in range(partitions)])
        n = 0
        while n < records:
            m = c.poll(10)
            assert m is not None, f"{topic}: {n} of {records} records read, then nothing for 10 s"
            if m.error():
                continue
            n += 1
            seen.setdefault(m.key() or b"", set()).add(m.partition() or 0)
    finally:
        c.close()
    return seen


def _producer_paths(bootstrap: str, tmp: Path) -> dict[str, object]:
    """The producer of each service, built the way the service builds it."""
    from contracts import kafka_io
    from ingestor.publisher import Publisher
    from streams.app import build
    from streams.spec import StreamsSettings

    worker = build(StreamsSettings(app_id=f"partitioning-{uuid.uuid4().hex[:6]}"), bootstrap, tmp / "streams")
    conf: Any = worker.app.conf  # faust's Settings types the partitioner as a method
    assert conf.producer_partitioner is None  # Faust's own producer: aiokafka's murmur2 partitioner
    paths: dict[str, object] = {
        "ingestor (Publisher: replay, live, demo)": Publisher(bootstrap, reports="all"),
        "streams worker (bars and features out)": worker.producer,
        "trader (transactional orders)": kafka_io.transactional_producer(bootstrap, f"part-t-{uuid.uuid4().hex}"),
        "paper broker (transactional fills)": kafka_io.transactional_producer(bootstrap, f"part-p-{uuid.uuid4().hex}"),
        "test and bench producers (producer_config)": Producer(producer_config(bootstrap)),
    }
    worker.consumer.close()
    return paths


@pytest.mark.integration
@pytest.mark.parametrize("partitions", [4, 7])
def test_every_producer_path_puts_a_key_where_java_clients_look(broker: BrokerInfo, tmp_path: Path,
                                                                partitions: int) -> None:
    from ingestor.publisher import Publisher

    for name, producer in _producer_paths(broker.bootstrap, tmp_path).items():
        topic = f"test.partitioning.{uuid.uuid4().hex[:8]}"
        ensure_topics(broker.bootstrap, [Topic(topic, "exchange:symbol", Trade, partitions)])
        if isinstance(producer, Publisher):
            for k in KEYS:
                producer.produce(topic, b"{}", k)
            assert producer.flush(30) == 0 and producer.failed == 0
        else:
            assert isinstance(producer, Producer)
            transactional = name.startswith(("trader", "paper"))
            if transactional:
                producer.begin_transaction()
            for k in KEYS:
                producer.produce(topic, key=k, value=b"{}")
            if transactional:
                producer.commit_transaction(30)
            assert producer.flush(30) == 0
        got = _read_partitions(broker.bootstrap, topic, partitions, len(KEYS))
        assert {k: got.get(k) for k in KEYS} == {k: {java_partition(k, partitions)} for k in KEYS}, name


@pytest.mark.integration
def test_librdkafka_s_default_partitioner_would_put_keys_elsewhere(broker: BrokerInfo) -> None:
    """What the shared config prevents (and why the test above can fail): CRC32 places keys differently."""
    topic = f"test.partitioning.crc.{uuid.uuid4().hex[:8]}"
    ensure_topics(broker.bootstrap, [Topic(topic, "exchange:symbol", Trade, 4)])
    p = Producer(client_config(broker.bootstrap))  # librdkafka's default: consistent_random
    for k in KEYS:
        p.produce(topic, key=k, value=b"{}")
    assert p.flush(30) == 0
    got = _read_partitions(broker.bootstrap, topic, 4, len(KEYS))
    moved = [k for k in KEYS if got[k] != {java_partition(k, 4)}]
    assert len(moved) >= len(KEYS) // 3, moved  # about three keys in four land elsewhere
    assert producer_config(broker.bootstrap)["partitioner"] == PARTITIONER == "murmur2_random"
    with pytest.raises(SettingsError, match="partitioner='consistent_random' is refused"):
        producer_config(broker.bootstrap, {"partitioner": "consistent_random"})


@pytest.mark.integration
def test_copartitioned_topics_are_checked_at_start(broker: BrokerInfo) -> None:
    c = Consumer({**client_config(broker.bootstrap), "group.id": "partitioning-check"})
    try:
        assert check_copartitioned(c, (MARKET_TRADES, SIGNALS_BARS, SIGNALS_FEATURES)) == {
            MARKET_TRADES.name: 4, SIGNALS_BARS.name: 4, SIGNALS_FEATURES.name: 4}
        odd = Topic(f"test.partitioning.odd.{uuid.uuid4().hex[:6]}", "exchange:symbol", Trade, 2)
        ensure_topics(broker.bootstrap, [odd])
        with pytest.raises(SettingsError, match=rf"market.trades has 4, {odd.name} has 2\): their keys would not"):
            check_copartitioned(c, (MARKET_TRADES, odd))
    finally:
        c.close()


# The static half: no producer in the tree is built without the shared settings, and no consumer or admin
# client of the shipped code without the shared client settings (the SASL identity of a secure cluster).
_SOURCE_DIRS = ("bench", "contracts", "infra", "ingestor", "streams", "tests", "tickflow", "trader")
_SHIPPED_DIRS = ("bench", "contracts", "infra", "ingestor", "paper", "streams", "tickflow", "trader")


def _calls_shared_config(node: ast.AST, module: ast.Module, func: ast.AST | None,
                         shared: str = "producer_config") -> bool:
    """Is ``node`` (the first argument of a ``Producer(...)``, ``Consumer(...)``, ...) the result of the shared
    ``shared`` (``contracts.client_config.producer_config`` or ``client_config``), or a dict that unpacks it?"""
    if isinstance(node, ast.Call):
        name = node.func.attr if isinstance(node.func, ast.Attribute) else getattr(node.func, "id", "")
        if name != shared:  # a helper of the module's own (``self.consumer_config()``) must return the shared result
            helper = [n for n in ast.walk(module) if isinstance(n, ast.FunctionDef) and n.name == name]
            returns = [r.value for f in helper for r in ast.walk(f)
                       if isinstance(r, ast.Return) and r.value is not None]
            return bool(returns) and all(_calls_shared_config(r, module, helper[0], shared) for r in returns)
        if isinstance(node.func, ast.Attribute):  # client_config.producer_config(...)
            return getattr(node.func.value, "id", "") == "client_config"
        imported = any(isinstance(n, ast.ImportFrom) and n.module == "contracts.client_config"
                       and any(a.name == shared and a.asname is None for a in n.names)
                       for n in ast.walk(module))
        local = [n for n in module.body if isinstance(n, ast.FunctionDef) and n.name == shared]
        if local:  # a module's own producer_config must return the shared one's result
            returns = [n.value for n in ast.walk(local[0]) if isinstance(n, ast.Return) and n.value is not None]
            return bool(returns) and all(_calls_shared_config(r, module, local[0], shared) for r in returns)
        return imported
    if isinstance(node, ast.Dict) and shared == "client_config":  # {**client_config(...), "group.id": ...}
        return any(k is None and _calls_shared_config(v, module, func, shared)
                   for k, v in zip(node.keys, node.values, strict=True))
    if isinstance(node, ast.Name) and func is not None:  # config = producer_config(...); Producer(config, ...)
        values = [n.value for n in ast.walk(func) if isinstance(n, ast.Assign | ast.AnnAssign) and n.value is not None
                  and any(isinstance(t, ast.Name) and t.id == node.id
                          for t in (n.targets if isinstance(n, ast.Assign) else [n.target]))]
        return bool(values) and all(_calls_shared_config(v, module, func, shared) for v in values)
    return False


@functools.cache
def _parsed(path: Path) -> tuple[ast.Module, list[ast.FunctionDef | ast.AsyncFunctionDef], list[ast.Call]]:
    """A module's tree, its functions and its calls (parsed once for both checks)."""
    module = ast.parse(path.read_text(), str(path))
    nodes = list(ast.walk(module))
    return (module, [n for n in nodes if isinstance(n, (ast.FunctionDef, ast.AsyncFunctionDef))],
            [n for n in nodes if isinstance(n, ast.Call)])


def _clients_bypassing(dirs: tuple[str, ...], classes: tuple[str, ...], shared: str) -> tuple[int, list[str]]:
    """How many ``classes(...)`` calls the modules under ``dirs`` make, and where one is not built from ``shared``."""
    checked, bad = 0, []
    for path in sorted(p for d in dirs for p in (REPO / d).rglob("*.py")):
        module, funcs, calls = _parsed(path)
        for call in calls:
            name = call.func.attr if isinstance(call.func, ast.Attribute) else getattr(call.func, "id", "")
            if name not in classes:
                continue
            func = next((f for f in funcs if f.lineno <= call.lineno <= (f.end_lineno or f.lineno)
                         and not any(g is not f and f.lineno < g.lineno <= call.lineno <= (g.end_lineno or 0)
                                     for g in funcs)), None)
            where = f"{path.relative_to(REPO)}:{call.lineno}"
            if where == "tests/integration/test_partitioning.py:" + str(_CRC_LINE):
                continue  # the one deliberate librdkafka default, to show what the shared config prevents
            checked += 1
            if not call.args or not _calls_shared_config(call.args[0], module, func, shared):
                bad.append(where)
    return checked, bad


def test_no_producer_in_the_tree_bypasses_producer_config() -> None:
    checked, bad = _clients_bypassing(_SOURCE_DIRS, ("Producer", "SerializingProducer", "AIOProducer"),
                                      "producer_config")
    assert checked >= 14, checked
    assert not bad, f"producers built without contracts.client_config.producer_config: {bad}"


def test_no_consumer_or_admin_client_of_the_shipped_code_bypasses_client_config() -> None:
    checked, bad = _clients_bypassing(_SHIPPED_DIRS, ("Consumer", "AdminClient", "DeserializingConsumer"),
                                      "client_config")
    assert checked >= 16, checked
    assert not bad, f"clients built without contracts.client_config.client_config (no SASL login): {bad}"


_CRC_LINE = next(i for i, line in enumerate(Path(__file__).read_text().splitlines(), start=1)
                 if "librdkafka's default: consistent_random" in line)
