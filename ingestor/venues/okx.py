"""OKX v5 public: the ``trades`` channel.

``side`` is the taker's. Trades are aggregated per taker order: ``count`` trades ending at
``tradeId`` (absent in older recordings: one). The client sends the text ``ping`` after 20 s of
silence (the server closes after 30 s) and gets ``pong``.
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
    epoch_ms,
    make_trade,
    positive,
    skip,
    taker,
    trade_id,
)

NAME = "okx"
URL = "wss://ws.okx.com:8443/ws/v5/public"


class WireTrade(msgspec.Struct, frozen=True):
    instId: str
    tradeId: str
    px: str
    sz: str
    side: str
    ts: str
    count: str | None = None
    source: str | None = None
    seqId: int | None = None


class Arg(msgspec.Struct, frozen=True):
    channel: str
    instId: str | None = None


class Message(msgspec.Struct, frozen=True):
    arg: Arg | None = None
    data: msgspec.Raw = msgspec.Raw()
    event: str | None = None
    action: str | None = None
    code: Any = None
    msg: str = ""
    connId: str | None = None


_message = msgspec.json.Decoder(Message)
_trades = msgspec.json.Decoder(list[WireTrade])


def parse(raw: str | bytes, recv_ms: int) -> Frame:
    text = raw.strip() if isinstance(raw, str) else raw.strip().decode("utf-8", "replace")
    if text == "pong":
        return control("pong")
    msg = decode_as(raw, Message, _message)
    if msg.event is not None:
        return control(msg.event)
    if msg.arg is None:
        raise ParseError("unknown message type (no arg and no event)")
    if msg.arg.channel != "trades":
        return skip(msg.arg.channel)
    if not msg.data:
        raise ParseError("trades frame without data")
    trades = []
    counts = []
    for w in decode_as(msg.data, list[WireTrade], _trades):
        trades.append(make_trade(NAME, w.instId, trade_id(w.tradeId, "tradeId"), positive(w.px, "px"),
                                 positive(w.sz, "sz"), taker(w.side), epoch_ms(w.ts, "ts"), recv_ms))
        try:
            count = int(w.count) if w.count is not None else 1
        except ValueError:
            raise ParseError(f"count {w.count!r} is not an integer") from None
        if count < 1:
            raise ParseError(f"count {w.count!r} is below 1")
        counts.append(count)
    frame = Frame("trades", trades, "trades")
    frame.counts = counts
    return frame


def _subscribe(symbols: list[str]) -> list[str]:
    return [msgspec.json.encode({"op": "subscribe",
                                 "args": [{"channel": "trades", "instId": s} for s in symbols]}).decode()]


SPEC = VenueSpec(
    name=NAME,
    url=lambda _symbols: URL,
    subscribe=_subscribe,
    parse=parse,
    keepalive=lambda _n: "ping",
    keepalive_after_s=20.0,
    venue_symbol=lambda s: s.upper(),
)
