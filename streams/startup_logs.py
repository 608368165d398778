"""Two lines aiokafka logs while a Faust worker starts, known and harmless, said at INFO instead of ERROR/WARNING.

Until the worker's first partition assignment:

- ``Topic <app>-...-changelog not found in cluster metadata`` (ERROR, ``aiokafka.cluster``): the consumer asks for
  the table's changelog before Faust has created it; Faust creates it next.
- ``Marking the coordinator dead (node N)for group G.`` (WARNING, ``aiokafka.consumer.group_coordinator``): the
  group coordinator is still loading ``__consumer_offsets``; aiokafka looks it up again.

Both go to this module's logger at INFO, named as start-up messages. After the first assignment (``started``),
and for any other topic or message, nothing is changed: a changelog lost or a coordinator gone mid-run is still
an ERROR or WARNING.
"""

from __future__ import annotations

import logging

log = logging.getLogger(__name__)

CHANGELOG_NOT_FOUND = "Topic %s not found in cluster metadata"
COORDINATOR_DEAD = "Marking the coordinator dead (node %s)for group %s."
LOGGERS = ("aiokafka.cluster", "aiokafka.consumer.group_coordinator")


class StartupNoise(logging.Filter):
    def __init__(self) -> None:
        super().__init__()
        self.starting = True

    def known(self, record: logging.LogRecord) -> bool:
        if record.msg == CHANGELOG_NOT_FOUND:
            return bool(record.args) and str(record.args[0]).endswith("-changelog")  # type: ignore[index]
        return record.msg == COORDINATOR_DEAD

    def filter(self, record: logging.LogRecord) -> bool:
        if self.starting and self.known(record):
            log.info("Start-up, before the first assignment (known, harmless): %s", record.getMessage())
            return False
        return True


_FILTER = StartupNoise()


def install() -> StartupNoise:
    """Put the filter on aiokafka's two loggers (idempotent); returns it."""
    _FILTER.starting = True
    for name in LOGGERS:
        logger = logging.getLogger(name)
        if _FILTER not in logger.filters:
            logger.addFilter(_FILTER)
    return _FILTER


def started() -> None:
    """The worker has its first assignment: from now on these lines keep their own level."""
    _FILTER.starting = False
