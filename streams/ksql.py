"""`tickflow ksql apply`: wait for a ksqlDB server to be RUNNING, then apply a .sql file statement by statement.

ksqlDB has no init-directory hook and headless mode turns the REST API off, so docker compose runs
this once the server answers. Uses the ``ksql`` package (ksql-python-ng) for the request format and
its reading of ksqlDB's errors; the HTTP calls themselves go through httpx directly, because the package's
``KSQLAPI.ksql()`` passes ``cert=`` to ``httpx.request``, which httpx 0.28 no longer accepts (TypeError).
``SET 'k' = 'v';`` lines are
client-side in ksqlDB's CLI; here they become the properties sent with the statements that follow.
The file's statements are re-runnable (IF NOT EXISTS / CREATE OR REPLACE), so applying twice is harmless.
"""

from __future__ import annotations

import json
import logging
import re
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

_SET = re.compile(r"^SET\s+'([^']+)'\s*=\s*'([^']*)'$", re.IGNORECASE | re.DOTALL)


class KsqlApplyError(Exception):
    """ksqlDB did not come up in time, or refused a statement."""


def split_statements(sql: str) -> list[str]:
    """The statements of a file: ``--`` comments removed, split on ``;`` outside quotes, in order."""
    statements: list[str] = []
    buf: list[str] = []
    quote: str | None = None
    i = 0
    while i < len(sql):
        ch = sql[i]
        if quote:
            buf.append(ch)
            if ch == quote:
                quote = None
        elif ch in "'`\"":
            quote = ch
            buf.append(ch)
        elif ch == "-" and sql.startswith("--", i):
            end = sql.find("\n", i)
            i = len(sql) if end < 0 else end
            continue
        elif ch == ";":
            text = " ".join("".join(buf).split())
            if text:
                statements.append(text + ";")
            buf = []
        else:
            buf.append(ch)
        i += 1
    if " ".join("".join(buf).split()):
        raise KsqlApplyError(f"the file ends with a statement without ';': {''.join(buf).strip()[:80]!r}")
    return statements


def wait_until_running(url: str, timeout: float, echo: Callable[[str], None]) -> str:
    """Poll GET /info until ``KsqlServerInfo.serverStatus`` is RUNNING; return the server version.

    (The ksql package's own version check passes ``cert=`` to ``httpx.get``, which httpx no longer takes.)
    """
    import httpx

    deadline = time.monotonic() + timeout
    last = "no answer yet"
    while True:
        try:
            response = httpx.get(f"{url.rstrip('/')}/info", timeout=5.0)
            if response.status_code == 200:
                info = response.json().get("KsqlServerInfo", {})
                status = info.get("serverStatus", "")
                if status == "RUNNING":
                    return str(info.get("version", "?"))
                last = f"serverStatus {status or 'missing'}"
            else:
                last = f"HTTP {response.status_code}"
        except (httpx.HTTPError, ValueError) as err:  # refused, DNS, timeout, not JSON: not up yet
            last = f"{type(err).__name__}: {err}"
        if time.monotonic() >= deadline:
            raise KsqlApplyError(f"ksqlDB at {url} did not report RUNNING on /info within {timeout:.0f}s "
                                 f"(last: {last}); is the server started and the URL right?")
        echo(f"ksql apply: waiting for {url}/info to report RUNNING ({last})")
        time.sleep(min(1.0, max(deadline - time.monotonic(), 0.05)))


def describe(result: Any) -> str:
    """One line per entity of a /ksql response: the command's status and message, a warning's text
    (``warning_entity``: e.g. "Cannot add table 'BARS_1S': A table with the same name already exists"),
    or the entity's type and message; then the entity's warnings."""
    parts = []
    for entity in result if isinstance(result, list) else [result]:
        if not isinstance(entity, dict):
            parts.append(str(entity))
            continue
        status = entity.get("commandStatus") or {}
        kind = str(entity.get("@type", "ok"))
        if status:
            parts.append(f"{status.get('status', '?')}: {status.get('message', '')}".strip())
        elif kind == "warning_entity":
            parts.append(f"warning: {entity.get('message', '(no message)')}")
        else:
            parts.append(f"{kind}: {entity['message']}" if entity.get("message") else kind)
        parts.extend(f"warning: {w.get('message', w) if isinstance(w, dict) else w}"
                     for w in entity.get("warnings") or [])
    return "; ".join(parts) or "ok"


