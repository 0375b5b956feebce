-- The reference example of docs/architecture.md (the listening features).
CREATE SOURCE plays (
  user_id STRING, track_id STRING, ms_played BIGINT, skipped BOOLEAN, ts TIMESTAMP,
  WATERMARK FOR ts AS ts - INTERVAL '1' HOUR
) WITH (connector = 'kafka', topic = 'plays', format = 'json');

CREATE FEATURE VIEW user_listening WITH (tile = '5m') AS
SELECT user_id,
       COUNT(*) AS plays,
       SUM(ms_played) AS total_ms,
       APPROX_COUNT_DISTINCT(track_id) AS uniq_tracks,
       SUM(CASE WHEN skipped THEN 1 ELSE 0 END) * 1.0 / COUNT(*) AS skip_rate
FROM plays
WHERE ms_played >= 30000
GROUP BY user_id;
