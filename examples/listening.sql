-- A music-streaming company's listening features (the reference problem of docs/architecture.md).
CREATE SOURCE plays (
  user_id STRING,
  track_id STRING,
  ms_played BIGINT,
  skipped BOOLEAN,
  country STRING,
  device STRING,
  ts TIMESTAMP,
  WATERMARK FOR ts AS ts - INTERVAL '5' MINUTE
) WITH (connector = 'file', format = 'json');

CREATE FEATURE VIEW user_listening WITH (tile = '5m') AS
SELECT user_id,
       COUNT(*) AS plays,
       SUM(ms_played) AS total_ms,
       MAX(ms_played) AS longest_ms,
       APPROX_COUNT_DISTINCT(track_id) AS uniq_tracks,
       APPROX_PERCENTILE(ms_played, 0.9) AS p90_ms,
       LAST_VALUE(track_id) AS last_track,
       SUM(CASE WHEN skipped THEN 1 ELSE 0 END) * 1.0 / COUNT(*) AS skip_rate
FROM plays
GROUP BY user_id;

CREATE FEATURE VIEW country_plays AS
SELECT country, COUNT(*) AS plays, AVG(ms_played) AS avg_ms, TOP_K(track_id, 3) AS top_tracks
FROM plays
WHERE ms_played >= 30000
GROUP BY country;
