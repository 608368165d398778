"""docker-compose.yml as `docker compose` would take it (there is no compose plugin on these machines).

The file must be valid against the Compose Specification's JSON schema (infra/compose/compose-spec.json)
and complete: the services, healthchecks where others wait on health, dependencies that exist, ports
published on 127.0.0.1 only, and commands that the `tickflow` CLI accepts.
"""

from __future__ import annotations

import json
import re
import shlex
from pathlib import Path
from typing import Any

import jsonschema
import pytest
import yaml

from tests.helpers import REPO
from tickflow.cli import build_parser

COMPOSE = REPO / "docker-compose.yml"
CLUSTER = REPO / "docker-compose.cluster.yml"
ENV_EXAMPLE = REPO / ".env.example"
_VAR = re.compile(r"\$\{([A-Z0-9_]+)(?::?-([^}]*))?\}")


def _doc() -> dict[str, Any]:
    doc: dict[str, Any] = yaml.safe_load(COMPOSE.read_text())
    return doc


def _env_example() -> dict[str, str]:
    values = {}
    for line in ENV_EXAMPLE.read_text().splitlines():
        if line.strip() and not line.lstrip().startswith("#"):
            name, _, value = line.partition("=")
            values[name.strip()] = value.strip()
    return values


def _interpolate(text: str, env: dict[str, str]) -> str:
    return _VAR.sub(lambda m: env.get(m.group(1), m.group(2) or ""), text)


SERVICES = _doc()["services"]
TICKFLOW_SERVICES = {name: s for name, s in SERVICES.items() if str(s.get("image", "")).startswith("tickflow-")}


def test_valid_against_the_compose_specification() -> None:
    schema = json.loads((REPO / "infra/compose/compose-spec.json").read_text())
    jsonschema.Draft7Validator(schema).validate(_doc())  # raises with the offending path


def test_the_stack_is_complete() -> None:
    for name in ("kafka", "topics", "ksqldb-server", "ksqldb-init", "ksqldb-cli", "ingestor", "ingestor-replay",
                 "streams", "policy", "trader", "paper", "view", "prometheus", "grafana"):
        assert name in SERVICES, f"no {name} service"
    assert SERVICES["kafka"]["image"] == "apache/kafka:4.1.1"  # the broker `make` runs locally
    server, cli = SERVICES["ksqldb-server"]["image"], SERVICES["ksqldb-cli"]["image"]
    # the standalone ksqlDB release that ksqldb.sql is verified on (tests/integration/test_ksqldb_real.py)
    assert (server, cli) == ("confluentinc/ksqldb-server:0.29.0", "confluentinc/ksqldb-cli:0.29.0")
    for name, service in SERVICES.items():
        image = str(service.get("image", ""))
        assert ":" in image and not image.endswith(":latest"), f"{name}: image {image!r} is not pinned"


def test_profiles_keep_replay_and_monitoring_optional() -> None:
    assert "profiles" not in SERVICES["ingestor"], "the live ingestor runs by default"
    assert SERVICES["ingestor-replay"]["profiles"] == ["replay"]
    assert SERVICES["prometheus"]["profiles"] == ["monitoring"] == SERVICES["grafana"]["profiles"]


def test_dependencies_exist_and_wait_for_the_right_state() -> None:
    for name, service in SERVICES.items():
        deps = service.get("depends_on") or {}
        assert isinstance(deps, dict), f"{name}: depends_on must name conditions"
        for dep, spec in deps.items():
            assert dep in SERVICES, f"{name} depends on unknown service {dep}"
            condition = spec["condition"]
            if condition == "service_healthy":
                assert "healthcheck" in SERVICES[dep], f"{name} waits for {dep} to be healthy, which has no check"
            elif condition == "service_completed_successfully":
                assert SERVICES[dep].get("restart") == "no", f"{dep} is one-shot: restart must be 'no'"
            # A dependency on a profiled service from a default one would not start.
            if "profiles" in SERVICES[dep]:
                assert set(SERVICES[dep]["profiles"]) <= set(service.get("profiles", [])), f"{name} -> {dep}"
    for name in TICKFLOW_SERVICES:
        if name != "policy":  # trains from files; needs no broker
            assert "kafka" in _waits_for(name, "service_healthy"), f"{name} does not wait for a healthy Kafka"
    assert SERVICES["ksqldb-init"]["depends_on"]["ksqldb-server"]["condition"] == "service_healthy"
    assert SERVICES["trader"]["depends_on"]["policy"]["condition"] == "service_completed_successfully"
    assert SERVICES["grafana"]["depends_on"]["prometheus"]["condition"] == "service_healthy"


