"""Logging set-up, done once by each entry point: a logger per module, full sentences, to stderr."""

from __future__ import annotations

import logging
import os
import sys


def setup_logging(level: str | None = None) -> None:
    """Configure the root logger from TICKFLOW_LOG_LEVEL (default INFO); quiet chatty libraries."""
    name = (level or os.environ.get("TICKFLOW_LOG_LEVEL", "INFO")).upper()
    logging.basicConfig(
        level=getattr(logging, name, logging.INFO),
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
        stream=sys.stderr,
        force=True,
    )
    for noisy in ("aiokafka", "faust", "mode", "urllib3", "matplotlib", "websocket"):
        logging.getLogger(noisy).setLevel(max(logging.WARNING, logging.getLogger().level))
