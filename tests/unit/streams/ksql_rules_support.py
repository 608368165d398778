"""Static checks of ksqlDB SQL against rules a real ksqlDB 0.29.0 server enforced (no server needed).

Each rule is one that the real server used to refuse the committed ksqldb.sql (issue 11):

- no reserved word as an unquoted identifier ("size" is a reserved keyword and it can't be used as an
  identifier);
- the branches of a CASE are of one type ("Type for the default clause should be the same as for 'THEN'
  clauses. THEN type: DOUBLE. DEFAULT type: DECIMAL(2, 1)": a bare ``0.0`` is a DECIMAL, ``0`` an INTEGER);
- a key format holds its key columns ("The 'KAFKA' format only supports a single field").

The checker understands the subset of ksqlDB's grammar that tickflow writes (CREATE STREAM/TABLE with
column lists, CREATE TABLE ... AS SELECT, SELECT with WHERE/WINDOW/GROUP BY/EMIT); it is not a parser.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

# ksqlDB 0.29.0's reserved words: the keyword tokens of its grammar that the `nonReserved` rule does not
# list, i.e. the words `identifier` does not accept unquoted. Source: github.com/confluentinc/ksql, tag
# v0.29.0 (commit 518dbfe11a34b15e48eb5f120aabbaceac1cf3ba),
# ksqldb-parser/src/main/antlr4/io/confluent/ksql/parser/SqlBase.g4 (token rules minus `nonReserved`);
# docs/reference/sql/appendix.md ("Keywords") lists the keywords with examples, and
# docs/reference/sql/syntax/lexical-structure.md says a reserved word needs back-quotes as an identifier.
RESERVED_WORDS: frozenset[str] = frozenset({
    "ADVANCE", "ALL", "AND", "AS", "AT", "BEGINNING", "BETWEEN", "BY", "CASE", "CAST", "CATALOG", "CONNECTOR",
    "CONNECTORS", "CREATE", "DAYS", "DECIMAL", "DELETE", "DESCRIBE", "DISTINCT", "DROP", "ELSE", "END",
    "EXISTS", "EXPORT", "EXTENDED", "FALSE", "FROM", "FULL", "GROUP", "HAVING", "HOPPING", "HOURS", "IN",
    "INNER", "INSERT", "INTO", "IS", "JOIN", "LEFT", "LIKE", "LIMIT", "LIST", "LOAD", "MATERIALIZED",
    "MILLISECOND", "MILLISECONDS", "MINUTES", "MONTHS", "NAMESPACE", "NOT", "NULL", "ON", "OR", "OUTER",
    "PAUSE", "PRINT", "PROPERTIES", "QUERIES", "QUERY", "RENAME", "RESUME", "RETENTION", "RIGHT", "RUN",
    "SAMPLE", "SCRIPT", "SECONDS", "SELECT", "SIZE", "STREAM", "STREAMS", "TABLE", "TERMINATE", "THEN", "TO",
    "TOPIC", "TOPICS", "TRUE", "TUMBLING", "UNSET", "VALUES", "VIEW", "WHEN", "WHERE", "WINDOW", "WITH",
    "WITHIN", "YEARS",
})

# Reserved words that are keywords inside expressions (not identifiers there).
_EXPRESSION_KEYWORDS = frozenset({
    "AND", "OR", "NOT", "CASE", "WHEN", "THEN", "ELSE", "END", "IS", "NULL", "TRUE", "FALSE", "IN", "BETWEEN",
    "LIKE", "AS", "DISTINCT", "CAST", "ALL",
})
# Key formats that hold one column only (ksqlDB's KAFKA format; NONE holds none).
_SINGLE_FIELD_KEY_FORMATS = frozenset({"KAFKA", "NONE"})
_DEFAULT_KEY_FORMAT = "KAFKA"  # ksql.persistence.default.format.key
_TYPES = {"VARCHAR": "STRING", "STRING": "STRING", "INT": "INTEGER", "INTEGER": "INTEGER", "BIGINT": "BIGINT",
          "DOUBLE": "DOUBLE", "BOOLEAN": "BOOLEAN", "DECIMAL": "DECIMAL"}

_TOKEN = re.compile(r"""
    (?P<ws>\s+) | (?P<comment>--[^\n]*) | (?P<string>'(?:[^']|'')*') | (?P<quoted>`[^`]*`)
  | (?P<number>\d+(?:\.\d*)?(?:[eE][+-]?\d+)?) | (?P<word>[A-Za-z_][A-Za-z_0-9]*)
  | (?P<op><>|<=|>=|!=|=>|->|[(),;*/+\-=<>\[\].:])
