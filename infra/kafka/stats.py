"""`tickflow topic stats`: per topic its partitions, records, bytes on disk and each consumer group's lag.

- records: the offsets each partition holds (end minus first offset), summed; on a topic written in
  transactions (orders, fills, portfolio) each transaction's commit marker takes one offset too, and on a
  compacted topic the records compaction removed still count until their segment is cleaned.
- bytes: the size of each partition's log on the broker, from Kafka's DescribeLogDirs API. The Python
  client has no call for it (confluent-kafka 2.16), so Kafka's own ``LogDirsCommand`` (the jars of the
  local broker, one JVM start, about 3 s) asks; a partition replicated on several brokers counts once.
- lag: per consumer group, the end offset minus the group's committed offset, summed over the partitions
  it committed (what ``kafka-consumer-groups.sh --describe`` shows). A transactional reader commits the
  offset after its last record, before that transaction's marker, and Faust commits the offset of the last
  record it processed, so a group that is caught up can show a lag of about one per partition.
"""

from __future__ import annotations

import json
import logging
import subprocess
from dataclasses import dataclass, field

from confluent_kafka import ConsumerGroupTopicPartitions, KafkaException, TopicPartition

from contracts import kafka_io
from infra.kafka.admin import admin

log = logging.getLogger(__name__)


@dataclass
class TopicStats:
    name: str
    partitions: int
    records: int = 0
    bytes: int | None = None  # None: the log dirs could not be asked (logged)
    lag: dict[str, int] = field(default_factory=dict)  # consumer group -> lag

    def line(self, width: int) -> str:
        size = "?" if self.bytes is None else f"{self.bytes:,}"
        groups = ", ".join(f"{g} {lag:,}" for g, lag in sorted(self.lag.items())) or "-"
        return f"{self.name:<{width}}  {self.partitions:>10}  {self.records:>12,}  {size:>14}  {groups}"


HEADER = ("TOPIC", "PARTITIONS", "RECORDS", "BYTES", "CONSUMER GROUPS (LAG)")


def header(width: int) -> str:
    t, p, r, b, g = HEADER
    return f"{t:<{width}}  {p:>10}  {r:>12}  {b:>14}  {g}"


def topic_stats(bootstrap: str, topics: dict[str, int]) -> list[TopicStats]:
    """The stats of ``topics`` (name -> partition count) at ``bootstrap``."""
    rows = {name: TopicStats(name, n) for name, n in topics.items()}
    ends: dict[tuple[str, int], int] = {}
    c = kafka_io.consumer(bootstrap, "tickflow-topic-stats")
    try:
        for name in rows:
            for tp in kafka_io.partitions(c, name):
                low, high = c.get_watermark_offsets(tp, timeout=10)
                ends[name, tp.partition] = high
                rows[name].records += high - low
    finally:
        c.close()
    sizes = log_dir_sizes(bootstrap, list(rows))
    if sizes is not None:
        for name, row in rows.items():
            row.bytes = sum(sizes.get((name, p), 0) for p in range(row.partitions))
    for group, committed in group_offsets(bootstrap).items():
        for (name, p), off in committed.items():
            if name in rows and (name, p) in ends:
                rows[name].lag[group] = rows[name].lag.get(group, 0) + max(0, ends[name, p] - off)
    return list(rows.values())


def group_offsets(bootstrap: str) -> dict[str, dict[tuple[str, int], int]]:
    """Every consumer group's committed offsets: group -> (topic, partition) -> offset."""
    client = admin(bootstrap)
    listed = client.list_consumer_groups(request_timeout=10).result()
    out: dict[str, dict[tuple[str, int], int]] = {}
    for g in sorted(listed.valid, key=lambda g: g.group_id):
        fut = client.list_consumer_group_offsets([ConsumerGroupTopicPartitions(g.group_id)],
                                                 request_timeout=10)[g.group_id]
        try:
            tps: list[TopicPartition] = fut.result().topic_partitions or []
        except KafkaException as err:  # the group went away between the two calls
            log.info("Consumer group %s: no offsets (%s).", g.group_id, err)
            continue
        committed = {(tp.topic, tp.partition): tp.offset for tp in tps if tp.offset >= 0}
        if committed:
            out[g.group_id] = committed
    return out


def log_dir_sizes(bootstrap: str, topics: list[str], timeout: float = 60.0) -> dict[tuple[str, int], int] | None:
    """(topic, partition) -> bytes of its log (the largest replica), via Kafka's LogDirsCommand; None
    (logged as a warning) when Java or the Kafka jars are missing or the command fails."""
    from infra.kafka.java import PrerequisiteError, find_java
    from infra.kafka.provision import jar_dir

    jars = jar_dir()
    try:
        java = find_java()
    except PrerequisiteError as err:
        log.warning("No bytes per topic: %s", err)
        return None
    if not any(jars.glob("kafka-tools-*.jar")):
        log.warning("No bytes per topic: the Kafka tools jar is not in %s (run `tickflow kafka provision`).", jars)
        return None
    cmd = [str(java.path), "-Xmx128m", "-cp", f"{jars}/*", "org.apache.kafka.tools.LogDirsCommand",
           "--bootstrap-server", bootstrap, "--describe", "--topic-list", ",".join(topics)]
    try:
        done = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout)
    except subprocess.TimeoutExpired:
        log.warning("No bytes per topic: Kafka's LogDirsCommand gave no answer within %.0f s.", timeout)
        return None
    reply = next((line for line in done.stdout.splitlines() if line.startswith("{")), None)
    if done.returncode != 0 or reply is None:
        log.warning("No bytes per topic: Kafka's LogDirsCommand failed (exit %d): %s", done.returncode,
                    (done.stderr.strip().splitlines() or ["no output"])[-1])
        return None
    sizes: dict[tuple[str, int], int] = {}
    for broker in json.loads(reply)["brokers"]:
        for log_dir in broker["logDirs"]:
            for part in log_dir["partitions"]:
                name, _, p = part["partition"].rpartition("-")
                sizes[name, int(p)] = max(sizes.get((name, int(p)), 0), int(part["size"]))
    return sizes
