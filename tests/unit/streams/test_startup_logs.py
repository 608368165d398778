"""aiokafka's two known start-up lines are said at INFO before the worker's first assignment, and only then."""

from __future__ import annotations

import logging

import pytest

from streams import startup_logs


def test_known_start_up_lines_are_lowered_until_the_first_assignment(caplog: pytest.LogCaptureFixture) -> None:
    startup_logs.install()
    cluster = logging.getLogger("aiokafka.cluster")
    coordinator = logging.getLogger("aiokafka.consumer.group_coordinator")
    assignor = logging.getLogger("faust.assignor.partition_assignor")
    with caplog.at_level(logging.INFO):
        cluster.error(startup_logs.CHANGELOG_NOT_FOUND, "tickflow-streams-streams-state-changelog")
        coordinator.warning(startup_logs.COORDINATOR_DEAD, 1, "tickflow-streams")
        coordinator.error(startup_logs.COORDINATOR_REQUEST_FAILED,
                          "[Error 15] GroupCoordinatorNotAvailableError")
        coordinator.error(startup_logs.COORDINATOR_REQUEST_FAILED, "[Error 30] GroupAuthorizationFailedError")  # kept
        assignor.warning(startup_logs.MISSING_TOPIC, "tickflow-streams-streams-state-changelog")
        cluster.error(startup_logs.CHANGELOG_NOT_FOUND, "market.trades")  # not a changelog: kept
        startup_logs.started()
        cluster.error(startup_logs.CHANGELOG_NOT_FOUND, "tickflow-streams-streams-state-changelog")
        coordinator.warning(startup_logs.COORDINATOR_DEAD, 1, "tickflow-streams")
    seen = [(r.name, r.levelname, r.getMessage()) for r in caplog.records]
    lowered = "Start-up, before the first assignment (known, harmless): "
    assert seen == [
        ("streams.startup_logs", "INFO", lowered + "Topic tickflow-streams-streams-state-changelog not found in "
         "cluster metadata"),
        ("streams.startup_logs", "INFO", lowered + "Marking the coordinator dead (node 1)for group tickflow-streams."),
        ("streams.startup_logs", "INFO", lowered + "Group Coordinator Request failed: [Error 15] "
         "GroupCoordinatorNotAvailableError"),
        ("aiokafka.consumer.group_coordinator", "ERROR", "Group Coordinator Request failed: [Error 30] "
         "GroupAuthorizationFailedError"),
        ("streams.startup_logs", "INFO",
         lowered + "Ignoring missing topic: 'tickflow-streams-streams-state-changelog'"),
        ("aiokafka.cluster", "ERROR", "Topic market.trades not found in cluster metadata"),
        ("aiokafka.cluster", "ERROR", "Topic tickflow-streams-streams-state-changelog not found in cluster metadata"),
        ("aiokafka.consumer.group_coordinator", "WARNING", "Marking the coordinator dead (node 1)for group "
         "tickflow-streams."),
    ]


def test_the_lines_are_aiokafka_s_own_words() -> None:
    """The filter matches aiokafka's format strings exactly: an upgrade that rewords them fails here."""
    import inspect

    from aiokafka import cluster
    from aiokafka.consumer import group_coordinator
    from faust.assignor import partition_assignor

    assert startup_logs.CHANGELOG_NOT_FOUND in inspect.getsource(cluster)
    assert startup_logs.COORDINATOR_DEAD in inspect.getsource(group_coordinator)
    assert startup_logs.COORDINATOR_REQUEST_FAILED in inspect.getsource(group_coordinator)
    assert startup_logs.MISSING_TOPIC in inspect.getsource(partition_assignor)
