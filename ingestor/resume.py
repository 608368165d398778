"""`tickflow ingest replay --resume`: skip the trades market.trades already holds for each key.

"Already holds" is defined per key (``exchange:symbol``) by the key's last trade on the topic: the
highest (event time, trade id) among the key's records in the newest stretch of its partition that
holds any (ids compare as integers when numeric, as text otherwise). A replayed trade is skipped when
its (event time, trade id) is at most that; the rest is produced. A dump or candle file runs in
event-time and id order, so a replay that stopped part way, or ran to its end, resumes after the
last trade that landed and adds nothing twice. Without ``--resume`` a re-run produces every trade
again (README, Ingestor: what each consumer then does with the repeats).

Cost: a key's partition is read back from its end in stretches of STRETCH records until one holds the
key, so a key the topic does not hold at all costs one read of the whole topic.
"""

from __future__ import annotations

import logging
import time

from confluent_kafka import Consumer, KafkaException, TopicPartition

from contracts.client_config import client_config
from contracts.errors import ContractError
from contracts.messages import Trade
from contracts.serde import decode
from contracts.topics import MARKET_TRADES

log = logging.getLogger(__name__)

STRETCH = 50_000  # records read at a time, walking a partition back from its end
Order = tuple[int, int, int, str]  # (ts_event, 0, numeric id, "") or (ts_event, 1, 0, id)


def trade_order(t: Trade) -> Order:
    tid = t.trade_id
    return (t.ts_event, 0, int(tid), "") if tid.isdigit() else (t.ts_event, 1, 0, tid)


class ResumePoint:
    """The last trade per key on market.trades, read once per key when first asked."""

    def __init__(self, bootstrap: str) -> None:
        self.bootstrap = bootstrap
        self.last: dict[bytes, Order | None] = {}
        self.skipped = 0

    def held(self, key: bytes, t: Trade) -> bool:
        """True when the topic already holds ``t`` (see the module's text)."""
        if key not in self.last:
            self.last[key] = self._read_last(key)
        last = self.last[key]
        if last is not None and trade_order(t) <= last:
            self.skipped += 1
            return True
        return False

    def _read_last(self, key: bytes) -> Order | None:
        c = Consumer({**client_config(self.bootstrap), "group.id": "tickflow-replay-resume",
                      "enable.auto.commit": False, "isolation.level": "read_committed", "log_level": 3})
        started = time.perf_counter()
        try:
            meta = c.list_topics(MARKET_TRADES.name, timeout=10).topics.get(MARKET_TRADES.name)
            if meta is None or meta.error is not None:
                raise KafkaException(f"{MARKET_TRADES.name} is not available: {meta.error if meta else 'missing'}")
            for p in sorted(meta.partitions):
                low, high = c.get_watermark_offsets(TopicPartition(MARKET_TRADES.name, p), timeout=10)
                end = high
                while end > low:
                    begin = max(low, end - STRETCH)
                    best = self._stretch(c, p, begin, end, key)
                    if best is not None:
                        log.info("--resume: the last trade of %s on %s[%d] is at %d (id %s), below offset %d; "
                                 "read in %.2f s.", key.decode(), MARKET_TRADES.name, p, best[0], best[2] or best[3],
                                 end, time.perf_counter() - started)
                        return best
                    end = begin
        finally:
            c.close()
        log.info("--resume: %s holds no trade of %s.", MARKET_TRADES.name, key.decode())
        return None

    @staticmethod
    def _stretch(c: Consumer, partition: int, begin: int, end: int, key: bytes) -> Order | None:
        c.assign([TopicPartition(MARKET_TRADES.name, partition, begin)])
        best: Order | None = None
        idle_until = time.monotonic() + 10
        while time.monotonic() < idle_until:
            batch = c.consume(5_000, timeout=0.5)
            if not batch:
                if c.position([TopicPartition(MARKET_TRADES.name, partition)])[0].offset >= end:
                    break
                continue
            idle_until = time.monotonic() + 10
            for m in batch:
                if m.error() is not None or (m.offset() or 0) >= end:
                    continue
                if m.key() == key:
                    try:
                        order = trade_order(decode(m.value() or b"", Trade))
                    except ContractError:
                        continue  # not a trade: the consumers' dead-letter topics hold such records
                    best = order if best is None or order > best else best
            if c.position([TopicPartition(MARKET_TRADES.name, partition)])[0].offset >= end:
                break
        return best
