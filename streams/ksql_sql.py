"""ksqldb.sql, rendered from the spec the Faust side uses (intervals, grace, bar columns, feature names).

`python -m streams.ksql_sql > ksqldb.sql` regenerates the file; a test checks the file is this
rendering, so ksqlDB's windows and columns cannot drift from the Faust worker's, and checks it
statically against the rules a real ksqlDB 0.29.0 server enforced (tests/unit/streams/test_ksql_rules.py).

Every Kafka topic name comes from the registry (contracts/topics.py) or, for the topics ksqlDB creates
itself, from `sink_topic`. The SQL follows what the real server refused before:

- contract field names that are ksqlDB reserved words (`size`) are back-quoted wherever they appear;
- a bare ``0.0`` is a DECIMAL in ksqlDB: DOUBLE branches use ``CAST(0 AS DOUBLE)``;
- the KAFKA key format holds one column: tables keyed by two columns use JSON keys;
- sink records carry the trades' event time as their timestamp, so the broker's time-based retention
  would delete a replay of older data at its next check: the windowed sinks get ``RETENTION_MS`` of
  100 years (ksqlDB creates its sink topics with it; the non-windowed tables' topics are compacted);
- windowed stores keep ``RETENTION`` (`store_retention_s`) so pull queries over the last hour of
  1-minute bars and the last day of 5-minute bars are served.

ksqlDB differs from the Faust worker in two documented ways: its open and close are the first and last
trade by offset (EARLIEST_BY_OFFSET / LATEST_BY_OFFSET), the worker's by event time (they agree when
trades arrive in event-time order, as replays and exchange feeds deliver them); and EMIT FINAL closes
windows on each partition's stream time, when a record arrives (see README, "ksqlDB").

Books: ksqlDB reads ``market.books`` as a stream, but cannot keep a book from its deltas (a sorted map per
key with removals is no aggregate it has, and a delta's first level is not the best). So the latest top of
book per symbol is read where a book is kept: the worker's 1-second feature vectors carry the mid and the
spread of the book at each bar's end (``latest_top_of_book``), and the table of the latest snapshot
(``latest_book_snapshot``) holds the best levels exactly as of the last (re)synchronisation or periodic
snapshot (every 1,000 deltas). No extra topic is published for ksqlDB.
"""

from __future__ import annotations

from contracts.feature_schema import V2
from contracts.topics import MARKET_BOOKS, MARKET_TRADES, SIGNALS_BARS, SIGNALS_FEATURES, prefixed
from streams.spec import BAR_FIELDS, DEFAULT_GRACE_MS, DEFAULT_INTERVALS_S

# Contract field names that are ksqlDB reserved words; back-quoted wherever they appear (the static test
# checks every identifier against ksqlDB's full list).
RESERVED_FIELDS: frozenset[str] = frozenset({"size"})
# The windowed sinks' retention.ms: time-based deletion measures a record's age by its timestamp, which
# here is the trade's event time, so a replay of last year's trades must not count as expired.
SINK_RETENTION_MS: int = 100 * 365 * 86_400_000
DOUBLE_ZERO = "CAST(0 AS DOUBLE)"


def col(name: str) -> str:
    """A column reference: back-quoted when the name is a reserved word (then case-sensitive, lower case)."""
    return f"`{name}`" if name in RESERVED_FIELDS else name


SIZE = col("size")

_BAR_SELECT = {
    "exchange": "LATEST_BY_OFFSET(exchange)",
    "symbol": "LATEST_BY_OFFSET(symbol)",
    "interval_s": "{interval}",
    "window_start": "AS_VALUE(WINDOWSTART)",
    "window_end": "AS_VALUE(WINDOWEND)",
    "open": "EARLIEST_BY_OFFSET(price)",
    "high": "MAX(price)",
    "low": "MIN(price)",
    "close": "LATEST_BY_OFFSET(price)",
    "volume": f"SUM({SIZE})",
    "vwap": f"SUM(price * {SIZE}) / SUM({SIZE})",
    "trades": "COUNT(*)",
    "buy_volume": f"SUM(CASE WHEN side = 'buy' THEN {SIZE} ELSE {DOUBLE_ZERO} END)",
    "sell_volume": f"SUM(CASE WHEN side = 'sell' THEN {SIZE} ELSE {DOUBLE_ZERO} END)",
}

_TRADE_COLUMNS = (("schema_version", "INT"), ("exchange", "VARCHAR"), ("symbol", "VARCHAR"),
                  ("venue_symbol", "VARCHAR"), ("trade_id", "VARCHAR"), ("price", "DOUBLE"),
                  ("size", "DOUBLE"), ("side", "VARCHAR"), ("ts_event", "BIGINT"), ("ts_ingest", "BIGINT"))


def sink_topic(name: str) -> str:
    """The Kafka topic of a table ksqlDB writes (``ksql.<name>``, under TICKFLOW_TOPIC_PREFIX): the one place
    such names are made."""
    return prefixed(f"ksql.{name}")


def bar_table_name(interval_s: int) -> str:
    return f"bars_{interval_s}s"


