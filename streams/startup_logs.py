"""Lines aiokafka and Faust log while a worker starts, known and harmless, said at INFO instead of ERROR/WARNING.

Until the worker's first partition assignment:

- ``Topic <app>-...-changelog not found in cluster metadata`` (ERROR, ``aiokafka.cluster``): the consumer asks for
  the table's changelog before Faust has created it; Faust creates it next.
- ``Marking the coordinator dead (node N)for group G.`` (WARNING, ``aiokafka.consumer.group_coordinator``) and
  ``Group Coordinator Request failed: [Error 15] GroupCoordinatorNotAvailableError`` (ERROR, same logger): the
  group coordinator is still loading ``__consumer_offsets``; aiokafka looks it up again.
- ``Ignoring missing topic: '<app>-...-changelog'`` (WARNING, ``faust.assignor.partition_assignor``): the
  assignor runs before Faust has created the changelog.

Both go to this module's logger at INFO, named as start-up messages. After the first assignment (``started``),
and for any other topic or message, nothing is changed: a changelog lost or a coordinator gone mid-run is still
an ERROR or WARNING.
"""

from __future__ import annotations

import logging

log = logging.getLogger(__name__)

CHANGELOG_NOT_FOUND = "Topic %s not found in cluster metadata"
COORDINATOR_DEAD = "Marking the coordinator dead (node %s)for group %s."
COORDINATOR_REQUEST_FAILED = "Group Coordinator Request failed: %s"
MISSING_TOPIC = "Ignoring missing topic: %r"
LOGGERS = ("aiokafka.cluster", "aiokafka.consumer.group_coordinator", "faust.assignor.partition_assignor")


class StartupNoise(logging.Filter):
    def __init__(self) -> None:
        super().__init__()
        self.starting = True

    def known(self, record: logging.LogRecord) -> bool:
        first = str(record.args[0]) if isinstance(record.args, tuple) and record.args else ""
        if record.msg in (CHANGELOG_NOT_FOUND, MISSING_TOPIC):
            return first.endswith("-changelog")
        if record.msg == COORDINATOR_REQUEST_FAILED:
            return "GroupCoordinatorNotAvailableError" in first
        return record.msg == COORDINATOR_DEAD

    def filter(self, record: logging.LogRecord) -> bool:
        if self.starting and self.known(record):
            log.info("Start-up, before the first assignment (known, harmless): %s", record.getMessage())
            return False
        return True


_FILTER = StartupNoise()


def install() -> StartupNoise:
    """Put the filter on those loggers (idempotent); returns it."""
    _FILTER.starting = True
    for name in LOGGERS:
        logger = logging.getLogger(name)
        if _FILTER not in logger.filters:
            logger.addFilter(_FILTER)
    return _FILTER


def started() -> None:
    """The worker has its first assignment: from now on these lines keep their own level."""
    _FILTER.starting = False