""", re.VERBOSE)


@dataclass(frozen=True)
class Token:
    kind: str  # string, quoted, number, word, op
    text: str

    @property
    def upper(self) -> str:
        return self.text.upper()


def tokenize(sql: str) -> list[Token]:
    tokens, pos = [], 0
    while pos < len(sql):
        m = _TOKEN.match(sql, pos)
        if not m:
            raise ValueError(f"cannot read the SQL at {sql[pos:pos + 30]!r}")
        pos = m.end()
        if m.lastgroup not in ("ws", "comment"):
            tokens.append(Token(str(m.lastgroup), m.group()))
    return tokens


def statements(sql: str) -> list[list[Token]]:
    out: list[list[Token]] = [[]]
    for t in tokenize(sql):
        if t.text == ";":
            out.append([])
        else:
            out[-1].append(t)
    return [s for s in out if s]


def _name(t: Token) -> str:
    """An identifier as ksqlDB stores it: back-quoted as written, otherwise upper case."""
    return t.text[1:-1] if t.kind == "quoted" else t.upper


def _is(tokens: list[Token], i: int, *words: str) -> bool:
    return all(i + k < len(tokens) and tokens[i + k].upper == w for k, w in enumerate(words))


def _close(tokens: list[Token], i: int) -> int:
    """The index of the ``)`` matching the ``(`` at i."""
    depth = 0
    for j in range(i, len(tokens)):
        depth += {"(": 1, ")": -1}.get(tokens[j].text, 0)
        if depth == 0:
            return j
    raise ValueError("unbalanced parentheses")


def _split_top(tokens: list[Token]) -> list[list[Token]]:
    """Split on commas outside parentheses and brackets."""
    parts: list[list[Token]] = [[]]
    depth = 0
    for t in tokens:
        if t.text in "([":
            depth += 1
        elif t.text in ")]":
            depth -= 1
        if t.text == "," and depth == 0:
            parts.append([])
        else:
            parts[-1].append(t)
    return [p for p in parts if p]


@dataclass
class Source:
    """A stream or table the file declares: its columns' types and its key."""

    columns: dict[str, str] = field(default_factory=dict)
    key_format: str = _DEFAULT_KEY_FORMAT


@dataclass
class Checker:
    """Checks statements in order, remembering the sources earlier statements declared."""

    sources: dict[str, Source] = field(default_factory=dict)
    problems: list[str] = field(default_factory=list)

    def check(self, sql: str) -> list[str]:
        for n, stmt in enumerate(statements(sql), start=1):
            self._statement(n, stmt)
        return self.problems

    # -- one statement ------------------------------------------------------------------------------
    def _statement(self, n: int, t: list[Token]) -> None:
        where = f"statement {n} ({' '.join(x.text for x in t[:6])} ...)"
        if not _is(t, 0, "CREATE") and not _is(t, 0, "SELECT"):
            return
        i = 1
        if _is(t, i, "OR", "REPLACE"):
            i += 2
        name = ""
        if t[0].upper == "CREATE":
            i += 1  # STREAM / TABLE
            if _is(t, i, "IF", "NOT", "EXISTS"):
                i += 3
            self._identifier(t[i], where, "a stream/table name")
            name = _name(t[i])
            i += 1
        source = Source()
        if i < len(t) and t[i].text == "(":
            end = _close(t, i)
            keys = []
            for element in _split_top(t[i + 1:end]):
                self._identifier(element[0], where, "a column name")
                source.columns[_name(element[0])] = _TYPES.get(element[1].upper, element[1].upper)
                if any(x.upper == "KEY" for x in element[2:]):
                    keys.append(_name(element[0]))
            i = end + 1
            self._key_format(where, self._with(t, i), None, len(keys), source)
        select = 0 if t[0].upper == "SELECT" else next((k for k in range(i, len(t)) if t[k].upper == "SELECT"), None)
        if select is not None:
            self._query(where, t, select, i, source)
        if name:
            self.sources[name] = source

    def _with(self, t: list[Token], i: int) -> dict[str, str]:
        props: dict[str, str] = {}
        if _is(t, i, "WITH") and i + 1 < len(t) and t[i + 1].text == "(":
            for prop in _split_top(t[i + 2:_close(t, i + 1)]):
                props[prop[0].upper] = prop[-1].text.strip("'").upper()
        return props

    def _query(self, where: str, t: list[Token], select: int, with_at: int, out: Source) -> None:
        frm = next(k for k in range(select, len(t)) if t[k].upper == "FROM")
        self._identifier(t[frm + 1], where, "a source name")
        src = self.sources.get(_name(t[frm + 1]), Source())
        items = _split_top(t[select + 1:frm])
        for item in items:
            self._expression(where, item, src)
            if len(item) >= 2 and item[-2].upper == "AS":
                self._identifier(item[-1], where, "an alias")
                out.columns[_name(item[-1])] = self._type(item[:-2], src) or "?"
        clauses = {"WHERE", "WINDOW", "GROUP", "HAVING", "PARTITION", "EMIT", "LIMIT"}
        k, group_cols = frm + 2, 0
        while k < len(t):
            word = t[k].upper
            body_start = k + (2 if word in ("GROUP", "PARTITION") else 1)
            end = next((j for j in range(body_start, len(t)) if t[j].upper in clauses), len(t))
            body = t[body_start:end]
            if word in ("WHERE", "HAVING"):
                self._expression(where, body, src)
            elif word in ("GROUP", "PARTITION"):
                parts = _split_top(body)
                group_cols = len(parts)
                for part in parts:
                    self._expression(where, part, src)
            k = max(end, k + 1)
        if group_cols:
            self._key_format(where, self._with(t, with_at), src, group_cols, out)

    # -- rules --------------------------------------------------------------------------------------
    def _identifier(self, tok: Token, where: str, role: str) -> None:
        if tok.kind == "word" and tok.upper in RESERVED_WORDS:
            self.problems.append(f"{where}: {tok.text!r} ({role}) is a reserved word in ksqlDB; back-quote it "
                                 f"(`{tok.text}`) or rename it")

    def _expression(self, where: str, tokens: list[Token], src: Source) -> None:
        cast_depth: list[int] = []
        depth = 0
        for j, tok in enumerate(tokens):
            nxt = tokens[j + 1].text if j + 1 < len(tokens) else ""
            prev = tokens[j - 1].upper if j else ""
            if tok.text == "(":
                depth += 1
            elif tok.text == ")":
                depth -= 1
                if cast_depth and cast_depth[-1] > depth:
                    cast_depth.pop()
            elif tok.upper == "CAST" and nxt == "(":
                cast_depth.append(depth + 1)
            elif tok.kind == "word" and tok.upper in RESERVED_WORDS and tok.upper not in _EXPRESSION_KEYWORDS:
                in_cast_type = prev == "AS" and cast_depth and cast_depth[-1] == depth
                if nxt != "(" and not in_cast_type:
                    self._identifier(tok, where, "a column in an expression")
            elif tok.upper == "CASE":
                self._case(where, tokens[j:], src)

    def _case(self, where: str, tokens: list[Token], src: Source) -> None:
        """The THEN and ELSE branches of the CASE at tokens[0] must have one type."""
        branches: list[list[Token]] = []
        current: list[Token] | None = None
        depth = 0
        for tok in tokens[1:]:
            word = tok.upper if tok.kind == "word" else ""
            if depth == 0 and word in ("WHEN", "ELSE", "END"):
                if current is not None:
                    branches.append(current)
                current = [] if word == "ELSE" else None
                if word == "END":
                    break
                continue
            if depth == 0 and word == "THEN":
                current = []
                continue
            depth += {"CASE": 1}.get(word, 0) - (1 if word == "END" else 0)
            if current is not None:
                current.append(tok)
        types = {self._type(b, src) for b in branches} - {None, "NULL"}
        if len(types) > 1:
            shown = ", ".join(f"{' '.join(x.text for x in b)} : {self._type(b, src)}" for b in branches)
            self.problems.append(f"{where}: the branches of a CASE have different types ({shown}); ksqlDB wants "
                                 "one type (a bare 0.0 is a DECIMAL, 0 an INTEGER: use CAST(0 AS DOUBLE))")

    @staticmethod
    def _type(expr: list[Token], src: Source) -> str | None:
        if len(expr) == 1:
            tok = expr[0]
            if tok.kind == "number":
                return "DECIMAL" if "." in tok.text and "e" not in tok.text.lower() else (
                    "DOUBLE" if "e" in tok.text.lower() else "INTEGER")
            if tok.kind == "string":
                return "STRING"
            if tok.upper in ("TRUE", "FALSE"):
                return "BOOLEAN"
            if tok.upper == "NULL":
                return "NULL"
            if tok.kind in ("word", "quoted"):
                return src.columns.get(_name(tok))
        if len(expr) >= 6 and expr[0].upper == "CAST" and expr[-3].upper == "AS" and expr[-1].text == ")":
            return _TYPES.get(expr[-2].upper, expr[-2].upper)
        return None

    def _key_format(self, where: str, props: dict[str, str], src: Source | None, keys: int, out: Source) -> None:
        fmt = props.get("KEY_FORMAT") or props.get("FORMAT") or (src.key_format if src else _DEFAULT_KEY_FORMAT)
        out.key_format = fmt
        if keys > 1 and fmt in _SINGLE_FIELD_KEY_FORMATS:
            how = "set" if "KEY_FORMAT" in props else ("inherited from its source" if src else "the default")
            self.problems.append(f"{where}: {keys} key columns in the {fmt} key format ({how}), which holds one "
                                 "field; use KEY_FORMAT = 'JSON'")


def check_sql(sql: str, known: str = "") -> list[str]:
    """Problems of ``sql``; ``known`` is SQL run before it (e.g. ksqldb.sql for ad-hoc queries)."""
    checker = Checker()
    if known:
        checker.check(known)
        checker.problems.clear()
    return checker.check(sql)
