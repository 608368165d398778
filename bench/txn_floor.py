"""The transaction floor's loop: the trader's Kafka work without the trader, run as a process of its own as
`tickflow trade` is (``python -m bench.txn_floor BOOTSTRAP ORDERS_JSON``).

It reads ``bench.txn.in`` from the start and, for each record whose offset ORDERS_JSON lists, puts the listed
records (the orders the trader decides on that feature, computed offline by the same handler) on
``bench.txn.out`` with the consumed offsets in one transaction. The loop is the trader's: poll, take what else
is there, one transaction per batch that has output, a batch without output opens none (its offsets ride with
the next); the trader's consumer and transactional producer settings; plain confluent-kafka calls, no
decision, no portfolio snapshot. Stops on SIGTERM.
"""

from __future__ import annotations

import base64
import json
import sys
from pathlib import Path

from confluent_kafka import TopicPartition

from contracts import kafka_io

IN, OUT = "bench.txn.in", "bench.txn.out"
PARTITIONS = 4
GROUP = "bench-txn-floor"
BATCH = 500  # the trader's default TRADER__BATCH


def main(argv: list[str]) -> int:
    bootstrap, orders_json = argv
    orders = {int(offset): [base64.b64decode(v) for v in values]
              for offset, values in json.loads(Path(orders_json).read_text()).items()}
    stopper = kafka_io.Stopper()
    stopper.install()
    features = kafka_io.consumer(bootstrap, GROUP)
    features.assign([TopicPartition(IN, p, 0) for p in range(PARTITIONS)])
    producer = kafka_io.transactional_producer(bootstrap, GROUP)
    try:
        while not stopper.stopped:
            first = features.poll(0.05)
            if first is None:
                continue
            msgs = [first, *features.consume(BATCH, timeout=0)]
            out = [(v, m.key()) for m in msgs if kafka_io.usable(m) for v in orders.get(m.offset() or 0, [])]
            if out:
                producer.begin_transaction()
                for value, key in out:
                    producer.produce(OUT, value, key)
                producer.send_offsets_to_transaction(features.position(features.assignment()),
                                                     features.consumer_group_metadata())
                producer.commit_transaction()
    finally:
        features.close()
        producer.flush(10)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