def bar_topic(interval_s: int) -> str:
    return sink_topic(f"bars.{interval_s}s")


def store_retention_s(interval_s: int) -> int:
    """How long a bar table's window store keeps windows: 2016 windows (a week of 5-minute bars), at least
    an hour. Covers the README's pull queries (the last hour of 1-minute bars, the last day of 5-minute bars)."""
    return max(3600, 2016 * interval_s)


def _duration(ms: int) -> str:
    for unit, size in (("DAYS", 86_400_000), ("HOURS", 3_600_000), ("MINUTES", 60_000), ("SECONDS", 1000)):
        if ms % size == 0:
            return f"{ms // size} {unit}"
    return f"{ms} MILLISECONDS"


def _type(field: str) -> str:
    if field in ("exchange", "symbol"):
        return "VARCHAR"
    return "BIGINT" if field in ("window_start", "window_end", "trades") else (
        "INT" if field == "interval_s" else "DOUBLE")


def _header() -> str:
    trade_cols = ",\n".join(f"  {col(name)} {kind}" for name, kind in _TRADE_COLUMNS)
    return f"""\
-- tickflow's stream-SQL layer for ksqlDB 0.29.0 (docker compose applies it with `tickflow ksql apply`).
-- Generated by `python -m streams.ksql_sql > ksqldb.sql` from the spec of the Faust worker
-- (streams/spec.py, contracts/feature_schema.py) and the topic registry (contracts/topics.py);
-- tests/unit/streams/test_streams_ksql.py and test_ksql_rules.py check it.
-- Re-runnable: every statement is IF NOT EXISTS.
-- Field names follow contracts/messages.py (lower snake_case); `size` is a reserved word in ksqlDB and
-- stays back-quoted; output columns are back-quoted so that ksqlDB writes them lower case.

SET 'auto.offset.reset' = 'earliest';

-- The normalised trades the ingestor writes, keyed `exchange:symbol` (murmur2, as ksqlDB hashes), in event time.
CREATE STREAM IF NOT EXISTS trades (
  trade_key VARCHAR KEY,
{trade_cols}
) WITH (
  KAFKA_TOPIC = '{MARKET_TRADES.name}',
  KEY_FORMAT = 'KAFKA',
  VALUE_FORMAT = 'JSON',
  TIMESTAMP = 'ts_event'
);
"""


