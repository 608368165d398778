"""OKX v5 public: the ``trades`` channel, and the ``books`` channel for the L2 book.

A ``books`` frame is a ``snapshot`` or an ``update`` of up to 400 levels a side, ``[price, size,
"0", orders]`` as strings; newer frames chain ``prevSeqId`` to the previous ``seqId``; ``checksum`` is
the CRC32 of the top 25 levels (0 since OKX deprecated it in 2026: then nothing to verify).

``side`` is the taker's. Trades are aggregated per taker order: ``count`` trades ending at
``tradeId`` (absent in older recordings: one). The client sends the text ``ping`` after 20 s of
silence (the server closes after 30 s) and gets ``pong``.
"""

from __future__ import annotations

from typing import Any

import msgspec

from ingestor.venues.base import (
    BookFrame,
    BookFrameKind,
    BookMessage,
    Frame,
    ParseError,
    VenueSpec,
    control,
    decode_as,
    epoch_ms,
    levels,
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


class WireBook(msgspec.Struct, frozen=True):
    asks: list[list[str]]
    bids: list[list[str]]
    ts: str
    checksum: int = 0
    seqId: int | None = None
    prevSeqId: int | None = None


BOOK_CHANNELS = {"books", "books-l2-tbt", "books50-l2-tbt"}  # snapshot + updates (books5: whole tops)
_message = msgspec.json.Decoder(Message)
_books = msgspec.json.Decoder(list[WireBook])
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


def parse_book(raw: str | bytes, recv_ms: int, kind: str = "ws") -> BookMessage | None:
    """The book data of a ``books`` frame; None for any other frame."""
    head = raw[:80]
    if isinstance(head, bytes):
        head = head.decode("utf-8", "replace")
    if '"books' not in head:
        return None
    msg = decode_as(raw, Message, _message)
    if msg.arg is None or msg.arg.channel not in BOOK_CHANNELS or msg.event is not None:
        return None
    if msg.action not in ("snapshot", "update"):
        raise ParseError(f"books frame with action {msg.action!r} (want snapshot or update)")
    if not msg.data or msg.arg.instId is None:
        raise ParseError("books frame without data or instId")
    kind_: BookFrameKind = "snapshot" if msg.action == "snapshot" else "delta"
    out = BookMessage()
    for w in decode_as(msg.data, list[WireBook], _books):
        bids_text, asks_text = _text(w.bids, "bid"), _text(w.asks, "ask")
        out.books.append(BookFrame(
            msg.arg.instId, kind_, levels(bids_text, "bid"), levels(asks_text, "ask"), epoch_ms(w.ts, "ts"),
            seq=w.seqId, prev_seq=w.prevSeqId,
            checksum=w.checksum, bids_text=bids_text, asks_text=asks_text))
    return out


def _text(rows: list[list[str]], what: str) -> list[tuple[str, str]]:
    for row in rows:
        if len(row) < 2:
            raise ParseError(f"{what} level {row!r} has no price and size")
    return [(row[0], row[1]) for row in rows]


def _subscribe(symbols: list[str]) -> list[str]:
    return [msgspec.json.encode({"op": "subscribe",
                                 "args": [{"channel": c, "instId": s} for c in ("trades", "books")
                                          for s in symbols]}).decode()]


def _resubscribe_book(inst_id: str) -> list[str]:
    args = [{"channel": "books", "instId": inst_id}]
    return [msgspec.json.encode({"op": op, "args": args}).decode() for op in ("unsubscribe", "subscribe")]


SPEC = VenueSpec(
    name=NAME,
    url=lambda _symbols: URL,
    subscribe=_subscribe,
    parse=parse,
    keepalive=lambda _n: "ping",
    keepalive_after_s=20.0,
    venue_symbol=lambda s: s.upper(),
    parse_book=parse_book,
    book_resubscribe=_resubscribe_book,
)
