"""ksqldb.sql against the Faust spec, and `tickflow ksql apply`'s client logic.

ksqlDB itself cannot run here (its jars are not on Maven Central; it runs in docker compose). The
apply tests talk to a small HTTP server on 127.0.0.1 that plays ksqlDB's REST API (GET /info,
POST /ksql): THIS IS NOT ksqlDB, it checks only our client's waiting, splitting, properties,
printing and error handling.
"""

from __future__ import annotations

import json
import re
import subprocess
import sys
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

from contracts.feature_schema import FEATURE_NAMES
from streams.ksql import KsqlApplyError, apply_file, split_statements
from streams.ksql_sql import bar_table_name, render
from streams.spec import BAR_FIELDS, DEFAULT_GRACE_MS, DEFAULT_INTERVALS_S, StreamsSettings
from tests.helpers import REPO

SQL = (REPO / "ksqldb.sql").read_text()


def test_ksqldb_sql_is_the_rendering_of_the_spec() -> None:
    assert render() == SQL, "ksqldb.sql is stale: run `python -m streams.ksql_sql > ksqldb.sql`"


def test_bar_tables_match_the_faust_windows_grace_and_columns() -> None:
    settings = StreamsSettings()
    assert settings.intervals == DEFAULT_INTERVALS_S and settings.grace_ms == DEFAULT_GRACE_MS
    statements = split_statements(SQL)
    for interval in settings.intervals:
        [stmt] = [s for s in statements if f" {bar_table_name(interval)} " in s]
        assert stmt.startswith("CREATE TABLE IF NOT EXISTS")
        size = re.search(r"TUMBLING \(SIZE (\d+) SECONDS, GRACE PERIOD (\d+) SECONDS\)", stmt)
        assert size and int(size.group(1)) == interval and int(size.group(2)) * 1000 == settings.grace_ms
        assert stmt.endswith("EMIT FINAL;") and "FROM trades" in stmt and "VALUE_FORMAT = 'JSON'" in stmt
        assert re.findall(r"AS `(\w+)`", stmt) == list(BAR_FIELDS)
        assert "AS_VALUE(WINDOWSTART) AS `window_start`" in stmt and "AS_VALUE(WINDOWEND) AS `window_end`" in stmt
        assert f"KAFKA_TOPIC = 'ksql.bars.{interval}s'" in stmt
    [latest] = [s for s in statements if "TABLE IF NOT EXISTS latest_features" in s]
    assert re.findall(r"features\['(\w+)'\]", latest) == list(FEATURE_NAMES)
    assert "TIMESTAMP = 'ts_event'" in SQL and "STDDEV_SAMP(" not in SQL.upper()
    creates = [s for s in statements if s.startswith("CREATE")]
    assert len(creates) == 8 and all("IF NOT EXISTS" in s or "OR REPLACE" in s for s in creates)


def test_split_keeps_semicolons_in_quotes_and_drops_comments() -> None:
    assert split_statements("-- a; comment\nSET 'a' = 'x;y';\nSELECT ';' FROM t; -- tail\n") == [
        "SET 'a' = 'x;y';", "SELECT ';' FROM t;"]
    with pytest.raises(KsqlApplyError, match="without ';'"):
        split_statements("CREATE STREAM s (a INT)")


class FakeKsql(BaseHTTPRequestHandler):
    """Plays ksqlDB's REST API. Not ksqlDB."""

    state: dict = {}

    def log_message(self, *args: object) -> None:
        pass

    def _send(self, code: int, body: object) -> None:
        data = json.dumps(body).encode()
        self.send_response(code)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def do_GET(self) -> None:
        st = self.state
        st["info_calls"] = st.get("info_calls", 0) + 1
        status = "RUNNING" if st["info_calls"] > st.get("starting_for", 0) else "STARTING"
        self._send(200, {"KsqlServerInfo": {"version": "0.29.0", "serverStatus": status}})

    def do_POST(self) -> None:
        body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
        st = self.state
        st.setdefault("received", []).append(body)
        text = body["ksql"]
        if "refuse" in text:
            self._send(400, {"@type": "statement_error", "error_code": 40001, "message": "line 1:1: mismatched input"})
            return
        name = text.split()[5] if "IF NOT EXISTS" in text else text.split()[2]
        exists = name in st.setdefault("objects", set())
        st["objects"].add(name)
        message = f"A {name} with the same name already exists." if exists else "Created"
        self._send(200, [{"@type": "currentStatus", "statementText": text,
                          "commandStatus": {"status": "SUCCESS", "message": message}, "warnings": []}])


@pytest.fixture
def fake_ksql() -> Iterator[tuple[str, dict]]:
    FakeKsql.state = {}
    server = ThreadingHTTPServer(("127.0.0.1", 0), FakeKsql)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield f"http://127.0.0.1:{server.server_address[1]}", FakeKsql.state
    server.shutdown()


def test_apply_waits_for_running_sends_every_statement_with_the_set_properties_and_is_rerunnable(
        fake_ksql: tuple[str, dict]) -> None:
    url, state = fake_ksql
    state["starting_for"] = 2
    lines: list[str] = []
    sent = apply_file(url, REPO / "ksqldb.sql", timeout=20, echo=lines.append)
    assert sent == 8 and state["info_calls"] == 3
    assert sum("waiting for" in line for line in lines) == 2
    assert all(b["streamsProperties"] == {"auto.offset.reset": "earliest"} for b in state["received"])
    assert [b["ksql"] for b in state["received"]] == [s for s in split_statements(SQL) if not s.startswith("SET")]
    assert any("bars_60s" in line and "SUCCESS: Created" in line for line in lines)
    lines.clear()
    assert apply_file(url, REPO / "ksqldb.sql", timeout=5, echo=lines.append) == 8
    assert sum("already exists" in line for line in lines) == 8


def test_apply_cli_reports_a_refused_statement_and_a_server_that_never_runs(fake_ksql: tuple[str, dict],
                                                                            tmp_path: Path) -> None:
    url, state = fake_ksql
    bad = tmp_path / "bad.sql"
    bad.write_text("CREATE STREAM IF NOT EXISTS a (x INT) WITH (KAFKA_TOPIC='a', VALUE_FORMAT='JSON');\n"
                   "CREATE STREAM refuse;\n")
    done = subprocess.run([sys.executable, "-m", "tickflow", "ksql", "apply", "--url", url, "--file", str(bad)],
                          capture_output=True, text=True, timeout=60, cwd=REPO)
    assert done.returncode == 1
    assert "[1/2]" in done.stdout and "statement 2 was refused (error 40001): line 1:1: mismatched input" in done.stderr
    state["starting_for"] = 10**6
    with pytest.raises(KsqlApplyError, match="did not report RUNNING on /info within 1s"):
        apply_file(url, bad, timeout=1, echo=lambda _: None)
    with pytest.raises(KsqlApplyError, match="did not report RUNNING"):
        apply_file("http://127.0.0.1:9", bad, timeout=1, echo=lambda _: None)
