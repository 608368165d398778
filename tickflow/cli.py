"""The `tickflow` command: one entry point, subcommands grouped by service.

Each service owns its subcommands in a ``cli`` module with ``register(subparsers)``; handlers import
their heavy dependencies lazily so that ``tickflow --help`` stays fast.
"""

from __future__ import annotations

import argparse
import importlib
import logging
import sys

from contracts.errors import ContractError, SettingsError
from contracts.logs import setup_logging
from contracts.topics import topic_prefix

# The services' command modules, in the order their groups appear in --help.
COMMAND_MODULES = (
    "infra.kafka.cli",
    "ingestor.cli",
    "ingestor.books.cli",
    "streams.cli",
    "trader.cli",
    "paper.cli",
    "tickflow.view.cli",
    "tickflow.demo.cli",
)

log = logging.getLogger("tickflow")

EXIT_OK, EXIT_FAILED, EXIT_CONFIG, EXIT_INTERRUPTED = 0, 1, 2, 130


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="tickflow",
        description="Kafka-native crypto market data, stream features and RL trading. Every command "
        "reads the broker address from KAFKA_BOOTSTRAP (default 127.0.0.1:9092) and keeps local "
        "state under TICKFLOW_HOME (default ./.tickflow).",
    )
    parser.add_argument("--log-level", default=None, help="DEBUG, INFO, WARNING (env TICKFLOW_LOG_LEVEL)")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for name in COMMAND_MODULES:
        importlib.import_module(name).register(sub)
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    setup_logging(args.log_level)
    from contracts.kafka_io import TransactionInDoubt
    from infra.kafka.broker import BrokerError
    from infra.kafka.cli import use_local_broker_address
    from infra.kafka.java import PrerequisiteError

    try:
        topic_prefix()  # a bad TICKFLOW_TOPIC_PREFIX stops every command here, named
        use_local_broker_address()
        code: int = args.func(args)
        return code
    except (SettingsError, PrerequisiteError) as err:
        print(f"tickflow: {err}", file=sys.stderr)
        return EXIT_CONFIG
    except (BrokerError, ContractError, TransactionInDoubt) as err:
        print(f"tickflow: {err}", file=sys.stderr)
        return EXIT_FAILED
    except KeyboardInterrupt:
        return EXIT_INTERRUPTED