def _waits_for(name: str, condition: str) -> set[str]:
    """Services ``name`` waits for, directly or through its dependencies, with ``condition`` on the last hop."""
    found: set[str] = set()
    for dep, spec in (SERVICES[name].get("depends_on") or {}).items():
        if spec["condition"] == condition:
            found.add(dep)
        found |= _waits_for(dep, condition)
    return found


def test_ksqldb_is_healthy_only_when_running() -> None:
    check = " ".join(SERVICES["ksqldb-server"]["healthcheck"]["test"])
    assert "/info" in check and "RUNNING" in check


def test_ports_are_published_on_localhost_only() -> None:
    published = 0
    for name, service in SERVICES.items():
        for port in service.get("ports", []):
            assert isinstance(port, str) and port.startswith("127.0.0.1:"), f"{name} publishes {port!r}"
            published += 1
    assert published >= 5


def test_streams_worker_scales() -> None:
    streams = SERVICES["streams"]
    assert "container_name" not in streams and "ports" not in streams and "hostname" not in streams
    for name, service in SERVICES.items():
        assert "container_name" not in service, f"{name}: container_name prevents --scale and parallel stacks"


def test_every_command_exists_in_the_cli() -> None:
    env = _env_example()
    parser = build_parser()
    checked = []
    for name, service in TICKFLOW_SERVICES.items():
        command = service["command"]
        argv = shlex.split(_interpolate(command, env)) if isinstance(command, str) else [
            _interpolate(a, env) for a in command]
        if argv[0] == "tickflow":
            try:
                parser.parse_args(argv[1:])
            except SystemExit as exc:
                pytest.fail(f"service {name}: `{' '.join(argv)}` is refused by the tickflow CLI (exit {exc.code})")
            checked.append(name)
        else:
            assert argv[:2] == ["python", "-c"], f"{name}: unexpected command {argv}"
            compile(argv[2], name, "exec")
    assert {"ingestor", "ingestor-replay", "streams", "trader", "paper", "ksqldb-init", "view", "policy"} <= set(
        checked)


def test_topics_init_creates_the_registry_at_the_compose_broker() -> None:
    topics = SERVICES["topics"]
    assert topics["command"] == ["tickflow", "kafka", "create-topics"]
    assert topics["environment"]["KAFKA_BOOTSTRAP"] == "kafka:29092"
    assert topics["restart"] == "no"


def test_settings_come_from_env_with_committed_defaults() -> None:
    text = COMPOSE.read_text()
    env = _env_example()
    for match in _VAR.finditer(text):
        name, default = match.group(1), match.group(2)
        assert default is not None, f"${{{name}}} has no default: the stack must start without a .env"
        assert name in env, f"${{{name}}} is not documented in .env.example"
        assert env[name] == default, f"{name}: .env.example says {env[name]!r}, compose defaults to {default!r}"
    assert not re.search(r"(?i)(secret|token|api_key)\s*=\s*\S", ENV_EXAMPLE.read_text())


def test_mounted_files_and_replay_path_exist() -> None:
    for name, service in SERVICES.items():
        for volume in service.get("volumes", []):
            source = volume.split(":")[0]
            if source.startswith("./"):
                assert (REPO / source).exists(), f"{name} mounts missing {source}"
    assert (REPO / _env_example()["REPLAY_PATH"]).is_file()


def test_one_dockerfile_for_the_python_services() -> None:
    dockerfile = (REPO / "Dockerfile").read_text()
    stages = re.findall(r"^FROM (\S+) AS (\S+)$", dockerfile, re.M)
    assert stages[0] == ("python:3.11-slim", "base")
    targets = {stage for _, stage in stages}
    for name, service in TICKFLOW_SERVICES.items():
        assert service["build"]["context"] == "." and service["build"]["target"] in targets, name
    assert TICKFLOW_SERVICES["trader"]["build"]["target"] == "serve"  # the serving path needs no torch
    ignored = (REPO / ".dockerignore").read_text().split()
    assert {".venv", ".tickflow", ".git", ".env"} <= set(ignored)


def test_serving_requirements_are_pinned_as_in_requirements_txt() -> None:
    def pins(path: Path) -> dict[str, str]:
        lines = [ln.split("#")[0].strip() for ln in path.read_text().splitlines()]
        return dict(ln.split("==") for ln in lines if ln)

    full, serve = pins(REPO / "requirements.txt"), pins(REPO / "infra/compose/requirements-serve.txt")
    assert serve.items() <= full.items()
    assert "torch" not in serve and "stable-baselines3" not in serve