def render(intervals_s: tuple[int, ...] = DEFAULT_INTERVALS_S, grace_ms: int = DEFAULT_GRACE_MS) -> str:
    assert set(_BAR_SELECT) == set(BAR_FIELDS), "every Bar field needs a ksqlDB expression"
    parts = [_header()]
    for interval in intervals_s:
        cols = ",\n".join(f"  {_BAR_SELECT[f].format(interval=interval)} AS `{f}`" for f in BAR_FIELDS)
        retention = _duration(store_retention_s(interval) * 1000)
        parts.append(f"""
-- {interval} s bars: TUMBLING event-time windows, grace {grace_ms} ms, one final row per window; the
-- store keeps {retention} for pull queries by key.
CREATE TABLE IF NOT EXISTS {bar_table_name(interval)} WITH (
  KAFKA_TOPIC = '{bar_topic(interval)}',
  KEY_FORMAT = 'KAFKA',
  VALUE_FORMAT = 'JSON',
  PARTITIONS = {MARKET_TRADES.partitions},
  RETENTION_MS = {SINK_RETENTION_MS}
) AS SELECT
  trade_key,
{cols}
FROM trades
WINDOW TUMBLING (SIZE {_duration(interval * 1000)}, RETENTION {retention}, GRACE PERIOD {_duration(grace_ms)})
GROUP BY trade_key
EMIT FINAL;
""")
    bar_cols = ",\n".join(f"  {col(f)} {_type(f)}" for f in BAR_FIELDS)
    latest_bar_cols = ",\n".join(f"  LATEST_BY_OFFSET({col(f)}) AS `{f}`" for f in BAR_FIELDS if f != "interval_s")
    parts.append(f"""
-- The Faust worker's bars ({SIGNALS_BARS.name}), for ad-hoc queries.
CREATE STREAM IF NOT EXISTS signal_bars (
  bar_key VARCHAR KEY,
  schema_version INT,
{bar_cols}
) WITH (
  KAFKA_TOPIC = '{SIGNALS_BARS.name}',
  KEY_FORMAT = 'KAFKA',
  VALUE_FORMAT = 'JSON',
  TIMESTAMP = 'window_end'
);

-- The latest bar per symbol and interval (pull queries: WHERE bar_key = ... AND interval_s = 60).
-- Two key columns: the key format is JSON (KAFKA holds one column).
CREATE TABLE IF NOT EXISTS latest_bars WITH (
  KAFKA_TOPIC = '{sink_topic("latest_bars")}',
  KEY_FORMAT = 'JSON',
  VALUE_FORMAT = 'JSON',
  PARTITIONS = {SIGNALS_BARS.partitions}
) AS SELECT
  bar_key,
  interval_s,
{latest_bar_cols}
FROM signal_bars
GROUP BY bar_key, interval_s
EMIT CHANGES;
""")
    parts.append(f"""
-- The Faust worker's feature vectors ({SIGNALS_FEATURES.name}).
CREATE STREAM IF NOT EXISTS signal_features (
  feature_key VARCHAR KEY,
  schema_version INT,
  exchange VARCHAR,
  symbol VARCHAR,
  interval_s INT,
  ts BIGINT,
  feature_schema VARCHAR,
  ready BOOLEAN,
  features MAP<VARCHAR, DOUBLE>,
  close DOUBLE
) WITH (
  KAFKA_TOPIC = '{SIGNALS_FEATURES.name}',
  KEY_FORMAT = 'KAFKA',
  VALUE_FORMAT = 'JSON',
  TIMESTAMP = 'ts'
);
""")
    feats = ",\n".join(f"  LATEST_BY_OFFSET(features['{n}']) AS `{n}`" for n in V2)
    parts.append(f"""
-- The latest features per symbol and interval (pull queries: WHERE feature_key = ... AND interval_s = 60).
CREATE TABLE IF NOT EXISTS latest_features WITH (
  KAFKA_TOPIC = '{sink_topic("latest_features")}',
  KEY_FORMAT = 'JSON',
  VALUE_FORMAT = 'JSON',
  PARTITIONS = {SIGNALS_FEATURES.partitions}
) AS SELECT
  feature_key,
  interval_s,
  LATEST_BY_OFFSET(ts) AS `ts`,
  LATEST_BY_OFFSET(ready) AS `ready`,
  LATEST_BY_OFFSET(close) AS `close`,
{feats}
FROM signal_features
GROUP BY feature_key, interval_s
EMIT CHANGES;
""")
    parts.append(f"""
-- The books the ingestor publishes ({MARKET_BOOKS.name}): snapshots (in parts) and deltas, best level first.
CREATE STREAM IF NOT EXISTS books (
  book_key VARCHAR KEY,
  schema_version INT,
  exchange VARCHAR,
  symbol VARCHAR,
  venue_symbol VARCHAR,
  kind VARCHAR,
  seq BIGINT,
  bids ARRAY<ARRAY<DOUBLE>>,
  asks ARRAY<ARRAY<DOUBLE>>,
  part INT,
  ts_event BIGINT,
  ts_ingest BIGINT
) WITH (
  KAFKA_TOPIC = '{MARKET_BOOKS.name}',
  KEY_FORMAT = 'KAFKA',
  VALUE_FORMAT = 'JSON',
  TIMESTAMP = 'ts_event'
);
""")
    parts.append(f"""
-- The best levels of each symbol's latest snapshot (part 0 holds the best levels of a split snapshot).
CREATE TABLE IF NOT EXISTS latest_book_snapshot WITH (
  KAFKA_TOPIC = '{sink_topic("latest_book_snapshot")}',
  KEY_FORMAT = 'KAFKA',
  VALUE_FORMAT = 'JSON',
  PARTITIONS = {MARKET_BOOKS.partitions}
) AS SELECT
  book_key,
  LATEST_BY_OFFSET(seq) AS `seq`,
  LATEST_BY_OFFSET(ts_event) AS `ts_event`,
  LATEST_BY_OFFSET(bids[1][1]) AS `best_bid`,
  LATEST_BY_OFFSET(bids[1][2]) AS `best_bid_size`,
  LATEST_BY_OFFSET(asks[1][1]) AS `best_ask`,
  LATEST_BY_OFFSET(asks[1][2]) AS `best_ask_size`
FROM books
WHERE kind = 'snapshot' AND part = 0
GROUP BY book_key
EMIT CHANGES;
""")
    smallest = min(DEFAULT_INTERVALS_S)
    mid, half = "features['book_mid']", "features['book_spread_bps'] / 20000"
    parts.append(f"""
-- The latest top of book per symbol: the worker's book at each {smallest}-second bar's end (its feature vectors).
CREATE TABLE IF NOT EXISTS latest_top_of_book WITH (
  KAFKA_TOPIC = '{sink_topic("latest_top_of_book")}',
  KEY_FORMAT = 'KAFKA',
  VALUE_FORMAT = 'JSON',
  PARTITIONS = {SIGNALS_FEATURES.partitions}
) AS SELECT
  feature_key,
  LATEST_BY_OFFSET(ts) AS `ts`,
  LATEST_BY_OFFSET({mid} * (1 - {half})) AS `best_bid`,
  LATEST_BY_OFFSET({mid} * (1 + {half})) AS `best_ask`,
  LATEST_BY_OFFSET({mid}) AS `mid`,
  LATEST_BY_OFFSET(features['book_spread_bps']) AS `spread_bps`,
  LATEST_BY_OFFSET(features['book_imb_5']) AS `imbalance_5`
FROM signal_features
WHERE interval_s = {smallest} AND features['book_mid'] > 0
GROUP BY feature_key
EMIT CHANGES;
""")
    return "".join(parts)


if __name__ == "__main__":
    print(render(), end="")
