"""Gap detection and de-duplication by each venue's rules.

Per product, numeric trade ids are contiguous (Binance ``t``, Coinbase ``trade_id``, Kraken
``trade_id``, OKX ``tradeId`` with ``count`` trades aggregated ending at it). A trade whose id is at or
below the last one seen is a repeat (typically replayed after a reconnect or in a snapshot) and is
dropped; an id beyond the next expected one opens a gap, reported as a ``market.events`` gap event
naming the missing range. Coinbase Advanced Trade also numbers every frame of a connection
(``sequence_num``): a jump there is a gap on the connection, whatever channel it hit.
"""

from __future__ import annotations

from collections import OrderedDict
from dataclasses import dataclass

from contracts.messages import V1, MarketEvent, Trade

CONNECTION = "*"  # the symbol of events that concern a whole connection


@dataclass(slots=True)
class Outcome:
    """What to publish for one frame's trades: the new trades and the gap events before them."""

    trades: list[Trade]
    gaps: list[MarketEvent]
    duplicates: int


class Sequencer:
    """Tracks the last trade id per (exchange, venue symbol) and the connection sequence."""

    def __init__(self, recent_ids: int = 50_000) -> None:
        self._last: dict[tuple[str, str], int] = {}
        self._recent: OrderedDict[tuple[str, str, str], None] = OrderedDict()  # non-numeric ids
        self._recent_max = recent_ids
        self._seq: int | None = None

    def new_connection(self) -> None:
        """Sequence numbers restart on every connection (trade ids do not)."""
        self._seq = None

    def check_sequence(self, exchange: str, seq: int, ts: int) -> MarketEvent | None:
        previous, self._seq = self._seq, seq
        if previous is None or seq == previous + 1:
            return None
        if seq <= previous:
            return MarketEvent(schema_version=V1, exchange=exchange, symbol=CONNECTION, kind="gap", ts=ts,
                               detail=f"sequence_num went back from {previous} to {seq}")
        return MarketEvent(schema_version=V1, exchange=exchange, symbol=CONNECTION, kind="gap", ts=ts,
                           first_missing=str(previous + 1), last_missing=str(seq - 1), count=seq - previous - 1,
                           detail="sequence_num gap on the connection: frames of any channel were lost")

    def accept(self, trades: list[Trade], counts: list[int] | None, ts: int) -> Outcome:
        """Order one frame's trades by id, drop repeats, report gaps."""
        if len(trades) > 1:
            order = sorted(range(len(trades)), key=lambda i: _numeric(trades[i].trade_id) or -1)
            trades = [trades[i] for i in order]
            counts = [counts[i] for i in order] if counts else None
        kept: list[Trade] = []
        gaps: list[MarketEvent] = []
        duplicates = 0
        for i, trade in enumerate(trades):
            tid = _numeric(trade.trade_id)
            if tid is None:
                if self._seen_before(trade):
                    duplicates += 1
                else:
                    kept.append(trade)
                continue
            span = counts[i] if counts else 1
            key = (trade.exchange, trade.venue_symbol)
            last = self._last.get(key)
            if last is not None and tid <= last:
                duplicates += 1
                continue
            first = tid - span + 1
            if last is not None and first > last + 1:
                gaps.append(gap_event(trade.exchange, trade.symbol, last + 1, first - 1, ts, "trade ids skipped"))
            self._last[key] = tid
            kept.append(trade)
        return Outcome(kept, gaps, duplicates)

    def last_trade(self, exchange: str, venue_symbol: str, symbol: str, last_id: int, ts: int) -> MarketEvent | None:
        """The venue says its last trade was ``last_id`` (Coinbase Exchange heartbeat): a gap if we lack some."""
        key = (exchange, venue_symbol)
        last = self._last.get(key)
        if last is None or last_id <= last:
            return None
        self._last[key] = last_id
        return gap_event(exchange, symbol, last + 1, last_id, ts, "the heartbeat's last_trade_id is ahead of us")

    def _seen_before(self, trade: Trade) -> bool:
        key = (trade.exchange, trade.venue_symbol, trade.trade_id)
        if key in self._recent:
            return True
        self._recent[key] = None
        if len(self._recent) > self._recent_max:
            self._recent.popitem(last=False)
        return False


def gap_event(exchange: str, symbol: str, first: int, last: int, ts: int, why: str) -> MarketEvent:
    return MarketEvent(schema_version=V1, exchange=exchange, symbol=symbol, kind="gap", ts=ts,
                       first_missing=str(first), last_missing=str(last), count=last - first + 1,
                       detail=f"{why}: trades {first}..{last} missing")


def _numeric(trade_id: str) -> int | None:
    return int(trade_id) if trade_id.isascii() and trade_id.isdigit() and len(trade_id) < 19 else None
