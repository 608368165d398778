"""`tickflow book`: look at the order books on ``market.books``."""

from __future__ import annotations

import argparse
import sys
from typing import Any

from contracts.errors import SettingsError


def register(sub: Any) -> None:
    book = sub.add_parser("book", help="order books on market.books: dump",
                          description="Rebuild the L2 books published on market.books with tickflow's own book code.")
    cmds = book.add_subparsers(dest="book_command", required=True, metavar="SUBCOMMAND")
    dump = cmds.add_parser("dump", help="print each book after every update, from the start of the topic",
                           description="Read market.books from the start, maintain the books and print one JSON "
                           'line per applied update: {"exchange","symbol","seq","ts_event","bids","asks"} with the '
                           "top N levels best first as [price, size]. seq is the venue's sequence (Binance u, OKX "
                           "seqId, Coinbase sequence_num), or the ingestor's count of the symbol's updates where the "
                           "venue has none (OKX before 2023, Kraken). Exits once no record came for --timeout s.")
    dump.add_argument("--symbol", help="only this symbol (normalised BTC-USDT or the venue's BTCUSDT)")
    dump.add_argument("--depth", type=int, default=10, help="levels a side to print (default 10)")
    dump.add_argument("--timeout", type=float, default=5.0, help="exit after this many idle seconds (default 5)")
    dump.set_defaults(func=_dump)


def _dump(args: argparse.Namespace) -> int:
    from confluent_kafka import KafkaException

    from contracts.settings import kafka_bootstrap
    from ingestor.books.dump import dump_books

    if args.depth < 1:
        raise SettingsError(f"--depth {args.depth} must be at least 1")
    if not args.timeout > 0:
        raise SettingsError(f"--timeout {args.timeout} must be a positive number of seconds")
    bootstrap = kafka_bootstrap()
    try:
        printed, bad = dump_books(bootstrap, args.symbol, args.depth, args.timeout)
    except KafkaException as err:
        print(f"tickflow: could not read market.books at {bootstrap} (KAFKA_BOOTSTRAP): {err.args[0]}",
              file=sys.stderr)
        return 1
    print(f"book dump: {printed:,} books printed", file=sys.stderr)
    if bad:
        print(f"tickflow: {bad:,} records on market.books failed their contract (see the log)", file=sys.stderr)
        return 1
    return 0
