"""Kraken v2: the ``trade`` channel.

``side`` is the taker's; ``trade_id`` is a per-pair sequence; prices and quantities are JSON numbers.
Kraken sends a heartbeat about once a second when idle; the client pings with JSON and a ``req_id``.
"""

from __future__ import annotations

from typing import Any

import msgspec

from ingestor.venues.base import (
    Frame,
    ParseError,
    VenueSpec,
    control,
    decode_as,
    iso_ms,
    make_trade,
    positive,
    skip,
    taker,
)

NAME = "kraken"
URL = "wss://ws.kraken.com/v2"


class WireTrade(msgspec.Struct, frozen=True):
    symbol: str
    side: str
    price: float
    qty: float
    ord_type: str
    trade_id: int
    timestamp: str


class Message(msgspec.Struct, frozen=True):
    channel: str | None = None
    type: str | None = None
    data: msgspec.Raw = msgspec.Raw()
    method: str | None = None
    success: bool | None = None
    error: Any = None
    req_id: Any = None


_message = msgspec.json.Decoder(Message)
_trades = msgspec.json.Decoder(list[WireTrade])


def parse(raw: str | bytes, recv_ms: int) -> Frame:
    msg = decode_as(raw, Message, _message)
    if msg.method is not None:
        return control(msg.method if msg.success is not False else "error")
    if msg.channel is None:
        raise ParseError("unknown message type (no channel and no method)")
    if msg.channel in ("heartbeat", "status"):
        return control(msg.channel)
    if msg.channel != "trade":
        return skip(msg.channel)
    if not msg.data:
        raise ParseError("trade frame without data")
    trades = []
    for w in decode_as(msg.data, list[WireTrade], _trades):
        if w.trade_id < 0:
            raise ParseError(f"trade_id {w.trade_id} is negative")
        trades.append(make_trade(NAME, w.symbol, str(w.trade_id), positive(w.price, "price"),
                                 positive(w.qty, "qty"), taker(w.side), iso_ms(w.timestamp, "timestamp"), recv_ms))
    return Frame("trades", trades, msg.type or "trade")


def _subscribe(symbols: list[str]) -> list[str]:
    return [msgspec.json.encode({"method": "subscribe",
                                 "params": {"channel": "trade", "symbol": symbols, "snapshot": True}}).decode()]


SPEC = VenueSpec(
    name=NAME,
    url=lambda _symbols: URL,
    subscribe=_subscribe,
    parse=parse,
    keepalive=lambda n: msgspec.json.encode({"method": "ping", "req_id": n}).decode(),
    keepalive_after_s=20.0,
    venue_symbol=lambda s: s.replace("-", "/").upper(),
)