def test_monitoring_configuration_is_consistent() -> None:
    prom = yaml.safe_load((REPO / "infra/compose/prometheus.yml").read_text())
    targets = [t for job in prom["scrape_configs"] for sc in job["static_configs"] for t in sc["targets"]]
    for target in targets:
        host = target.split(":")[0]
        assert host in SERVICES or host == "localhost", f"prometheus scrapes unknown service {host}"
    datasources = yaml.safe_load((REPO / "infra/compose/grafana/provisioning/datasources/prometheus.yml").read_text())
    uid = datasources["datasources"][0]["uid"]
    dashboard = json.loads((REPO / "infra/compose/grafana/dashboards/tickflow.json").read_text())
    assert dashboard["panels"], "the dashboard has no panels"
    for panel in dashboard["panels"]:
        assert panel["datasource"]["uid"] == uid, panel["title"]
        assert all(t["expr"] for t in panel["targets"]), panel["title"]


# -- docker-compose.cluster.yml: three nodes layered over the stack ------------------------------------------
def _merged(base: Any, over: Any) -> Any:
    """``over`` layered on ``base`` as `docker compose -f base -f over` does: mappings merge, sequences join
    (without repeats), anything else is replaced."""
    if isinstance(base, dict) and isinstance(over, dict):
        return {k: _merged(base[k], v) if k in base else v for k, v in over.items()} | {
            k: v for k, v in base.items() if k not in over}
    if isinstance(base, list) and isinstance(over, list):
        return base + [v for v in over if v not in base]
    return over


def _cluster() -> dict[str, Any]:
    merged: dict[str, Any] = _merged(_doc(), yaml.safe_load(CLUSTER.read_text()))
    return merged


NODES = ("kafka", "kafka-2", "kafka-3")


def test_the_cluster_override_is_valid_alone_and_layered() -> None:
    schema = json.loads((REPO / "infra/compose/compose-spec.json").read_text())
    jsonschema.Draft7Validator(schema).validate(yaml.safe_load(CLUSTER.read_text()))
    jsonschema.Draft7Validator(schema).validate(_cluster())


def test_the_cluster_has_three_nodes_one_quorum_and_replicates_every_topic_three_times() -> None:
    services = _cluster()["services"]
    envs = [services[n]["environment"] for n in NODES]
    assert [e["KAFKA_NODE_ID"] for e in envs] == ["1", "2", "3"]
    assert len({e["CLUSTER_ID"] for e in envs}) == 1
    assert {e["KAFKA_CONTROLLER_QUORUM_VOTERS"] for e in envs} == {"1@kafka:9093,2@kafka-2:9093,3@kafka-3:9093"}
    for name, e in zip(NODES, envs, strict=True):
        assert services[name]["image"] == "apache/kafka:4.1.1"
        assert e["KAFKA_ADVERTISED_LISTENERS"].startswith(f"INTERNAL://{name}:29092,EXTERNAL://127.0.0.1:")
        for key in ("DEFAULT_REPLICATION_FACTOR", "OFFSETS_TOPIC_REPLICATION_FACTOR",
                    "TRANSACTION_STATE_LOG_REPLICATION_FACTOR", "SHARE_COORDINATOR_STATE_TOPIC_REPLICATION_FACTOR"):
            assert e[f"KAFKA_{key}"] == "3", f"{name}: KAFKA_{key}"
        for key in ("MIN_INSYNC_REPLICAS", "TRANSACTION_STATE_LOG_MIN_ISR", "SHARE_COORDINATOR_STATE_TOPIC_MIN_ISR"):
            assert e[f"KAFKA_{key}"] == "2", f"{name}: KAFKA_{key}"
        assert name in " ".join(services[name]["healthcheck"]["test"])
        assert all(p.startswith("127.0.0.1:") for p in services[name]["ports"])
    assert len({v for n in NODES for v in services[n]["volumes"]}) == 3, "each node needs its own data volume"
    ksql = services["ksqldb-server"]["environment"]
    assert ksql["KSQL_KSQL_INTERNAL_TOPIC_REPLICAS"] == ksql["KSQL_KSQL_STREAMS_REPLICATION_FACTOR"] == "3"


def test_on_the_cluster_every_service_lists_the_three_nodes_and_topics_wait_for_all_of_them() -> None:
    services = _cluster()["services"]
    for name, service in services.items():
        for dep, spec in (service.get("depends_on") or {}).items():
            assert dep in services, f"{name} depends on unknown service {dep}"
            if spec["condition"] == "service_healthy":
                assert "healthcheck" in services[dep], f"{name} waits for {dep}, which has no check"
        if str(service.get("image", "")).startswith("tickflow-") and name != "policy":
            assert service["environment"]["KAFKA_BOOTSTRAP"] == "kafka:29092,kafka-2:29092,kafka-3:29092", name
    # `create-topics` takes min(3, brokers listed): all three must be up first
    assert set(NODES) <= {d for d, s in services["topics"]["depends_on"].items() if s["condition"] == "service_healthy"}
    env = _env_example()
    for match in _VAR.finditer(CLUSTER.read_text()):
        assert env.get(match.group(1)) == match.group(2), f"${{{match.group(1)}}}: default and .env.example differ"
