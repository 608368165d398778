"""The transaction floor's loop: the trader's Kafka work without the trader, run as a process of its own as
`tickflow trade` is (``python -m bench.txn_floor BOOTSTRAP ORDERS_JSON [PREFIX]``).

It reads ``bench.txn.in`` from the start and, for each record whose offset ORDERS_JSON lists, puts the listed
records (the orders the trader decides on that feature, computed offline by the same handler) on
``bench.txn.out`` with the consumed offsets in one transaction. The loop is the trader's: poll, take what else
is there, one transaction per batch that has output, a batch without output opens none (its offsets ride with
the next); the trader's consumer and transactional producer settings; plain confluent-kafka calls, no
decision, no portfolio snapshot. Stops on SIGTERM. PREFIX goes before the topic names, the group and the
transactional id (one set per round of bench/feature_to_order.py, as the trader's round has its topic prefix).

For diagnosis only (bench/trace_stages.py ``--variants``; never in ``make bench``), ``TXN_FLOOR_ADD`` adds one
piece of the trader's own work at a time: ``snapshot`` one record on a one-partition topic in each
transaction (the trader's portfolio snapshot), ``side`` a second consumer on eight idle partitions read with
``consume(timeout=0)`` each step (the trader's fills and market events), ``transact`` the transaction through
``kafka_io.transact`` (its calls handed to the transactional-call thread) instead of plain calls.
"""

from __future__ import annotations

import base64
import json
import os
import sys
from pathlib import Path

from confluent_kafka import TopicPartition

from contracts import kafka_io

IN, OUT = "bench.txn.in", "bench.txn.out"
SNAPSHOT, SIDE = "bench.txn.portfolio", "bench.txn.side"  # TXN_FLOOR_ADD's topics: 1 and 8 partitions
ADDITIONS = ("snapshot", "side", "transact")
PARTITIONS = 4
GROUP = "bench-txn-floor"
BATCH = 500  # the trader's default TRADER__BATCH


def main(argv: list[str]) -> int:
    if len(argv) not in (2, 3):
        raise SystemExit("usage: python -m bench.txn_floor BOOTSTRAP ORDERS_JSON [PREFIX]")
    bootstrap, orders_json, prefix = (*argv, "")[:3]
    in_topic, out_topic, group = prefix + IN, prefix + OUT, prefix + GROUP
    orders = {int(offset): [base64.b64decode(v) for v in values]
              for offset, values in json.loads(Path(orders_json).read_text()).items()}
    add = {a for a in os.environ.get("TXN_FLOOR_ADD", "").split(",") if a}
    if add - set(ADDITIONS):
        raise SystemExit(f"TXN_FLOOR_ADD={os.environ['TXN_FLOOR_ADD']!r}: each must be one of {ADDITIONS}")
    stopper = kafka_io.Stopper()
    stopper.install()
    features = kafka_io.consumer(bootstrap, group)
    features.assign([TopicPartition(in_topic, p, 0) for p in range(PARTITIONS)])
    side = kafka_io.consumer(bootstrap, f"{group}-side") if "side" in add else None
    if side is not None:
        side.assign([TopicPartition(prefix + SIDE, p, -2) for p in range(8)])
    producer = kafka_io.transactional_producer(bootstrap, group)
    snapshot = (prefix + SNAPSHOT, b"x" * 300, b"bench")
    try:
        while not stopper.stopped:
            first = features.poll(0.05)
            if side is not None:
                side.consume(BATCH, timeout=0)
            if first is None:
                continue
            msgs = [first, *features.consume(BATCH, timeout=0)]
            out = [(out_topic, v, m.key()) for m in msgs if kafka_io.usable(m)
                   for v in orders.get(m.offset() or 0, [])]
            if out and "snapshot" in add:
                out.append(snapshot)
            if out and "transact" in add:
                kafka_io.transact(producer, out, lambda: (features.position(features.assignment()),
                                                          features.consumer_group_metadata()))
            elif out:
                producer.begin_transaction()
                for topic, value, key in out:
                    producer.produce(topic, value, key)
                producer.send_offsets_to_transaction(features.position(features.assignment()),
                                                     features.consumer_group_metadata())
                producer.commit_transaction()
    finally:
        features.close()
        if side is not None:
            side.close()
        producer.flush(10)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
