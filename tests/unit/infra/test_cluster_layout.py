"""A local cluster's layout and node configuration, without starting a JVM."""

from __future__ import annotations

import socket
from pathlib import Path

import pytest

from contracts.kafka_io import replication
from infra.kafka.broker import BrokerError, LocalBroker, free_port
from infra.kafka.cluster import Layout, LocalCluster


def _props(broker: LocalBroker) -> dict[str, str]:
    text = broker._write_config(broker.node.controller_port if broker.node else free_port()).read_text()
    return dict(line.split("=", 1) for line in text.splitlines())


def _three(home: Path) -> LocalCluster:
    cluster = LocalCluster(home)
    cluster.file.parent.mkdir(parents=True)
    cluster.file.write_text(
        '{"host": "127.0.0.1", "ports": [9101, 9102, 9103], "controller_ports": [9201, 9202, 9203], '
        '"cluster_id": "AAAAAAAAAAAAAAAAAAAAAA"}')
    return cluster


def test_replication_is_min_three_and_two_in_sync_from_three_replicas() -> None:
    assert [replication(n) for n in (1, 2, 3, 5)] == [(1, 1), (2, 1), (3, 2), (3, 2)]


def test_each_node_of_three_has_its_id_ports_and_dirs_and_the_static_voters(tmp_path: Path) -> None:
    cluster = _three(tmp_path)
    props = [_props(cluster.node(i)) for i in (1, 2, 3)]
    assert [p["node.id"] for p in props] == ["1", "2", "3"]
    assert {p["controller.quorum.voters"] for p in props} == {"1@127.0.0.1:9201,2@127.0.0.1:9202,3@127.0.0.1:9203"}
    assert "controller.quorum.bootstrap.servers" not in props[0]
    assert props[1]["listeners"] == "PLAINTEXT://127.0.0.1:9102,CONTROLLER://127.0.0.1:9202"
    assert len({p["log.dirs"] for p in props}) == 3
    for p in props:  # internal topics and defaults replicated on three nodes, two in sync
        assert p["offsets.topic.replication.factor"] == p["transaction.state.log.replication.factor"] == "3"
        assert p["share.coordinator.state.topic.replication.factor"] == p["default.replication.factor"] == "3"
        assert p["transaction.state.log.min.isr"] == p["min.insync.replicas"] == "2"
        assert p["share.coordinator.state.topic.min.isr"] == "2"
    assert Layout("h", [1, 2], [3, 4], "x").bootstrap == "h:1,h:2"


def test_one_node_stays_the_default_unreplicated_and_its_own_quorum(tmp_path: Path) -> None:
    props = _props(LocalBroker(tmp_path, port=9300))
    assert props["node.id"] == "1" and "controller.quorum.voters" not in props
    assert props["controller.quorum.bootstrap.servers"].startswith("127.0.0.1:")
    assert props["offsets.topic.replication.factor"] == props["transaction.state.log.min.isr"] == "1"


def test_a_node_outside_the_cluster_is_refused_by_number(tmp_path: Path) -> None:
    with pytest.raises(BrokerError, match=r"--node 4 is not a node of the cluster .* \(nodes 1 to 3\)"):
        _three(tmp_path).node(4)


def test_acting_on_a_node_without_a_cluster_says_how_to_start_one(tmp_path: Path) -> None:
    with pytest.raises(BrokerError, match=r"no cluster was started from .*--nodes 3"):
        LocalCluster(tmp_path).kill(2)


def test_a_taken_first_port_is_refused_before_any_jvm_starts(tmp_path: Path) -> None:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        s.listen()
        port = s.getsockname()[1]
        with pytest.raises(BrokerError, match=f"port {port} on 127.0.0.1 is already in use"):
            LocalCluster(tmp_path).start(3, port)
    assert LocalCluster(tmp_path).layout() is None
