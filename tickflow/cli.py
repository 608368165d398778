"""The `tickflow` command: one entry point, subcommands grouped by service.

Each service owns its subcommands in a ``cli`` module with ``register(subparsers)``; handlers import
their heavy dependencies lazily so that ``tickflow --help`` stays fast.
"""

from __future__ import annotations

import argparse
import importlib
import logging
import os
import sys
from typing import Any

from contracts.broker_check import BrokerUnreachable, require_broker
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
    "trader.explain",
    "trader.policy.cli",
    "paper.cli",
    "tickflow.view.cli",
    "tickflow.demo.cli",
    "tickflow.run.cli",
)

log = logging.getLogger("tickflow")

EXIT_OK, EXIT_FAILED, EXIT_CONFIG, EXIT_INTERRUPTED = 0, 1, 2, 130

LOG_LEVEL_HELP = "DEBUG, INFO, WARNING (env TICKFLOW_LOG_LEVEL); accepted before or after the subcommand"

# The commands that talk to Kafka, as (command, subcommand): each checks the broker before it starts.
# `trade`, `paper` and `policy promote` call the same check themselves once their bundle and settings are
# accepted, so a bad bundle or setting is named first.
NEEDS_KAFKA = {("ingest", "live"), ("ingest", "replay"), ("kafka", "topics"), ("kafka", "create-topics"),
               ("kafka", "acls"), ("topic", "dump"), ("topic", "stats"), ("explain", None), ("view", None),
               ("book", "dump"), ("policy", "list"), ("policy", "show"), ("policy", "history"), ("policy", "rollback"),
               ("retrain", None)}


class DefaultsFormatter(argparse.ArgumentDefaultsHelpFormatter):
    """Shows ``(default: X)`` after each option that has a default (not after required, unset or on/off ones)."""

    def _get_help_string(self, action: argparse.Action) -> str | None:
        if action.default is None or action.required or action.nargs == 0 or "default" in (action.help or "").lower():
            return action.help  # nothing to show, or the help says it already
        return super()._get_help_string(action)


class TickflowParser(argparse.ArgumentParser):
    """Every tickflow parser: help shows each default, no abbreviated options, ``--log-level`` anywhere."""

    def __init__(self, *args: object, **kwargs: object) -> None:
        kwargs.setdefault("formatter_class", DefaultsFormatter)
        kwargs["allow_abbrev"] = False
        super().__init__(*args, **kwargs)  # type: ignore[arg-type]
        # SUPPRESS: a subcommand's parser leaves the value given before the subcommand in place
        self.add_argument("--log-level", default=argparse.SUPPRESS, help=LOG_LEVEL_HELP)

    def add_argument(self, *args: Any, **kwargs: Any) -> argparse.Action:
        if not kwargs.get("help") and kwargs.get("default") is not None:
            kwargs["help"] = "(default: %(default)s)"  # the formatter shows defaults only beside a help text
        return super().add_argument(*args, **kwargs)


def subcommand(args: argparse.Namespace) -> str | None:
    sub: str | None = getattr(args, f"{args.command}_command", None)
    return sub


def command_name(args: argparse.Namespace) -> str:
    """``tickflow topic dump``: the command as typed, for error lines."""
    return " ".join(["tickflow", args.command, *filter(None, [subcommand(args)])])


def needs_kafka(args: argparse.Namespace) -> bool:
    return (args.command, subcommand(args)) in NEEDS_KAFKA


def build_parser() -> TickflowParser:
    parser = TickflowParser(
        prog="tickflow",
        description="Kafka-native crypto market data, stream features and RL trading. Every command "
        "reads the broker address from KAFKA_BOOTSTRAP (default 127.0.0.1:9092) and keeps local "
        "state under TICKFLOW_HOME (default ./.tickflow).",
    )
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for name in COMMAND_MODULES:
        importlib.import_module(name).register(sub)
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    setup_logging(getattr(args, "log_level", None))
    from contracts.kafka_io import TransactionInDoubt
    from infra.kafka.broker import BrokerError
    from infra.kafka.cli import use_local_broker_address
    from infra.kafka.java import PrerequisiteError

    try:
        topic_prefix()  # a bad TICKFLOW_TOPIC_PREFIX stops every command here, named
        use_local_broker_address()
        if needs_kafka(args):
            require_broker()
        code: int = args.func(args)
        return code
    except BrokenPipeError:
        # the reader went away (`tickflow topic dump ... | head`): stop quietly
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return EXIT_OK
    except BrokerUnreachable as err:
        print(f"{command_name(args)}: {err}", file=sys.stderr)
        return EXIT_FAILED
    except FileNotFoundError as err:
        log.debug("Missing file.", exc_info=True)
        what = f"no such file: {err.filename}" if err.filename else str(err)
        print(f"{command_name(args)}: {what}", file=sys.stderr)
        return EXIT_CONFIG
    except (SettingsError, PrerequisiteError) as err:
        print(f"tickflow: {err}", file=sys.stderr)
        return EXIT_CONFIG
    except (BrokerError, ContractError, TransactionInDoubt) as err:
        print(f"tickflow: {err}", file=sys.stderr)
        return EXIT_FAILED
    except ValueError as err:  # a bad argument value found by the command (unknown feature, bad fraction, ...)
        log.debug("Refused input.", exc_info=True)
        print(f"{command_name(args)}: {err}", file=sys.stderr)
        return EXIT_CONFIG
    except KeyboardInterrupt:
        return EXIT_INTERRUPTED
