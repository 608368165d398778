"""The order-book message: a full snapshot or a delta of one symbol's L2 book, on ``market.books``.

Levels are ``[price, size]`` with the absolute size at that price; in a delta a size of 0 removes the
level. ``seq`` is the venue's sequence of the update (Binance ``u``, OKX ``seqId``, Coinbase
``sequence_num``); where the venue sends none (OKX before 2023, Kraken) it is the ingestor's own
per-symbol count of published updates, which only grows. ``first_seq`` is Binance's ``U`` and
``prev_seq`` OKX's ``prevSeqId``, so a consumer can check the chain itself.

A snapshot larger than ``MAX_LEVELS_PER_RECORD`` is split into parts (``part`` 0, 1, ...); part 0
clears the book and the book is whole again at the part with ``last`` true. A consumer that starts
anywhere waits for the next snapshot of a key: one is published at every (re)synchronisation and
after every ``snapshot_every`` deltas (ARCHITECTURE.md says why).
"""

from __future__ import annotations

from typing import Annotated, Final, Literal

import msgspec

from contracts.messages import EpochMs, Message, Name, NonNegative, Positive

BookKind = Literal["snapshot", "delta"]
Level = tuple[Positive, NonNegative]
Seq = Annotated[int, msgspec.Meta(ge=-1)]

#: bids + asks in one record; 10,000 levels are about 250 kB of JSON, well under Kafka's 1 MB.
MAX_LEVELS_PER_RECORD: Final = 10_000


class BookUpdate(Message, frozen=True, kw_only=True):
    """One snapshot (or snapshot part) or delta of a symbol's L2 book, best level first."""

    exchange: Name
    symbol: Name  # normalised, e.g. BTC-USDT
    venue_symbol: Name
    kind: BookKind
    seq: Seq
    first_seq: Seq | None = None  # Binance U
    prev_seq: Seq | None = None  # OKX prevSeqId
    bids: list[Level]
    asks: list[Level]
    checksum: int | None = None  # the venue's checksum of the book after this update (verified)
    part: Annotated[int, msgspec.Meta(ge=0)] = 0
    last: bool = True
    ts_event: EpochMs
    ts_ingest: EpochMs

    def __post_init__(self) -> None:
        if self.kind == "snapshot":
            for side, levels in (("bids", self.bids), ("asks", self.asks)):
                for price, size in levels:
                    if size <= 0:
                        raise ValueError(f"snapshot {side} level {price} has size {size}; a snapshot holds "
                                         "only levels with a positive size")
        elif self.part or not self.last:
            raise ValueError("only a snapshot is split into parts")
