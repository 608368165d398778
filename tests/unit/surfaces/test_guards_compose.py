"""Grafana in compose needs the admin password from .env: no admin/admin default, no anonymous viewers
unless GRAFANA_ANONYMOUS=true."""

from __future__ import annotations

import subprocess

import pytest
import yaml

from tests.helpers import REPO

GRAFANA = yaml.safe_load((REPO / "docker-compose.yml").read_text())["services"]["grafana"]


def test_no_default_password_and_no_anonymous_viewers_by_default() -> None:
    env = GRAFANA["environment"]
    assert env["GF_SECURITY_ADMIN_PASSWORD"] == "${GRAFANA_ADMIN_PASSWORD:-}"
    assert env["GF_AUTH_ANONYMOUS_ENABLED"] == "${GRAFANA_ANONYMOUS:-false}"


@pytest.mark.parametrize(("password", "starts"), [("", False), ("admin", False), ("a-real-one", True)])
def test_the_entrypoint_refuses_an_empty_or_admin_password(password: str, starts: bool) -> None:
    shell, flag, script = GRAFANA["entrypoint"]
    script = script.replace("$$", "$").replace("exec /run.sh", "echo started")  # compose unescapes $$
    done = subprocess.run([shell, flag, script], env={"GF_SECURITY_ADMIN_PASSWORD": password},
                          capture_output=True, text=True, timeout=10)
    if starts:
        assert done.returncode == 0 and done.stdout.strip() == "started", done.stderr
    else:
        assert done.returncode == 1 and "GRAFANA_ADMIN_PASSWORD" in done.stderr and "started" not in done.stdout
