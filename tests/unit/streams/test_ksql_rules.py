"""ksqldb.sql and the README's ksql queries against the rules a real ksqlDB 0.29.0 server enforced.

No server is needed (the opt-in real-server suite is tests/integration/test_ksqldb_real.py). These checks
fail on the ksqldb.sql committed before issue 11 (`git show 1fc2953:ksqldb.sql`): 13 unquoted uses of the
reserved word `size`, 6 CASE expressions mixing DOUBLE and DECIMAL, 2 two-column keys in the KAFKA
format. ``KSQL_RULES_FILE=/path/to.sql`` checks another file instead of ksqldb.sql.
"""

from __future__ import annotations

import os
import re
from pathlib import Path

import pytest

from tests.helpers import REPO
from tests.unit.streams.ksql_rules_support import RESERVED_WORDS, check_sql

SQL_FILE = Path(os.environ.get("KSQL_RULES_FILE", REPO / "ksqldb.sql"))


def readme_queries() -> list[str]:
    """The SQL blocks of the README (the ad-hoc queries and the ksql CLI session)."""
    return re.findall(r"```sql\n(.*?)```", (REPO / "README.md").read_text(), re.DOTALL)


def test_ksqldb_sql_keeps_the_rules_of_the_real_server() -> None:
    problems = check_sql(SQL_FILE.read_text())
    assert not problems, f"{SQL_FILE}: {len(problems)} problems:\n" + "\n".join(problems)


def test_readme_queries_keep_the_rules_of_the_real_server() -> None:
    blocks = readme_queries()
    assert len(blocks) >= 2, "the README's ksql queries and CLI session are ```sql blocks"
    for block in blocks:
        problems = check_sql(block, known=(REPO / "ksqldb.sql").read_text())
        assert not problems, "README query:\n" + "\n".join(problems)


def test_the_reserved_word_list_is_ksqldb_s() -> None:
    assert len(RESERVED_WORDS) == 88 and {"SIZE", "RETENTION", "WINDOW", "TOPIC", "SELECT"} <= RESERVED_WORDS
    # nonReserved in the grammar: usable unquoted.
    assert not {"KEY", "TIMESTAMP", "EMIT", "FINAL", "GRACE", "PERIOD", "TYPE", "STRING"} & RESERVED_WORDS


@pytest.mark.parametrize(("sql", "expected"), [
    ("CREATE STREAM s (k VARCHAR KEY, size DOUBLE) WITH (KAFKA_TOPIC='t', VALUE_FORMAT='JSON');",
     "'size' (a column name) is a reserved word"),
    ("CREATE STREAM s (k VARCHAR KEY, `size` DOUBLE) WITH (KAFKA_TOPIC='t', VALUE_FORMAT='JSON');\n"
     "SELECT SUM(price * size) AS v FROM s GROUP BY k EMIT CHANGES;", "'size' (a column in an expression)"),
    ("CREATE STREAM s (k VARCHAR KEY, v DOUBLE) WITH (KAFKA_TOPIC='t', VALUE_FORMAT='JSON');\n"
     "SELECT k, v AS window FROM s EMIT CHANGES;", "'window' (an alias)"),
    ("CREATE STREAM s (k VARCHAR KEY, v DOUBLE, side VARCHAR) WITH (KAFKA_TOPIC='t', VALUE_FORMAT='JSON');\n"
     "SELECT SUM(CASE WHEN side = 'buy' THEN v ELSE 0.0 END) AS b FROM s GROUP BY k EMIT CHANGES;",
     "(v : DOUBLE, 0.0 : DECIMAL)"),
    ("CREATE STREAM s (k VARCHAR KEY, v DOUBLE, side VARCHAR) WITH (KAFKA_TOPIC='t', VALUE_FORMAT='JSON');\n"
     "SELECT SUM(CASE WHEN side = 'buy' THEN v ELSE 0 END) AS b FROM s GROUP BY k EMIT CHANGES;",
     "(v : DOUBLE, 0 : INTEGER)"),
    ("CREATE STREAM s (k VARCHAR KEY, i INT) WITH (KAFKA_TOPIC='t', KEY_FORMAT='KAFKA', VALUE_FORMAT='JSON');\n"
     "CREATE TABLE t AS SELECT k, i, COUNT(*) AS n FROM s GROUP BY k, i EMIT CHANGES;",
     "2 key columns in the KAFKA key format (inherited from its source)"),
    ("CREATE TABLE t (a VARCHAR PRIMARY KEY, b INT PRIMARY KEY, v INT) WITH (KAFKA_TOPIC='t', VALUE_FORMAT='JSON');",
     "2 key columns in the KAFKA key format (the default)"),
])
def test_each_rule_refuses_what_the_server_refused(sql: str, expected: str) -> None:
    problems = check_sql(sql)
    assert any(expected in p for p in problems), problems


def test_the_fixed_forms_pass() -> None:
    assert check_sql(
        "CREATE STREAM s (k VARCHAR KEY, `size` DOUBLE, i INT, side VARCHAR) WITH (KAFKA_TOPIC='t', "
        "KEY_FORMAT='KAFKA', VALUE_FORMAT='JSON');\n"
        "CREATE TABLE w WITH (KEY_FORMAT='KAFKA') AS SELECT k, SUM(CASE WHEN side = 'buy' THEN `size` "
        "ELSE CAST(0 AS DOUBLE) END) AS `b` FROM s WINDOW TUMBLING (SIZE 1 MINUTE, RETENTION 1 HOUR, "
        "GRACE PERIOD 2 SECONDS) GROUP BY k EMIT FINAL;\n"
        "CREATE TABLE t WITH (KEY_FORMAT='JSON') AS SELECT k, i, COUNT(*) AS n FROM s GROUP BY k, i EMIT CHANGES;"
    ) == []
