"""The jar lock matches the one pin in pom.xml and is internally consistent."""

from __future__ import annotations

import re

from infra.kafka.lockfile import pinned_versions, read_lock


def test_lock_matches_the_pinned_version() -> None:
    pins = pinned_versions()
    lock = read_lock()
    assert lock.kafka_version == pins["kafka.version"]
    kafka = [a for a in lock.artifacts if a.group == "org.apache.kafka"]
    assert {a.version for a in kafka} == {pins["kafka.version"]}
    names = {a.artifact for a in kafka}
    assert {"kafka_2.13", "kafka-tools", "kafka-clients", "kafka-server"} <= names
    log4j = {a.artifact: a.version for a in lock.artifacts if a.group == "org.apache.logging.log4j"}
    assert log4j["log4j-core"] == log4j["log4j-slf4j-impl"] == pins["log4j.version"]


def test_no_scala_2_12_and_every_jar_has_a_sha256() -> None:
    lock = read_lock()
    assert not [a for a in lock.artifacts if a.artifact.endswith("_2.12")]
    assert all(re.fullmatch(r"[0-9a-f]{64}", a.sha256) for a in lock.artifacts)
    assert len({a.file for a in lock.artifacts}) == len(lock.artifacts)


def test_cluster_ids_are_valid_for_storage_tool() -> None:
    from infra.kafka.broker import new_cluster_id

    ids = {new_cluster_id() for _ in range(5000)}
    assert len(ids) == 5000
    assert all(len(i) == 22 and not i.startswith("-") and re.fullmatch(r"[A-Za-z0-9_-]+", i) for i in ids)
