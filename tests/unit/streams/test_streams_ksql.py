"""ksqldb.sql against the Faust spec, and `tickflow ksql apply`'s client logic.

The apply tests talk to a small HTTP server on 127.0.0.1 that plays ksqlDB's REST API (GET /info,
POST /ksql) with response shapes copied from a real ksqlDB 0.29.0: THIS IS NOT ksqlDB. It checks only
the client's waiting, splitting, properties, printing and error handling; it is no evidence that the
SQL is valid. That evidence is the static rules of the real server (test_ksql_rules.py) and the opt-in
suite on a real server (tests/integration/test_ksqldb_real.py, `make test-ksqldb KSQLDB_URL=...`).
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

from contracts.feature_schema import V2
from contracts.topics import MARKET_BOOKS, MARKET_TRADES, SIGNALS_BARS, SIGNALS_FEATURES
from streams.ksql import KsqlApplyError, apply_file, describe, explain_topic_conflict, split_statements
from streams.ksql_sql import SINK_RETENTION_MS, bar_table_name, bar_topic, render, sink_topic, store_retention_s
from streams.spec import BAR_FIELDS, DEFAULT_GRACE_MS, DEFAULT_INTERVALS_S, StreamsSettings
from tests.helpers import REPO

SQL = (REPO / "ksqldb.sql").read_text()
_UNIT_MS = {"SECONDS": 1000, "MINUTES": 60_000, "HOURS": 3_600_000, "DAYS": 86_400_000}


def _ms(n: str, unit: str) -> int:
    return int(n) * _UNIT_MS[unit]


def test_ksqldb_sql_is_the_rendering_of_the_spec() -> None:
    assert render() == SQL, "ksqldb.sql is stale: run `python -m streams.ksql_sql > ksqldb.sql`"


def test_bar_tables_match_the_faust_windows_grace_and_columns() -> None:
    settings = StreamsSettings()
    assert settings.intervals == DEFAULT_INTERVALS_S and settings.grace_ms == DEFAULT_GRACE_MS
    statements = split_statements(SQL)
    for interval in settings.intervals:
        [stmt] = [s for s in statements if f" {bar_table_name(interval)} " in s]
        assert stmt.startswith("CREATE TABLE IF NOT EXISTS")
        window = re.search(r"TUMBLING \(SIZE (\d+) (\w+), RETENTION (\d+) (\w+), GRACE PERIOD (\d+) SECONDS\)", stmt)
        assert window, stmt
        assert _ms(window[1], window[2]) == interval * 1000 and int(window[5]) * 1000 == settings.grace_ms
        assert _ms(window[3], window[4]) == store_retention_s(interval) * 1000 >= interval * 1000 + settings.grace_ms
        assert stmt.endswith("EMIT FINAL;") and "FROM trades" in stmt and "VALUE_FORMAT = 'JSON'" in stmt
        assert re.findall(r"AS `(\w+)`", stmt) == list(BAR_FIELDS)
        assert "AS_VALUE(WINDOWSTART) AS `window_start`" in stmt and "AS_VALUE(WINDOWEND) AS `window_end`" in stmt
        assert f"KAFKA_TOPIC = 'ksql.bars.{interval}s'" in stmt and f"RETENTION_MS = {SINK_RETENTION_MS}" in stmt
    [latest] = [s for s in statements if "TABLE IF NOT EXISTS latest_features" in s]
    assert re.findall(r"features\['(\w+)'\]", latest) == list(V2)  # the worker's schema, book features too
    # The documented pull queries: the last hour of 1-minute bars, the last day of 5-minute bars.
    assert store_retention_s(60) >= 3600 and store_retention_s(300) >= 86_400
    # Every topic comes from the registry or from sink_topic.
    topics = set(re.findall(r"KAFKA_TOPIC = '([^']+)'", SQL))
    assert topics == {MARKET_TRADES.name, SIGNALS_BARS.name, SIGNALS_FEATURES.name, sink_topic("latest_bars"),
                      sink_topic("latest_features"), *(bar_topic(i) for i in settings.intervals),
                      MARKET_BOOKS.name, sink_topic("latest_book_snapshot"), sink_topic("latest_top_of_book")}
    assert "TIMESTAMP = 'ts_event'" in SQL and "STDDEV_SAMP(" not in SQL.upper()
    creates = [s for s in statements if s.startswith("CREATE")]
    assert len(creates) == 11 and all("IF NOT EXISTS" in s or "OR REPLACE" in s for s in creates)


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
        if "conflict" in text:
            self._send(400, {"@type": "statement_error", "error_code": 50000, "message": (
                "Could not write the statement 'CREATE TABLE conflict ...' into the command topic.\nCaused by: A "
                "Kafka topic with the name 'ksql.bars.60s' already exists, with different partition/replica/retention "
                "configuration than required. KSQL expects 4 partitions (topic has 1), 1 replication factor (topic "
                "has 1), and 3153600000000 retention (topic has 604800000).")})
            return
        name = text.split()[5] if "IF NOT EXISTS" in text else text.split()[2]
        exists = name in st.setdefault("objects", set())
        st["objects"].add(name)
        kind = "Stream" if text.split()[1] == "STREAM" else "Table"
        if exists:  # ksqlDB 0.29.0's answer to CREATE ... IF NOT EXISTS of an existing source (DistributingExecutor)
            self._send(200, [{"@type": "warning_entity", "statementText": text, "warnings": [],
                              "message": f"Cannot add {kind.lower()} {name.upper()}: A {kind.lower()} with the "
                                         "same name already exists."}])
            return
        self._send(200, [{"@type": "currentStatus", "statementText": text, "commandId": f"x/{name}/create",
                          "commandStatus": {"status": "SUCCESS", "message": f"{kind} created and running"},
                          "commandSequenceNumber": 2, "warnings": []}])


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
    assert sent == 11 and state["info_calls"] == 3
    assert sum("waiting for" in line for line in lines) == 2
    assert all(b["streamsProperties"] == {"auto.offset.reset": "earliest"} for b in state["received"])
    assert [b["ksql"] for b in state["received"]] == [s for s in split_statements(SQL) if not s.startswith("SET")]
    assert any("bars_60s" in line and "SUCCESS: Table created and running" in line for line in lines)
    lines.clear()
    assert apply_file(url, REPO / "ksqldb.sql", timeout=5, echo=lines.append) == 11
    # The second time every statement comes back as a warning_entity: its text is printed, not its type.
    assert sum("-> warning: Cannot add" in line and "with the same name already exists" in line
               for line in lines) == 11
    assert not any("warning_entity" in line for line in lines)


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


def test_a_topic_with_another_configuration_is_explained(fake_ksql: tuple[str, dict], tmp_path: Path) -> None:
    url, _ = fake_ksql
    bad = tmp_path / "conflict.sql"
    bad.write_text("CREATE TABLE conflict AS SELECT 1 FROM trades;\n")
    lines: list[str] = []
    with pytest.raises(KsqlApplyError) as err:
        apply_file(url, bad, timeout=5, echo=lines.append)
    text = str(err.value)
    assert "statement 1 was refused (error 50000)" in text and "CREATE TABLE conflict" in text
    assert ("partitions: the statement wants 4, the topic has 1; retention.ms: the statement wants "
            "3153600000000, the topic has 604800000") in text
    assert "--delete --topic ksql.bars.60s" in text and "WITH clause" in text
    assert "REFUSED (error 50000)" in lines[-1]
    assert explain_topic_conflict("line 1:1: mismatched input") is None


def test_describe_prints_the_text_of_every_entity() -> None:
    assert describe([{"@type": "warning_entity", "message": "Cannot add stream 'TRADES': exists", "warnings": []}]
                    ) == "warning: Cannot add stream 'TRADES': exists"
    assert describe([{"@type": "currentStatus", "commandStatus": {"status": "SUCCESS", "message": "Stream created"},
                      "warnings": [{"message": "w1"}]}]) == "SUCCESS: Stream created; warning: w1"