_TOPIC_CONFLICT = re.compile(
    r"A Kafka topic with the name '(?P<topic>[^']+)' already exists.*?KSQL expects (?P<want_p>\d+) partitions "
    r"\(topic has (?P<have_p>\d+)\), (?P<want_r>-?\d+) replication factor \(topic has (?P<have_r>\d+)\)"
    r"(?:, and (?P<want_ret>-?\d+) retention \(topic has (?P<have_ret>-?\d+)\))?", re.DOTALL)


def explain_topic_conflict(message: str) -> str | None:
    """For ksqlDB's "topic already exists with different configuration" refusal: what differs and how to fix it."""
    m = _TOPIC_CONFLICT.search(message)
    if not m:
        return None
    diffs = []
    if m["want_p"] != m["have_p"]:
        diffs.append(f"partitions: the statement wants {m['want_p']}, the topic has {m['have_p']}")
    if int(m["want_r"]) > 0 and int(m["have_r"]) < int(m["want_r"]):
        diffs.append(f"replicas: the statement wants {m['want_r']}, the topic has {m['have_r']}")
    if m["want_ret"] is not None and m["want_ret"] != m["have_ret"]:
        diffs.append(f"retention.ms: the statement wants {m['want_ret']}, the topic has {m['have_ret']}")
    topic = m["topic"]
    return (f"topic {topic!r} exists with another configuration ({'; '.join(diffs) or 'see the message'}). "
            f"Fix: if {topic!r} holds nothing you need (ksqlDB rebuilds it from its source), delete it "
            f"(kafka-topics.sh --bootstrap-server <broker> --delete --topic {topic}) and apply again; "
            f"otherwise change the statement's WITH clause (PARTITIONS, REPLICAS, RETENTION_MS) to match the topic.")


def run_statement(url: str, statement: str, properties: dict[str, str]) -> Any:
    """POST one statement to /ksql as the ksql package builds it; its error reading raises KSQLError."""
    import httpx
    from ksql.api import BaseAPI

    body = {"ksql": BaseAPI._validate_sql_string(statement), "streamsProperties": properties}
    response = httpx.post(f"{url.rstrip('/')}/ksql", content=json.dumps(body).encode(), timeout=60.0,
                          headers={"Content-Type": "application/vnd.ksql.v1+json; charset=utf-8",
                                   "Accept": "application/vnd.ksql.v1+json"})
    text = response.text
    try:
        json.loads(text)
    except ValueError:
        raise KsqlApplyError(f"ksqlDB answered HTTP {response.status_code} with a body that is not JSON: "
                             f"{text.strip()[:200]!r}") from None
    BaseAPI._raise_for_status(response, text)
    return json.loads(text)


def apply_file(url: str, path: Path, timeout: float = 120.0, echo: Callable[[str], None] = print) -> int:
    """Apply every statement of ``path``; return how many were sent. Stops at the first refused one."""
    import httpx
    from ksql.errors import KSQLError

    logging.getLogger("httpx").setLevel(logging.WARNING)
    if not path.exists():
        raise KsqlApplyError(f"{path} does not exist")
    statements = split_statements(path.read_text(encoding="utf-8"))
    version = wait_until_running(url, timeout, echo)
    echo(f"ksql apply: ksqlDB {version} at {url} is RUNNING; applying {len(statements)} statements of {path}")
    properties: dict[str, str] = {}
    sent = 0
    for n, statement in enumerate(statements, start=1):
        head = statement[:70] + ("..." if len(statement) > 70 else "")
        match = _SET.match(statement.rstrip(";").strip())
        if match:
            properties[match.group(1)] = match.group(2)
            echo(f"[{n}/{len(statements)}] {head} -> property set for the statements that follow")
            continue
        try:
            result = run_statement(url, statement, dict(properties))
        except KSQLError as err:
            message, code = [*err.args, None, None][:2]
            echo(f"[{n}/{len(statements)}] {head} -> REFUSED (error {code}): {message}")
            hint = explain_topic_conflict(str(message))
            raise KsqlApplyError(f"statement {n} was refused (error {code}): {message}"
                                 + (f"\n  {hint}" if hint else "") + f"\n  {statement}") from err
        except KsqlApplyError as err:
            raise KsqlApplyError(f"statement {n}: {err}\n  {statement}") from err
        except (httpx.HTTPError, ValueError) as err:
            raise KsqlApplyError(f"statement {n} could not be sent to {url}: {type(err).__name__}: {err}") from err
        sent += 1
        echo(f"[{n}/{len(statements)}] {head} -> {describe(result)}")
    echo(f"ksql apply: {sent} statements applied to {url}")
    return sent
