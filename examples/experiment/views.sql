-- Skip features of each listener, for the experimentation loop of examples/experiment/.
-- The same file feeds `tessera training-set` (which replays files and ignores the connector)
-- and `tessera run` (which serves it live: POST /v1/ingest/plays).
CREATE SOURCE plays (
  user_id STRING,
  track_id STRING,
  ms_played BIGINT,
  skipped BOOLEAN,
  device STRING,
  ts TIMESTAMP,                         -- when the play ended: its outcome is known then
  WATERMARK FOR ts AS ts - INTERVAL '5' MINUTE
) WITH (connector = 'http', format = 'json');

CREATE FEATURE VIEW user_skips WITH (tile = '5m') AS
SELECT user_id,
       COUNT(*) AS plays,
       SUM(CASE WHEN skipped THEN 1 ELSE 0 END) AS skips,
       SUM(CASE WHEN skipped THEN 1 ELSE 0 END) * 1.0 / COUNT(*) AS skip_rate,
       AVG(ms_played) AS avg_ms
FROM plays
GROUP BY user_id;
