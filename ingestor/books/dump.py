"""`tickflow book dump`: read ``market.books`` from the start and print each book after every update."""

from __future__ import annotations

import json
import logging
import sys
from typing import TextIO

from contracts.book_reader import BookReader
from contracts.books import BookUpdate
from contracts.errors import ContractError
from contracts.serde import decode
from contracts.topic_reader import read_then_follow
from contracts.topics import MARKET_BOOKS

log = logging.getLogger(__name__)


def dump_books(bootstrap: str, symbol: str | None, depth: int, idle_timeout: float,
               out: TextIO = sys.stdout) -> tuple[int, int]:
    """Print one JSON line per applied update; return (lines printed, records that failed the contract)."""
    reader = BookReader()
    printed = bad = 0
    write = out.write
    for msg in read_then_follow(bootstrap, MARKET_BOOKS, idle_timeout):
        where = f"{msg.topic()}[{msg.partition()}]@{msg.offset()}"
        try:
            u = decode(msg.value() or b"", BookUpdate)
        except ContractError as err:
            bad += 1
            log.error("%s: %s", where, err)
            continue
        if symbol is not None and symbol not in (u.symbol, u.venue_symbol):
            continue
        book = reader.apply(u, where)
        if book is None:
            continue
        write(json.dumps({"exchange": u.exchange, "symbol": u.symbol, "seq": u.seq, "ts_event": u.ts_event,
                          "bids": book.bids.top(depth), "asks": book.asks.top(depth)}) + "\n")
        printed += 1
    out.flush()
    if reader.skipped or reader.breaks:
        log.info("%d deltas came before their book's snapshot; %d chain breaks.", reader.skipped, reader.breaks)
    return printed, bad
