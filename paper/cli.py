"""`tickflow paper`: the paper broker's command. The broker is imported by the handler."""

from __future__ import annotations

import argparse


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    pp = sub.add_parser("paper", help="the paper broker: fill orders at the market trades that follow them, or "
                        "against the book (PAPER__BOOKS)",
                        description="Consumes orders and market.trades (and market.books for PAPER__BOOKS), produces "
                        "fills exactly once. Settings: PAPER__LATENCY_MS, PAPER__PARTICIPATION, PAPER__COSTS__FEE_BPS, "
                        "PAPER__COSTS__SLIPPAGE_BPS, PAPER__COSTS__IMPACT_BPS_PER_10K, PAPER__TRADE_BUFFER; "
                        "PAPER__BOOKS (symbols filled against their book, * = every one), PAPER__BOOK_HISTORY, "
                        "PAPER__BOOK_BUFFER, PAPER__REMEMBER_TAKEN; refused to orders.dlq: orders beyond "
                        "PAPER__MAX_QTY or PAPER__MAX_NOTIONAL, or of a policy not in PAPER__POLICIES (* = every one).")
    pp.add_argument("--shadow", action="store_true", help="the shadow book: fill orders.shadow into fills.shadow "
                    "(group tickflow-paper-shadow), apart from the champion's orders and fills")
    pp.add_argument("--max-seconds", type=float, default=None, help="stop after this long (tests, demos)")
    pp.set_defaults(func=_paper)


def _paper(args: argparse.Namespace) -> int:
    from contracts.broker_check import require_broker
    from contracts.topics import LIVE, SHADOW
    from paper.broker import PaperBroker

    broker = PaperBroker(lane=SHADOW if args.shadow else LIVE)  # its settings are checked first, then the Kafka broker
    require_broker(broker.bootstrap)
    return broker.run(args.max_seconds)
