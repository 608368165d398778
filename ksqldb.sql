-- tickflow's stream-SQL layer for ksqlDB (docker compose applies it with `tickflow ksql apply`).
-- Re-runnable: every statement is IF NOT EXISTS or CREATE OR REPLACE.
-- Field names follow contracts/messages.py (lower snake_case, quoted where ksqlDB would upper-case).

SET 'auto.offset.reset' = 'earliest';

-- The normalised trades the ingestor writes, keyed `exchange:symbol`, in event time.
CREATE STREAM IF NOT EXISTS trades (
  trade_key VARCHAR KEY,
  schema_version INT,
  exchange VARCHAR,
  symbol VARCHAR,
  venue_symbol VARCHAR,
  trade_id VARCHAR,
  price DOUBLE,
  size DOUBLE,
  side VARCHAR,
  ts_event BIGINT,
  ts_ingest BIGINT
) WITH (
  KAFKA_TOPIC = 'market.trades',
  KEY_FORMAT = 'KAFKA',
  VALUE_FORMAT = 'JSON',
  TIMESTAMP = 'ts_event'
);
