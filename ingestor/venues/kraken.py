"""Kraken v2: the ``trade`` channel, and the ``book`` channel for the L2 book.

A ``book`` frame (snapshot or update) carries ``checksum``: the CRC32 of the top 10 levels of the book
after the whole message is applied and the book cut to the subscribed depth, over the prices and
quantities as sent (full precision, so they are read as text here, never through a float).

``side`` is the taker's; ``trade_id`` is a per-pair sequence; prices and quantities are JSON numbers.
Kraken sends a heartbeat about once a second when idle; the client pings with JSON and a ``req_id``.
"""

from __future__ import annotations

import json
from typing import Any

import msgspec

from ingestor.venues.base import (
    BookFrame,
    BookMessage,
    Frame,
    ParseError,
    VenueSpec,
    control,
    decode_as,
    iso_ms,
    levels,
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


BOOK_DEPTH = 10  # the depth we subscribe to (Kraken: 10, 25, 100, 500 or 1000)


def parse_book(raw: str | bytes, recv_ms: int, kind: str = "ws") -> BookMessage | None:
    """The levels of a ``book`` frame with their text; a book subscription's depth; else None."""
    head = raw[:120]
    if isinstance(head, bytes):
        head = head.decode("utf-8", "replace")
    if '"book"' not in head:
        return None
    try:
        msg = json.loads(raw, parse_float=str, parse_int=str)
    except (ValueError, RecursionError) as err:
        raise ParseError(f"not valid JSON: {err}") from None
    if not isinstance(msg, dict):
        raise ParseError("book frame is not an object")
    if msg.get("method") == "subscribe":
        result = msg.get("result")
        if isinstance(result, dict) and result.get("channel") == "book" and "symbol" in result:
            return BookMessage(depth=(str(result["symbol"]), int(result.get("depth", BOOK_DEPTH))))
        return None
    if msg.get("channel") != "book":
        return None
    if msg.get("type") not in ("snapshot", "update") or not isinstance(msg.get("data"), list):
        raise ParseError(f"book frame of type {msg.get('type')!r} without a data list")
    out = BookMessage()
    for d in msg["data"]:
        try:
            bids_text = [(str(x["price"]), str(x["qty"])) for x in d.get("bids", [])]
            asks_text = [(str(x["price"]), str(x["qty"])) for x in d.get("asks", [])]
            symbol, checksum = str(d["symbol"]), int(d["checksum"])
        except (KeyError, TypeError, ValueError, AttributeError) as err:
            raise ParseError(f"book data without symbol, checksum, price or qty ({err!r})") from None
        ts = iso_ms(d["timestamp"], "timestamp") if d.get("timestamp") else recv_ms
        out.books.append(BookFrame(symbol, "snapshot" if msg["type"] == "snapshot" else "delta",
                                   levels(bids_text, "bid"), levels(asks_text, "ask"), ts, checksum=checksum,
                                   bids_text=bids_text, asks_text=asks_text))
    return out


def _subscribe(symbols: list[str]) -> list[str]:
    return [msgspec.json.encode({"method": "subscribe",
                                 "params": {"channel": "trade", "symbol": symbols, "snapshot": True}}).decode(),
            msgspec.json.encode({"method": "subscribe",
                                 "params": {"channel": "book", "symbol": symbols, "depth": BOOK_DEPTH,
                                            "snapshot": True}}).decode()]


def _resubscribe_book(symbol: str) -> list[str]:
    unsub = {"method": "unsubscribe", "params": {"channel": "book", "symbol": [symbol], "depth": BOOK_DEPTH}}
    sub = {"method": "subscribe", "params": {"channel": "book", "symbol": [symbol], "depth": BOOK_DEPTH,
                                             "snapshot": True}}
    return [msgspec.json.encode(unsub).decode(), msgspec.json.encode(sub).decode()]


SPEC = VenueSpec(
    name=NAME,
    url=lambda _symbols: URL,
    subscribe=_subscribe,
    parse=parse,
    keepalive=lambda n: msgspec.json.encode({"method": "ping", "req_id": n}).decode(),
    keepalive_after_s=20.0,
    venue_symbol=lambda s: s.replace("-", "/").upper(),
    parse_book=parse_book,
    book_resubscribe=_resubscribe_book,
)
